"""The work dir of a training run: one run at a time, what a kill left behind, and where to resume.

- :class:`WorkDirLock`: ``tools/train.py`` holds ``<work_dir>/.clipadapt.lock`` (an ``fcntl`` lock, freed
  by the kernel when its process dies) for the whole run. A second run on the same work dir fails naming
  the process that holds it; a lock file left by a killed run is taken over, with a message.
- :func:`remove_stale_temporaries`: the temporary files of :func:`clipadapt.fileio.atomic_write` that a
  kill left beside a checkpoint (``.epoch_2.pth.<random>.tmp``), removed at the next start.
- :func:`find_resume_checkpoint`: what ``--resume`` continues from. The ``last_checkpoint`` pointer
  when it names a complete file; otherwise the newest complete ``epoch_N.pth`` / ``iter_N.pth`` of the
  work dir, saying which and why; an error naming every file when none is complete.
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import socket
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from mmengine.hooks import Hook

from clipadapt.models.checkpoint_io import zip_problem

__all__ = [
    "LOCK_NAME",
    "ResumeError",
    "RunStart",
    "WorkDirBusyError",
    "WorkDirLock",
    "checkpoint_problem",
    "find_resume_checkpoint",
    "no_trace_of_failed_start",
    "remove_stale_temporaries",
]

LOCK_NAME = ".clipadapt.lock"
POINTER = "last_checkpoint"
_CHECKPOINT = re.compile(r"^(?:epoch|iter)_(\d+)\.pth$")
_TEMPORARY = re.compile(r"^\..+\.[A-Za-z0-9_]{8}\.tmp$")  # tempfile.mkstemp(prefix=".<name>.", suffix=".tmp")


class WorkDirBusyError(RuntimeError):
    """Another live process trains in this work dir."""


class ResumeError(RuntimeError):
    """``--resume`` found checkpoints in the work dir, but none of them is complete."""


class WorkDirLock:
    """An exclusive lock on a work dir for the life of one process (``with WorkDirLock(dir): ...``).

    The lock file records the holder's pid, host, start time and command line, so the error a second
    run gets names it. The lock is ``fcntl.flock`` on that file: the kernel frees it when the holder
    dies, however it dies, so a lock file whose lock is free was left by a dead run and is taken over.
    """

    def __init__(self, work_dir: str | os.PathLike[str]) -> None:
        self.path = Path(work_dir) / LOCK_NAME
        self._fd: int | None = None
        self.took_over: str | None = None  # the previous holder's record, when a stale lock was taken over

    def acquire(self) -> WorkDirLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _read_fd(fd) or "a process that has not written its record yet"
                os.close(fd)
                raise WorkDirBusyError(
                    f"work dir {self.path.parent} is in use by another training run ({holder}); "
                    "wait for it to finish, or pass another --work-dir"
                ) from None
            try:  # the file may have been removed (and recreated) by its holder between open and flock
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        previous = _read_fd(fd)
        if previous:
            self.took_over = previous
            print(
                f"took over the lock {self.path} left by a run that is no longer running ({previous})",
                file=sys.stderr,
            )
        record = f"pid {os.getpid()} on {socket.gethostname()}, started {time.strftime('%Y-%m-%d %H:%M:%S')}: "
        record += " ".join(sys.argv)
        os.ftruncate(fd, 0)
        os.pwrite(fd, record.encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is None:
            return
        self.path.unlink(missing_ok=True)  # while still locked: nobody can take it in between
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = None

    def __enter__(self) -> WorkDirLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def _read_fd(fd: int) -> str:
    return os.pread(fd, 4096, 0).decode(errors="replace").strip()


def remove_stale_temporaries(folder: str | os.PathLike[str]) -> list[Path]:
    """Delete the ``atomic_write`` temporaries a kill left in ``folder``; returns what was removed.

    Call it only while holding the folder's :class:`WorkDirLock`: then no live writer owns them.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    stale = [p for p in folder.iterdir() if _TEMPORARY.match(p.name) and p.is_file()]
    for path in stale:
        path.unlink(missing_ok=True)
    if stale:
        print(f"removed {len(stale)} temporary file(s) an interrupted run left: {[p.name for p in stale]}")
    return stale


