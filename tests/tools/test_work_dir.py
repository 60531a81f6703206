"""The work dir of tools/train.py: one run at a time, resume that finds what is there, bad values named.

- B8: a second run on a locked work dir fails naming the holder's pid; a dead holder's lock is taken over;
- B3: ``--resume`` without ``last_checkpoint``, or with it naming a truncated file, continues from the
  newest complete checkpoint and says which and why; with no complete checkpoint it fails naming each;
- B7: each bad config value fails at config-check time naming key and value, leaving no work dir;
- B10: an update that overflows with a finite loss stops the run before ``epoch_1.pth`` is written;
- B9: a complete synthetic world is used without taking its write lock.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from clipadapt.datasets.synthetic import ensure_synthetic_world
from clipadapt.engine import enable_safe_resume
from clipadapt.engine.paths import load_tool
from clipadapt.engine.workdir import (
    ResumeError,
    WorkDirBusyError,
    WorkDirLock,
    find_resume_checkpoint,
)
from tests.helpers import SMALL_WORLD

ROOT = Path(__file__).resolve().parents[2]
VPT_CONFIG = ROOT / "configs" / "vpt" / "vpt_tiny-vit_1xb32_synthetic-dark-16shot.py"
# 4 classes x 2 shots = 8 images, batch 8: one iteration per epoch.
SMALL = f"""
_base_ = [{str(VPT_CONFIG)!r}]
synthetic_world = {SMALL_WORLD!r}
model = dict(pretrained=None, plugins=[dict(type="VPT", num_tokens=2)])
train_dataloader = dict(batch_size=8, dataset=dict(num_shots=2))
val_dataloader = dict(batch_size=8)
test_dataloader = dict(batch_size=8)
train_cfg = dict(max_epochs=2, val_interval=1)
default_hooks = dict(checkpoint=dict(interval=1, max_keep_ckpts=2, save_best=None))
visualizer = dict(vis_backends=[dict(type="LocalVisBackend")])
"""


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("work_dir")
    world = ensure_synthetic_world(root / "world", progress=False, workers=1, **SMALL_WORLD)
    config = root / "vpt_small.py"
    config.write_text(SMALL)
    return root, config, world


@pytest.fixture
def env(setup, monkeypatch, tmp_path):
    root, config, world = setup
    monkeypatch.setenv("CLIPADAPT_DATA", str(world))
    monkeypatch.setenv("CLIPADAPT_CACHE", str(root / "cache"))
    return config


def _train(config: Path, work_dir: Path, *extra: str) -> None:
    load_tool("train").main([str(config), "--work-dir", str(work_dir), *extra])


# ----------------------------------------------------------------------------------- B8: the lock
HOLDER = "import sys, time\nfrom clipadapt.engine.workdir import WorkDirLock\nWorkDirLock(sys.argv[1]).acquire()\n"
HOLDER += "print('locked', flush=True)\ntime.sleep(120)\n"


def test_a_second_run_is_refused_naming_the_first_and_a_dead_lock_is_taken_over(env, tmp_path, capfd):
    work_dir = tmp_path / "work"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(work_dir)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(WorkDirBusyError, match=rf"work dir {work_dir} is in use .*pid {holder.pid} "):
            _train(env, work_dir)
        assert sorted(p.name for p in work_dir.iterdir()) == [".clipadapt.lock"]  # nothing else was written
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
    lock = WorkDirLock(work_dir).acquire()  # the kernel freed the dead holder's lock; its record is still there
    try:
        assert f"pid {holder.pid} " in lock.took_over
        assert "took over the lock" in capfd.readouterr().err
    finally:
        lock.release()
    assert not (work_dir / ".clipadapt.lock").exists()


# ------------------------------------------------------------------------------------- B3: resume
def _fake_checkpoint(path: Path, epoch: int) -> Path:
    torch.save({"meta": {"epoch": epoch}, "state_dict": {"w": torch.ones(64)}}, path)
    return path


def test_resume_target_when_the_pointer_is_missing_broken_or_everything_is_broken(tmp_path):
    one, two = _fake_checkpoint(tmp_path / "epoch_1.pth", 1), _fake_checkpoint(tmp_path / "epoch_2.pth", 2)
    assert find_resume_checkpoint(tmp_path) == (str(two), f"{tmp_path / 'last_checkpoint'} is missing; resuming "
                                                f"from the newest complete checkpoint {two}")  # fmt: skip
    (tmp_path / "last_checkpoint").write_text(str(two))
    assert find_resume_checkpoint(tmp_path) == (str(two), None)
    two.write_bytes(two.read_bytes()[:300])  # truncated
    path, why = find_resume_checkpoint(tmp_path)
    assert path == str(one) and why.startswith(f"{tmp_path / 'last_checkpoint'} names {two}, but it is truncated")
    one.write_bytes(b"")
    with pytest.raises(ResumeError, match=r"epoch_2\.pth \(it is truncated.*epoch_1\.pth \(it is empty \(0 bytes\)\)"):
        find_resume_checkpoint(tmp_path)
    empty = tmp_path / "fresh"
    empty.mkdir()
    assert find_resume_checkpoint(empty) == (None, f"{empty / 'last_checkpoint'} is missing and {empty} holds no "
                                             "checkpoint: training starts from scratch")  # fmt: skip


def test_resume_without_pointer_continues_from_the_newest_checkpoint(env, tmp_path, capfd):
    work_dir = tmp_path / "work"
    _train(env, work_dir)
    (work_dir / "last_checkpoint").unlink()
    (work_dir / "epoch_2.pth").write_bytes((work_dir / "epoch_2.pth").read_bytes()[:1000])  # and truncate the newest
    capfd.readouterr()
    _train(env, work_dir, "--resume", "--cfg-options", "train_cfg.max_epochs=3")
    out = capfd.readouterr()
    assert f"resuming from the newest complete checkpoint {work_dir / 'epoch_1.pth'}" in out.err
    assert "resumed epoch: 1" in out.out + out.err and "Auto resumed from the latest checkpoint None" not in out.out
    enable_safe_resume()
    assert torch.load(work_dir / "epoch_3.pth", weights_only=True)["meta"]["epoch"] == 3


# ---------------------------------------------------------------------------------- B7: bad values
BAD_VALUES = [
    ("model = dict(plugins=[dict(type='VPT', num_tokens='two')])", [], r"model\.plugins\[0\]\.num_tokens='two'"),
    ("model = dict(plugins=[dict(type='VPT', num_tokens=2.5)])", [], r"model\.plugins\[0\]\.num_tokens=2\.5"),
    ("", ["train_cfg.max_epochs=0"], r"train_cfg\.max_epochs=0: must be a whole number >= 1"),
    ("", ["train_cfg.max_epochs=abc"], r"train_cfg\.max_epochs='abc'"),
    ("", ["optim_wrapper.optimizer.lr=fast"], r"optim_wrapper\.optimizer\.lr='fast'"),
    ("", ["optim_wrapper.optimizer.lr=nan"], r"optim_wrapper\.optimizer\.lr=nan: must be a finite number"),
    ("", ["optim_wrapper.optimizer.lr=inf"], r"optim_wrapper\.optimizer\.lr=inf: must be a finite number"),
    ("", ["train_cfg.val_interval=0"], r"train_cfg\.val_interval=0"),
]


@pytest.mark.parametrize("extra, options, message", BAD_VALUES, ids=[m for _, _, m in BAD_VALUES])
def test_bad_values_are_named_before_anything_is_written(extra, options, message, env, tmp_path):
    config = tmp_path / "bad.py"
    config.write_text(f"_base_ = [{str(env)!r}]\n{extra}\n")
    work_dir = tmp_path / "work"
    with pytest.raises(SystemExit, match=rf"error in config .*bad\.py: {message}"):
        _train(config, work_dir, *(["--cfg-options", *options] if options else []))
    assert not work_dir.exists()


def test_a_malformed_cfg_option_is_named(env, tmp_path, capfd):
    with pytest.raises(SystemExit):
        _train(env, tmp_path / "work", "--cfg-options", "train_cfg.max_epochs")
    assert "--cfg-options 'train_cfg.max_epochs': expected key=value" in capfd.readouterr().err
    assert not (tmp_path / "work").exists()


@pytest.mark.parametrize(
    "value, message", [(None, r"'train' is None, not a list"), ("", r"train\[0\] = .* has an empty class name")]
)
def test_split_file_faults_are_named(value, message, setup, tmp_path):
    import json

    from clipadapt.datasets import FewShotDataset

    _, _, world = setup
    split = json.loads((world / "split_synthetic_dark.json").read_text())
    split["train"] = None if value is None else [[*split["train"][0][:2], value]]
    (tmp_path / "split.json").write_text(json.dumps(split))
    with pytest.raises(ValueError, match=rf"split file .*split\.json: {message}"):
        FewShotDataset(data_root=str(world), split_file=str(tmp_path / "split.json"))


# ------------------------------------------------------------------------------ B10: the update
def test_an_overflowing_update_stops_before_any_checkpoint(env, tmp_path):
    """Finite settings (they pass the config check) whose first update overflows fp32: the loss of that
    iteration is finite, so only a check of the parameters after the step can stop the run."""
    work_dir = tmp_path / "work"
    options = ["optim_wrapper.optimizer.lr=1e30", "optim_wrapper.optimizer.weight_decay=1e30"]
    with pytest.raises(FloatingPointError, match=r"non-finite trainable parameters after the optimizer step.*plugins"):
        _train(env, work_dir, "--cfg-options", *options)
    assert not list(work_dir.glob("*.pth"))


# ------------------------------------------------------------------------------- B9: read-only world
def test_a_complete_world_is_used_without_its_write_lock(setup, monkeypatch):
    from clipadapt.datasets.synthetic import writers

    _, _, world = setup

    def no_lock(root):
        raise PermissionError(f"{root}: read-only (the write lock was asked for)")

    monkeypatch.setattr(writers, "file_lock", no_lock)
    assert ensure_synthetic_world(world, progress=False, workers=1, **SMALL_WORLD) == world
