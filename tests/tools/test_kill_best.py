"""Validation, the best checkpoint and the keep limit survive a SIGKILL at the moments that broke them.

Real subprocesses of tools/train.py (VPT on a tiny synthetic world, 3 epochs, validation and a checkpoint
every epoch, ``max_keep_ckpts=1``, ``save_best='accuracy/top1'``). A wrapper runs the tool in-process and
holds it at one moment, where the test kills it:

- inside the validation of the last epoch (after ``epoch_3.pth`` was written): the resumed run must
  validate epoch 3 again and end with the same best checkpoint as the uninterrupted run;
- inside the write of the second best checkpoint: a best checkpoint must still exist (MMEngine removed
  the old one first), and the resumed run must end like the uninterrupted one, with no ``.tmp`` left;
- between writing ``epoch_2.pth`` (and the pointer) and removing ``epoch_1.pth``: the resumed run must
  remove the orphan, so the keep limit holds.

The wrapper makes every validation "better" than the last (MMEngine's ``rule_map``), so that each epoch
writes a new best checkpoint whatever the accuracies of this tiny run are; the test is then about when
files are written and removed, which is what a kill can break.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from clipadapt.datasets.synthetic import ensure_synthetic_world
from clipadapt.engine import enable_safe_resume
from tests.helpers import SMALL_WORLD

ROOT = Path(__file__).resolve().parents[2]
TRAIN = ROOT / "tools" / "train.py"
VPT_CONFIG = ROOT / "configs" / "vpt" / "vpt_tiny-vit_1xb32_synthetic-dark-16shot.py"
BEST = "best_accuracy_top1_epoch_3.pth"
SMALL = f"""
_base_ = [{str(VPT_CONFIG)!r}]
synthetic_world = {SMALL_WORLD!r}
model = dict(pretrained=None, plugins=[dict(type="VPT", num_tokens=2)])
train_dataloader = dict(batch_size=8, dataset=dict(num_shots=2))
val_dataloader = dict(batch_size=8)
test_dataloader = dict(batch_size=8)
train_cfg = dict(max_epochs=3, val_interval=1)
default_hooks = dict(checkpoint=dict(interval=1, max_keep_ckpts=1, save_best="accuracy/top1", rule="greater"))
visualizer = dict(vis_backends=[dict(type="LocalVisBackend")])
"""
# HOLD=<what>:<n>: write $HOLD_MARKER and sleep at the n-th validation ("val"), the n-th rename onto a
# best_*.pth ("best"), or the removal of epoch_<n>.pth ("remove"). Every validation counts as better.
WRAPPER = """
import os, runpy, sys, time
from mmengine.hooks import CheckpointHook
from mmengine.runner import ValLoop
CheckpointHook.rule_map = {"greater": lambda x, y: True, "less": lambda x, y: True}
what, n = (os.environ.get("HOLD") or "none:0").split(":")
seen = {"val": 0, "best": 0}
def hold():
    open(os.environ["HOLD_MARKER"], "w").write("held")
    time.sleep(60)
run = ValLoop.run
def val(self):
    seen["val"] += 1
    if what == "val" and seen["val"] == int(n):
        hold()
    return run(self)
ValLoop.run = val
replace, remove = os.replace, os.remove
def held_replace(src, dst, *a, **k):
    if os.path.basename(str(dst)).startswith("best_"):
        seen["best"] += 1
        if what == "best" and seen["best"] == int(n):
            hold()
    return replace(src, dst, *a, **k)
def held_remove(path, *a, **k):
    if what == "remove" and os.path.basename(str(path)) == f"epoch_{n}.pth":
        hold()
    return remove(path, *a, **k)
os.replace, os.remove = held_replace, held_remove
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("kill_best")
    world = ensure_synthetic_world(root / "world", progress=False, workers=1, **SMALL_WORLD)
    config = root / "vpt_small.py"
    config.write_text(SMALL)
    env = dict(os.environ, CLIPADAPT_DATA=str(world), CLIPADAPT_CACHE=str(root / "cache"), OMP_NUM_THREADS="1")
    return root, config, env


