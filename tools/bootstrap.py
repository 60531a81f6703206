"""Install clipadapt, or one of its extras, into this interpreter's environment, in a few clear lines.

The Makefile runs it with the virtual environment's Python; each target installs only what it needs::

    .venv/bin/python tools/bootstrap.py core    # clipadapt and its runtime dependencies (make quickstart)
    .venv/bin/python tools/bootstrap.py dev     # + pytest, pytest-xdist, ruff, mypy (make test, make lint)
    .venv/bin/python tools/bootstrap.py docs    # + mkdocs and its plugins (make docs, make test)

MMDetection and mmcv are installed by ``tools/install_mmdet.py`` (``make mmdet``; ``make test`` runs it).
pip's own output goes to a log file (``install.log`` in the environment's folder, or ``--log``); the
terminal gets one line per step, a line every 30 seconds while a step runs, and, when pip fails, the
end of the log and its path. Standard library only: it runs before anything is installed.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXTRAS = {"core": "", "dev": "[dev]", "docs": "[docs]"}
# What nearly every clipadapt process imports; importing it once after the core install leaves the bytecode of
# everything it pulls in (torch alone pulls in sympy, triton's stubs and more; see byte_compile).
HOT_MODULES = ["torch", "torchvision", "mmengine.runner", "open_clip", "clipadapt", "matplotlib.pyplot"]
TICK_SECONDS = 30.0
NINJA_STEP = re.compile(rb"^\s*\[(\d+)/(\d+)\]", re.M)


def default_log() -> Path:
    """``<venv>/install.log`` inside a virtual environment, else ``$CLIPADAPT_CACHE/install.log``."""
    if sys.prefix != sys.base_prefix:
        return Path(sys.prefix) / "install.log"
    cache = os.environ.get("CLIPADAPT_CACHE") or Path.home() / ".cache" / "clipadapt"
    return Path(cache).expanduser() / "install.log"


def duration(seconds: float) -> str:
    """``42 s``, ``3 min 05 s``."""
    seconds = round(seconds)
    return f"{seconds // 60} min {seconds % 60:02d} s" if seconds >= 60 else f"{seconds} s"


def ninja_progress(log: Path, offset: int = 0) -> str:
    """``"compiled 12/130"`` from the last ``[k/N]`` line that ninja wrote to ``log`` after ``offset``; else ``""``."""
    try:
        with open(log, "rb") as handle:
            handle.seek(max(offset, os.path.getsize(log) - 65536))
            steps = NINJA_STEP.findall(handle.read())
    except OSError:
        return ""
    return f"compiled {int(steps[-1][0])}/{int(steps[-1][1])}" if steps else ""


def tail(log: Path, lines: int = 15) -> str:
    try:
        text = log.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join("    " + line for line in text[-lines:])


class StepFailed(SystemExit):
    """A logged step failed; the message names the log."""


def run_logged(
    cmd: list[str],
    what: str,
    log: Path,
    env: dict[str, str] | None = None,
    progress: Callable[[Path, int], str] | None = None,
    every: float = TICK_SECONDS,
) -> float:
    """Run ``cmd`` with its output appended to ``log``; print what it does, its elapsed time, its end.

    ``progress(log, offset)`` may add a short text to the elapsed-time lines (``offset``: where this
    step's output starts in the log). Returns the seconds it took. Raises :class:`StepFailed`, whose
    message holds the end of the log and its path, when ``cmd`` fails.
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    tty = sys.stdout.isatty()
    start = time.monotonic()
    print(f"==> {what}", flush=True)
    with open(log, "ab") as handle:
        handle.write(f"\n==> {what}\n+ {' '.join(cmd)}\n".encode())
        handle.flush()
        offset = handle.tell()
        proc = subprocess.Popen(cmd, stdout=handle, stderr=subprocess.STDOUT, env=env)
        next_tick = start + every
        while proc.poll() is None:
            time.sleep(min(1.0, every))
            now = time.monotonic()
            if now >= next_tick:
                next_tick += every
                extra = progress(log, offset) if progress else ""
                line = f"    ... {duration(now - start)}" + (f", {extra}" if extra else "")
                print(f"\r{line}   " if tty else line, end="" if tty else "\n", flush=True)
    elapsed = time.monotonic() - start
    if tty and elapsed >= every:
        print()
    if proc.returncode != 0:
        raise StepFailed(
            f"failed after {duration(elapsed)} (exit {proc.returncode}): {what}\n"
            f"the end of {log}:\n{tail(log)}\nfull log: {log}"
        )
    print(f"    done in {duration(elapsed)}", flush=True)
    return elapsed


def pip_install(args: list[str], what: str, log: Path) -> float:
    # --no-compile: pip would byte-compile all ~12,000 modules of the environment one by one (about 30 s of
    # one core for the core's, most of them never imported); Python compiles a module when it is first imported.
    cmd = [sys.executable, "-m", "pip", "install", "--disable-pip-version-check", "--no-compile", *args]
    return run_logged(cmd, what, log)


def byte_compile(log: Path) -> float:
    """Import ``HOT_MODULES`` once with bytecode writing on (after the core install); returns the seconds it took.

    pip's compile step is off (``--no-compile``: all ~12,000 modules, one at a time, ~30 s), and Python
    compiles a module when it is first imported and caches the result, except where
    ``PYTHONDONTWRITEBYTECODE`` is set, as in many CI images and containers. There every process compiled
    torch and the rest again, ~6 s of CPU each, and the test suite, which starts hundreds of processes,
    took twice as long. One import here writes the bytecode of exactly the modules such a process loads.
    """
    code = "import importlib, sys\nfor name in sys.argv[1:]:\n    importlib.import_module(name)"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"} | {"MPLBACKEND": "Agg"}
    what = f"byte-compiling what every run imports ({', '.join(HOT_MODULES)})"
    return run_logged([sys.executable, "-c", code, *HOT_MODULES], what, log, env=env)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("extra", choices=sorted(EXTRAS), help="what to install")
    parser.add_argument("--log", type=Path, default=None, help="pip's output (default: <venv>/install.log)")
    args = parser.parse_args(argv)
    log = args.log or default_log()
    print(f"installing clipadapt {args.extra} into {sys.prefix} (pip's output: {log})", flush=True)
    if args.extra == "core":
        pip_install(["--upgrade", "pip>=24"], "pip >= 24", log)
        what = "clipadapt and its runtime dependencies (torch, open_clip, mmengine, ...)"
    else:
        what = f"the [{args.extra}] extra"
    pip_install(["-e", f"{ROOT}{EXTRAS[args.extra]}"], what, log)
    if args.extra == "core":
        byte_compile(log)
    return 0


if __name__ == "__main__":
    sys.exit(main())