def checkpoint_problem(path: str | os.PathLike[str]) -> str | None:
    """Why ``path`` is not a complete ``torch.save`` checkpoint (every zip record present, CRCs right), or None.

    Reads the bytes but unpickles nothing: the load itself still goes through the weights-only reader.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError:
        return "it does not exist"
    if not path.is_file():
        return "it is not a file"
    if size == 0:
        return "it is empty (0 bytes)"
    return zip_problem(path)


def _checkpoints(work_dir: Path) -> list[Path]:
    """``epoch_N.pth`` / ``iter_N.pth`` of ``work_dir``, newest first (by N, then modification time)."""
    found = [p for p in work_dir.iterdir() if _CHECKPOINT.match(p.name)] if work_dir.is_dir() else []
    return sorted(found, key=lambda p: (_checkpoint_number(p), p.stat().st_mtime_ns), reverse=True)


def _checkpoint_number(path: Path) -> int:
    match = _CHECKPOINT.match(path.name)
    assert match is not None, path
    return int(match.group(1))


def find_resume_checkpoint(work_dir: str | os.PathLike[str]) -> tuple[str | None, str | None]:
    """The checkpoint ``--resume`` continues from, and a message when it is not the pointer's.

    Returns:
        ``(path, None)`` when ``last_checkpoint`` names a complete file; ``(path, why)`` when the pointer
        is missing or names a broken file and ``path`` is the newest complete checkpoint of the work dir;
        ``(None, why)`` when the work dir holds no checkpoint (training starts from scratch).

    Raises:
        ResumeError: checkpoints exist but none is complete; each is named with what is wrong with it.
    """
    work_dir = Path(work_dir)
    pointer = work_dir / POINTER
    named: Path | None = None
    if pointer.is_file():
        text = pointer.read_text().strip()
        named = Path(text) if text else None
        problem = checkpoint_problem(named) if named else "it is empty"
        if named is not None and problem is None:
            return str(named), None
        why = f"{pointer} names {named}, but {problem}" if named else f"{pointer} is empty"
    else:
        why = f"{pointer} is missing"
    skipped = []
    for candidate in _checkpoints(work_dir):
        if named is not None and candidate.resolve() == named.resolve():
            skipped.append(f"{candidate.name} ({problem})")
            continue
        problem_here = checkpoint_problem(candidate)
        if problem_here is None:
            return str(candidate), f"{why}; resuming from the newest complete checkpoint {candidate}"
        skipped.append(f"{candidate.name} ({problem_here})")
    if not skipped and named is None:
        return None, f"{why} and {work_dir} holds no checkpoint: training starts from scratch"
    raise ResumeError(
        f"cannot resume in {work_dir}: {why}, and no checkpoint there is complete: "
        + ("; ".join(skipped) if skipped else "no epoch_N.pth or iter_N.pth found")
    )


_LOG_FOLDER = re.compile(r"^\d{8}_\d{6}$")  # MMEngine's <work_dir>/<timestamp>/


class RunStart(Hook):
    """Marks that training reached its first iteration: a run that fails before leaves no log folder."""

    priority = "VERY_LOW"

    def __init__(self) -> None:
        self.started = False

    def before_train_iter(self, runner: Any, batch_idx: int, data_batch: Any = None) -> None:
        self.started = True


@contextmanager
def no_trace_of_failed_start(work_dir: str | os.PathLike[str], lock: bool = False) -> Iterator[RunStart]:
    """Around building and running a runner (optionally holding the work dir's :class:`WorkDirLock`).

    If the run fails before training starts (a broken checkpoint, a model that does not build), what it
    created in the work dir goes (the timestamped log folder, the dumped config), and the work dir
    itself when this run created it. A run that reached its first training iteration keeps its logs:
    register the yielded :class:`RunStart` hook on the runner.
    """
    work_dir = Path(work_dir)
    existed = work_dir.is_dir()
    before = set(work_dir.iterdir()) if existed else set()
    marker = RunStart()
    held = WorkDirLock(work_dir).acquire() if lock else None
    try:
        yield marker
    except BaseException:
        if not marker.started and work_dir.is_dir():
            for path in set(work_dir.iterdir()) - before:
                if path.name == LOCK_NAME:
                    continue
                if path.is_dir():
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    path.unlink(missing_ok=True)
        raise
    finally:
        if held is not None:
            held.release()
        if not existed and work_dir.is_dir() and not any(work_dir.iterdir()):
            work_dir.rmdir()