def _argv(config: Path, work_dir: Path, *extra: str) -> list[str]:
    return [sys.executable, "-c", WRAPPER, str(TRAIN), str(config), "--work-dir", str(work_dir), *extra]


def _train(config: Path, work_dir: Path, env: dict, *extra: str) -> str:
    done = subprocess.run(_argv(config, work_dir, *extra), env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout + done.stderr


def _kill_at(config: Path, work_dir: Path, env: dict, hold: str) -> None:
    marker = work_dir.parent / f"{work_dir.name}.held"
    log = work_dir.parent / f"{work_dir.name}.log"
    with open(log, "w") as handle:
        proc = subprocess.Popen(
            _argv(config, work_dir), env=dict(env, HOLD=hold, HOLD_MARKER=str(marker)), stdout=handle, stderr=handle
        )
    start = time.monotonic()
    while not marker.is_file():
        assert proc.poll() is None, f"training ended before the kill: {log.read_text()[-3000:]}"
        assert time.monotonic() - start < 300, "the moment to kill never came"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)


def _load(path: Path) -> dict:
    enable_safe_resume()
    return torch.load(path, map_location="cpu", weights_only=True)


@pytest.fixture(scope="module")
def reference(setup):
    root, config, env = setup
    _train(config, root / "reference", env)
    return root / "reference"


def _assert_same_end(work_dir: Path, reference: Path) -> None:
    names = lambda d: sorted(p.name for p in d.iterdir() if p.suffix == ".pth")  # noqa: E731
    assert names(work_dir) == names(reference) == ["best_accuracy_top1_epoch_3.pth", "epoch_3.pth"]
    assert not [p.name for p in work_dir.iterdir() if p.name.endswith(".tmp")]
    for name in ("epoch_3.pth", BEST):
        ours, theirs = _load(work_dir / name), _load(reference / name)
        for key, value in theirs["state_dict"].items():
            assert torch.equal(ours["state_dict"][key], value), (name, key)
        info = [c["message_hub"]["runtime_info"] for c in (ours, theirs)]
        assert info[0]["best_score"] == info[1]["best_score"], name


@pytest.mark.slow
def test_kill_during_validation_reruns_it(setup, reference):
    root, config, env = setup
    work_dir = root / "killed_in_val"
    _kill_at(config, work_dir, env, "val:3")
    assert (work_dir / "epoch_3.pth").is_file() and not (work_dir / BEST).exists()
    log = _train(config, work_dir, env, "--resume")
    assert "validating it again" in log and "Epoch(val) [3]" in log
    _assert_same_end(work_dir, reference)


@pytest.mark.slow
def test_kill_while_writing_a_best_checkpoint_leaves_the_previous_one(setup, reference):
    root, config, env = setup
    work_dir = root / "killed_in_best"
    _kill_at(config, work_dir, env, "best:2")
    best = sorted(p.name for p in work_dir.glob("best_*.pth"))
    assert best == ["best_accuracy_top1_epoch_1.pth"], best  # the old best is removed only after the new one
    _load(work_dir / best[0])
    assert [p for p in work_dir.iterdir() if p.name.endswith(".tmp")]  # the held write's temporary file
    _train(config, work_dir, env, "--resume")
    _assert_same_end(work_dir, reference)


@pytest.mark.slow
def test_kill_before_pruning_keeps_the_limit(setup, reference):
    root, config, env = setup
    work_dir = root / "killed_before_prune"
    _kill_at(config, work_dir, env, "remove:1")
    assert (work_dir / "epoch_1.pth").is_file() and (work_dir / "epoch_2.pth").is_file()
    log = _train(config, work_dir, env, "--resume")
    assert "removed epoch_1.pth: max_keep_ckpts=1 had dropped it before a kill" in log
    _assert_same_end(work_dir, reference)
