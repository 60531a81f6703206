"""A malicious pickle is refused, with a clear error and nothing run, on every path clipadapt loads a checkpoint.

The file is a real ``torch.save`` of a checkpoint-shaped dict whose ``meta`` unpickles by calling
``os.system('touch MARKER')``. Paths: base weights (``create_model(pretrained=)``), adapters
(``load_adapter``), ``tools/test.py CKPT`` (MMEngine ``load_from``), ``tools/train.py --resume CKPT``
and ``--resume`` from the work dir's ``last_checkpoint``. Each must raise naming the file and the
refused global, and the marker file must not exist afterwards.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

import clipadapt
from clipadapt.adapter import load_adapter
from clipadapt.datasets.synthetic import ensure_synthetic_world
from clipadapt.engine import UnsafeCheckpointError, enable_safe_resume
from clipadapt.engine.paths import load_tool

ROOT = Path(__file__).resolve().parents[2]
VPT_CONFIG = ROOT / "configs" / "vpt" / "vpt_tiny-vit_1xb32_synthetic-dark-16shot.py"
WORLD = dict(
    colours=["red", "blue"],
    shapes=["circle"],
    per_class_train=2,
    per_class_val=1,
    per_class_test=1,
    scenes_train=1,
    scenes_val=1,
    scenes_test=1,
    min_objects=1,
    max_objects=1,
)


class _Payload:
    """Unpickling this runs a shell command -- unless the unpickler refuses ``os.system``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


@pytest.fixture
def evil(tmp_path) -> tuple[Path, Path]:
    marker = tmp_path / "PWNED"
    path = tmp_path / "evil.pth"
    torch.save({"state_dict": {"w": torch.ones(1)}, "meta": {"epoch": 1, "x": _Payload(marker)}}, path)
    assert not marker.exists()
    return path, marker


def _refused(err: BaseException, path: Path) -> None:
    text = str(err)
    assert str(path) in text and "weights_only=True" in text, text
    assert "posix.system" in text or "UnpicklingError" in text, text


def test_base_weights_are_refused(evil):
    path, marker = evil
    with pytest.raises(ValueError) as err:
        clipadapt.create_model("tiny-vit", pretrained=path)
    _refused(err.value, path)
    assert not marker.exists()


def test_adapters_are_refused(evil):
    path, marker = evil
    with pytest.raises(ValueError) as err:
        load_adapter(path)
    _refused(err.value, path)
    assert not marker.exists()


def test_mmengine_loader_is_replaced_and_refuses(evil):
    from mmengine.runner import load_checkpoint

    path, marker = evil
    enable_safe_resume()
    with pytest.raises(UnsafeCheckpointError, match=r"refused to load checkpoint .*evil\.pth: .*posix\.system"):
        load_checkpoint(torch.nn.Linear(1, 1), str(path))
    assert not marker.exists()


def _tool(name: str):
    return load_tool(name)


@pytest.fixture(scope="module")
def config(tmp_path_factory):
    root = tmp_path_factory.mktemp("malicious")
    world = ensure_synthetic_world(root / "world", progress=False, workers=1, **WORLD)
    config = root / "vpt_small.py"
    config.write_text(
        f"_base_ = [{str(VPT_CONFIG)!r}]\nsynthetic_world = {WORLD!r}\n"
        "model = dict(pretrained=None, plugins=[dict(type='VPT', num_tokens=2)])\n"
        "train_dataloader = dict(batch_size=2, dataset=dict(num_shots=2))\n"
        "val_dataloader = dict(batch_size=2)\ntest_dataloader = dict(batch_size=2)\n"
        "train_cfg = dict(max_epochs=1)\nvisualizer = dict(vis_backends=[dict(type='LocalVisBackend')])\n"
    )
    return config, world, root / "cache"


@pytest.mark.parametrize("how", ["test_tool", "resume_path", "resume_auto"])
def test_runner_paths_refuse(how, config, evil, tmp_path, monkeypatch):
    cfg, world, cache = config
    monkeypatch.setenv("CLIPADAPT_DATA", str(world))
    monkeypatch.setenv("CLIPADAPT_CACHE", str(cache))
    path, marker = evil
    work_dir = tmp_path / "work"
    if how == "test_tool":
        run = lambda: _tool("test").main([str(cfg), str(path), "--work-dir", str(work_dir)])  # noqa: E731
    elif how == "resume_path":
        run = lambda: _tool("train").main([str(cfg), "--work-dir", str(work_dir), "--resume", str(path)])  # noqa: E731
    else:  # a planted last_checkpoint pointer: `--resume` alone follows it
        work_dir.mkdir()
        (work_dir / "last_checkpoint").write_text(str(path))
        run = lambda: _tool("train").main([str(cfg), "--work-dir", str(work_dir), "--resume"])  # noqa: E731
    with pytest.raises(UnsafeCheckpointError) as err:
        run()
    _refused(err.value, path)
    assert not marker.exists()
