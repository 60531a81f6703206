"""A training run killed with SIGKILL resumes with ``--resume`` and ends bit-identical to an uninterrupted run.

Real subprocesses of tools/train.py on a tiny synthetic world and a random-init tiny CLIP (CPU, seed 0,
shuffled data, random horizontal flips). Two kills: one inside the write of a checkpoint (the test's
own wrapper holds ``os.replace`` of ``epoch_2.pth`` until the kill lands: the bytes are on disk in the
temporary file, the rename has not happened), one at a random moment after the first checkpoint.
After each kill the checkpoint that ``last_checkpoint`` names must load, and the resumed run must end
with the same weights, optimizer state and every logged loss as the uninterrupted run.
"""

from __future__ import annotations

import os
import random
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
WORLD = SMALL_WORLD
# The base config's training pipeline keeps its RandomHorizontalFlip: resuming must reproduce the flips too.
SMALL = f"""
_base_ = [{str(VPT_CONFIG)!r}]
synthetic_world = {WORLD!r}
model = dict(pretrained=None, plugins=[dict(type="VPT", num_tokens=2)])
train_dataloader = dict(batch_size=4, dataset=dict(num_shots=4))
val_dataloader = dict(batch_size=8)
test_dataloader = dict(batch_size=8)
train_cfg = dict(max_epochs=2, val_interval=1)
default_hooks = dict(logger=dict(interval=1), checkpoint=dict(interval=1, max_keep_ckpts=1, save_best=None))
visualizer = dict(vis_backends=[dict(type="LocalVisBackend")])
"""
# Runs tools/train.py with os.replace held (60 s) when it would rename a temporary file onto epoch_2.pth,
# after writing the name of that temporary file to $HOLD_MARKER: the parent kills the process there.
HOLD_REPLACE = """
import os, runpy, sys, time
_replace = os.replace
def held(src, dst, *a, **k):
    if str(dst).endswith("epoch_2.pth"):
        open(os.environ["HOLD_MARKER"], "w").write(str(src))
        time.sleep(60)
    return _replace(src, dst, *a, **k)
os.replace = held
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("kill_resume")
    world = ensure_synthetic_world(root / "world", progress=False, workers=1, **WORLD)
    config = root / "vpt_small.py"
    config.write_text(SMALL)
    env = dict(os.environ, CLIPADAPT_DATA=str(world), CLIPADAPT_CACHE=str(root / "cache"), OMP_NUM_THREADS="1")
    return root, config, env


def _cmd(config: Path, work_dir: Path, *extra: str) -> list[str]:
    return [str(TRAIN), str(config), "--work-dir", str(work_dir), *extra]


def _train(config: Path, work_dir: Path, env: dict, *extra: str) -> str:
    done = subprocess.run(
        [sys.executable, *_cmd(config, work_dir, *extra)], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout + done.stderr


def _start(argv: list[str], env: dict, log: Path) -> subprocess.Popen:
    with open(log, "w") as handle:  # a file, not a pipe nobody reads: a full pipe would block the run
        return subprocess.Popen([sys.executable, *argv], env=env, stdout=handle, stderr=subprocess.STDOUT)


def _kill_when(proc: subprocess.Popen, ready, log: Path, delay: float = 0.0, timeout: float = 120.0) -> None:
    start = time.monotonic()
    while not ready():
        assert proc.poll() is None, f"training ended (rc {proc.returncode}) before the kill: {log.read_text()[-3000:]}"
        assert time.monotonic() - start < timeout, "the moment to kill never came"
        time.sleep(0.02)
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)


def _load(path: Path) -> dict:
    enable_safe_resume()
    return torch.load(path, map_location="cpu", weights_only=True)


def _latest(work_dir: Path) -> dict:
    """The checkpoint that ``--resume`` would pick: it must exist and load completely."""
    pointer = (work_dir / "last_checkpoint").read_text().strip()
    return _load(Path(pointer))


@pytest.fixture(scope="module")
def reference(setup):
    root, config, env = setup
    _train(config, root / "reference", env)
    return _load(root / "reference" / "epoch_2.pth")


def _assert_same_run(resumed: dict, reference: dict) -> None:
    assert resumed["meta"]["epoch"] == reference["meta"]["epoch"] == 2
    assert resumed["meta"]["iter"] == reference["meta"]["iter"] == 8
    for key, value in reference["state_dict"].items():
        assert torch.equal(resumed["state_dict"][key], value), key
    momentum = [s["momentum_buffer"] for s in (resumed, reference) for s in s["optimizer"]["state"].values()]
    assert len(momentum) == 2 and torch.equal(momentum[0], momentum[1])
    losses = [c["message_hub"]["log_scalars"]["train/loss"]._log_history.tolist() for c in (resumed, reference)]
    assert len(losses[1]) == 8 and losses[0] == losses[1]  # every logged loss, both epochs, bit for bit


@pytest.mark.slow
def test_kill_inside_a_checkpoint_write_then_resume(setup, reference):
    root, config, env = setup
    work_dir, marker = root / "killed_in_write", root / "hold_marker"
    env = dict(env, HOLD_MARKER=str(marker))
    log = root / "killed_in_write.log"
    proc = _start(["-c", HOLD_REPLACE, *_cmd(config, work_dir)], env, log)
    _kill_when(proc, marker.is_file, log)
    tmp = Path(marker.read_text())
    assert tmp.is_file() and tmp.parent == work_dir  # killed with epoch_2's bytes in the temporary file ...
    assert not (work_dir / "epoch_2.pth").exists()  # ... and nothing at the checkpoint's own path
    assert _latest(work_dir)["meta"]["epoch"] == 1  # the pointer still names the complete epoch_1.pth

    log = _train(config, work_dir, env, "--resume")
    assert "resumed epoch: 1, iter: 4" in log
    _assert_same_run(_load(work_dir / "epoch_2.pth"), reference)
    assert not (work_dir / "epoch_1.pth").exists()  # max_keep_ckpts=1 pruned it, after epoch_2.pth was in place


@pytest.mark.slow
def test_kill_at_a_random_moment_then_resume(setup, reference):
    root, config, env = setup
    work_dir = root / "killed_randomly"
    log = root / "killed_randomly.log"
    proc = _start(_cmd(config, work_dir), env, log)
    delay = random.Random().uniform(0.0, 1.5)  # anywhere in epoch 2, its validation or its checkpoint
    _kill_when(proc, (work_dir / "last_checkpoint").is_file, log, delay=delay)
    assert _latest(work_dir)["meta"]["epoch"] in (1, 2), f"killed {delay:.2f} s after the first checkpoint"

    _train(config, work_dir, env, "--resume")
    _assert_same_run(_load(work_dir / "epoch_2.pth"), reference)
