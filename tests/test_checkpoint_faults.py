"""Every load path fails the same way on a broken checkpoint: the file named, the reason in one line.

Faults: a truncated ``torch.save`` file, a zero-byte ``.pt``, a zero-byte ``.safetensors``, a file of
another format, and a malicious pickle. Entry points: ``clipadapt.create_model(pretrained=)``,
``clipadapt.load_adapter``, ``tools/test.py CONFIG CKPT``, ``tools/train.py --resume CKPT`` and
``tools/export_open_clip.py CKPT OUT --config``. Each must raise an error whose message names the file,
fits on one line, never suggests ``weights_only=False``, and leaves no log folder or output behind.
(Before: ``OSError: [Errno 22] Invalid argument``, a bare ``EOFError``, ``header too small``, and for
the export tool torch's raw ``UnpicklingError``, none naming the file.)
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

import clipadapt
from clipadapt.engine.paths import load_tool
from clipadapt.models.checkpoint_io import CheckpointReadError, UnsafeCheckpointError
from tests.helpers import two_class_vpt_config


class _Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def _truncated(tmp: Path) -> tuple[Path, str]:
    path = tmp / "epoch_3.pth"
    torch.save({"meta": {"epoch": 3}, "state_dict": {"w": torch.randn(256, 256)}}, path)
    path.write_bytes(path.read_bytes()[:4188])  # the size that gave "OSError: [Errno 22] Invalid argument"
    return path, r"it is truncated or corrupt"


def _empty_pt(tmp: Path) -> tuple[Path, str]:
    path = tmp / "empty.pt"
    path.write_bytes(b"")
    return path, r"the file is empty \(0 bytes\)"


def _empty_safetensors(tmp: Path) -> tuple[Path, str]:
    path = tmp / "empty.safetensors"
    path.write_bytes(b"")
    return path, r"the file is empty \(0 bytes\)"


def _wrong_format(tmp: Path) -> tuple[Path, str]:
    path = tmp / "notes.pth"
    path.write_text("these are my notes, not a checkpoint\n")
    return path, r"it is not a (torch )?checkpoint"


def _malicious(tmp: Path) -> tuple[Path, str]:
    path = tmp / "evil.pth"
    torch.save({"state_dict": {"w": torch.ones(1)}, "meta": {"x": _Payload(tmp / "PWNED")}}, path)
    return path, r"refused to load checkpoint .*: it asks for the global posix\.system"


FAULTS: dict[str, Callable[[Path], tuple[Path, str]]] = {
    "truncated": _truncated,
    "zero-byte .pt": _empty_pt,
    "zero-byte .safetensors": _empty_safetensors,
    "wrong format": _wrong_format,
    "malicious pickle": _malicious,
}


@pytest.fixture(scope="module")
def config(tmp_path_factory) -> tuple[Path, Path]:
    return two_class_vpt_config(tmp_path_factory.mktemp("faults"))


def _work(tmp: Path) -> Path:
    return tmp / "work"


ENTRIES: dict[str, Callable[[Path, Path, Path], object]] = {
    "create_model": lambda path, cfg, tmp: clipadapt.create_model("tiny-vit", pretrained=path),
    "load_adapter": lambda path, cfg, tmp: clipadapt.load_adapter(path),
    "tools/test.py": lambda path, cfg, tmp: load_tool("test").main(
        [str(cfg), str(path), "--work-dir", str(_work(tmp))]
    ),
    "tools/train.py --resume": lambda path, cfg, tmp: load_tool("train").main(
        [str(cfg), "--work-dir", str(_work(tmp)), "--resume", str(path)]
    ),
    "tools/export_open_clip.py": lambda path, cfg, tmp: load_tool("export_open_clip").main(
        [str(path), str(tmp / "export"), "--config", str(cfg)]
    ),
}


@pytest.mark.parametrize("fault", list(FAULTS))
@pytest.mark.parametrize("entry", list(ENTRIES))
def test_a_broken_checkpoint_is_named_in_one_line(entry, fault, config, tmp_path, monkeypatch):
    cfg, world = config
    monkeypatch.setenv("CLIPADAPT_DATA", str(world))
    monkeypatch.setenv("CLIPADAPT_CACHE", str(tmp_path / "cache"))
    path, reason = FAULTS[fault](tmp_path)
    expected = SystemExit if entry.startswith("tools/export") else CheckpointReadError
    with pytest.raises(expected) as info:
        ENTRIES[entry](path, cfg, tmp_path)
    text = str(info.value)
    assert str(path) in text and re.search(reason, text), text
    assert "\n" not in text and "weights_only=False" not in text, text
    if fault == "malicious pickle":
        assert isinstance(info.value, (UnsafeCheckpointError, SystemExit)) and not (tmp_path / "PWNED").exists()
    assert not _work(tmp_path).exists(), "a failed run left its work dir (log folders) behind"
    assert not (tmp_path / "export").exists()


def test_runs_started_in_one_process_within_one_second_keep_their_own_folders(config, tmp_path, monkeypatch):
    """MMEngine names its logger and visualizer singletons "<config>_<timestamp>", to the second: a second
    in-process run in the same second was handed the first run's visualizer, which wrote into the first
    run's (already removed) log folder and failed with FileNotFoundError instead of the checkpoint error."""
    import time
    import types

    import mmengine.runner.runner as mmengine_runner

    cfg, world = config
    monkeypatch.setenv("CLIPADAPT_DATA", str(world))
    monkeypatch.setenv("CLIPADAPT_CACHE", str(tmp_path / "cache"))
    frozen = types.SimpleNamespace(time=lambda: 1_800_000_000.0, strftime=time.strftime, localtime=time.localtime)
    monkeypatch.setattr(mmengine_runner, "time", frozen)  # every run starts in the same second
    path, reason = _empty_pt(tmp_path)
    for attempt in ("first", "second", "third"):
        with pytest.raises(CheckpointReadError, match=reason):
            load_tool("test").main([str(cfg), str(path), "--work-dir", str(tmp_path / attempt)])
