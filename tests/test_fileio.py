"""clipadapt.fileio: atomic writes and the inter-process lock (each written once, used everywhere)."""

from __future__ import annotations

import multiprocessing
import time
from pathlib import Path

import pytest

from clipadapt.fileio import atomic_write, atomic_write_bytes, file_lock


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "file.bin"
    atomic_write_bytes(target, b"old")

    def broken(tmp: str) -> None:
        Path(tmp).write_bytes(b"half")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        atomic_write(target, broken)
    assert target.read_bytes() == b"old"
    assert [p.name for p in target.parent.iterdir()] == ["file.bin"]


def _hold(lock: str, log: str, tag: str) -> None:
    with file_lock(lock):
        with open(log, "a") as handle:
            handle.write(f"{tag}+")
        time.sleep(0.3)
        with open(log, "a") as handle:
            handle.write(f"{tag}-")


def test_the_lock_serialises_processes(tmp_path: Path) -> None:
    lock, log = str(tmp_path / "locks" / ".x.lock"), str(tmp_path / "log")
    context = multiprocessing.get_context("spawn")
    procs = [context.Process(target=_hold, args=(lock, log, t)) for t in "ab"]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(timeout=60)
    text = Path(log).read_text()
    assert text in ("a+a-b+b-", "b+b-a+a-"), text
