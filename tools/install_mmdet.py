"""Install MMDetection 3.3.0 with a full mmcv 2.1.0 (compiled ops) into this interpreter.

No mmcv wheel exists for torch 2.14 on the package registries, and mmcv 2.1.0's source
build stops at ``#error C++20 or later compatible compiler is required`` because its
``setup.py`` asks for ``-std=c++14``/``-std=c++17``. This script:

1. looks for a wheel built earlier for this Python and this torch in the wheel cache
   (``$CLIPADAPT_CACHE/wheels``, by default ``~/.cache/clipadapt/wheels``);
2. otherwise downloads the mmcv 2.1.0 source distribution, raises the C++ standard to
   C++20, and builds the wheel with its CPU ops (``MMCV_WITH_OPS=1``; about 17 minutes
   on two cores), then moves it into the cache atomically so a killed build leaves
   nothing half-written behind;
3. installs the project's ``[mmdet]`` extra (``mmdet==3.3.0``, ``mmcv==2.1.0``, ``setuptools<81``) with
   the cached wheel on pip's ``--find-links``, so pip takes the wheel instead of building the sdist.

The build runs without build isolation against the installed torch, so it needs
``setuptools<81`` (mmcv's ``setup.py`` imports ``pkg_resources``), ``wheel`` and ``ninja``;
the script installs them first. Run it with the interpreter of the environment to
install into (``make mmdet`` does; ``make test`` too)::

    .venv/bin/python tools/install_mmdet.py            # build once, then install
    .venv/bin/python tools/install_mmdet.py --check    # exit 0 if mmcv ops and mmdet import

The terminal gets one line per step and, during the build, a line every 30 seconds with the elapsed
time and ninja's count of compiled files; pip's and the compiler's output go to the log
(``<venv>/install.log``, or ``--log``), whose end is printed when a step fails.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from clipadapt.engine.paths import load_tool

default_log, ninja_progress, run_logged = (
    getattr(load_tool("bootstrap"), n) for n in ("default_log", "ninja_progress", "run_logged")
)

ROOT = Path(__file__).resolve().parent.parent
MMCV = "2.1.0"
MMDET = "3.3.0"
BUILD_REQUIREMENTS = ["setuptools>=77.0.3,<81", "wheel", "ninja", "psutil"]
STD_FLAG = re.compile(r"-std=c\+\+1[47]")


def cache_root() -> Path:
    return Path(os.environ.get("CLIPADAPT_CACHE", Path.home() / ".cache" / "clipadapt"))


def wheel_dir() -> Path:
    """Wheels are ABI-tied to torch and Python: one folder per (torch, python) pair."""
    import torch

    torch_version = torch.__version__.split("+")[0]
    tag = f"cp{sys.version_info.major}{sys.version_info.minor}"
    return cache_root() / "wheels" / f"torch-{torch_version}-{tag}"


def pip(what: str, log: Path, *args: str) -> None:
    run_logged([sys.executable, "-m", "pip", *args, "--disable-pip-version-check"], what, log)


def installed() -> bool:
    """True when mmcv's compiled ops load and mmdet imports at the pinned versions."""
    code = (
        "import mmcv, mmdet; from mmcv.ops import nms; "
        f"assert mmcv.__version__ == {MMCV!r} and mmdet.__version__ == {MMDET!r}"
    )
    return subprocess.run([sys.executable, "-c", code], capture_output=True).returncode == 0


def patch_cxx_standard(setup_py: Path) -> int:
    """Raise every ``-std=c++14``/``-std=c++17`` in mmcv's setup.py to ``-std=c++20``."""
    text = setup_py.read_text()
    patched, count = STD_FLAG.subn("-std=c++20", text)
    if count == 0 and "-std=c++20" not in text:
        raise RuntimeError(
            f"{setup_py}: no -std=c++14/17 flag found to raise to C++20; "
            "the mmcv source layout changed, update tools/install_mmdet.py"
        )
    setup_py.write_text(patched)
    return count


def build_wheel(dest: Path, jobs: int, log: Path) -> Path:
    pip("mmcv's build requirements (setuptools<81, wheel, ninja)", log, "install", *BUILD_REQUIREMENTS)
    with tempfile.TemporaryDirectory(prefix="mmcv-build-") as tmp:
        tmp = Path(tmp)
        pip(
            f"downloading the mmcv {MMCV} source",
            log,
            "download",
            "--no-deps",
            "--no-build-isolation",
            "--no-binary",
            ":all:",
            f"mmcv=={MMCV}",
            "-d",
            str(tmp),
        )
        (sdist,) = tmp.glob(f"mmcv-{MMCV}.tar.gz")
        with tarfile.open(sdist) as tar:
            tar.extractall(tmp, filter="data")
        src = tmp / f"mmcv-{MMCV}"
        patch_cxx_standard(src / "setup.py")
        env = dict(os.environ, MMCV_WITH_OPS="1", MAX_JOBS=str(jobs), FORCE_CUDA="0")
        out = tmp / "dist"
        # -v: the build's ninja lines ("[12/130] c++ ...") reach the log, and the ticker counts them.
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-v",
            "--no-build-isolation",
            "--no-deps",
            "-w",
            str(out),
            str(src),
        ]
        what = f"building mmcv {MMCV} with its CPU ops ({jobs} jobs; 15 to 50 minutes on two cores, once)"
        run_logged(cmd, what, log, env=env, progress=ninja_progress)
        (built,) = out.glob("mmcv-*.whl")
        dest.mkdir(parents=True, exist_ok=True)
        partial = dest / (built.name + ".partial")
        shutil.copy2(built, partial)
        final = dest / built.name
        os.replace(partial, final)
        return final


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--check", action="store_true", help="only report whether mmcv (with ops) and mmdet are installed"
    )
    parser.add_argument(
        "--jobs", type=int, default=os.cpu_count() or 1, help="parallel compile jobs for the mmcv build"
    )
    parser.add_argument(
        "--log", type=Path, default=None, help="pip's and the build's output (default: <venv>/install.log)"
    )
    args = parser.parse_args(argv)
    log = args.log or default_log()
    if installed():
        print(f"mmcv {MMCV} (with ops) and mmdet {MMDET} are installed")
        return 0
    if args.check:
        print(f"mmcv {MMCV} with compiled ops and mmdet {MMDET} are not both installed")
        return 1
    dest = wheel_dir()
    wheels = sorted(dest.glob(f"mmcv-{MMCV}-*.whl"))
    if wheels:
        print(f"using the cached mmcv wheel {wheels[-1]}")
        wheel = wheels[-1]
    else:
        print(f"no cached mmcv {MMCV} wheel in {dest}: building one from source (output: {log})")
        wheel = build_wheel(dest, args.jobs, log)
    # The extra pins mmdet, mmcv and setuptools<81 (mmengine's package_utils, used by ``mmdet::``
    # config scopes, imports pkg_resources at run time).
    pip(f"MMDetection {MMDET} and mmcv {MMCV} (the [mmdet] extra)", log, "install", "--find-links", str(wheel.parent),
        "-e", f"{ROOT}[mmdet]")  # fmt: skip
    if not installed():
        raise RuntimeError(
            f"installed {wheel.name} and mmdet {MMDET}, but `from mmcv.ops "
            "import nms` still fails; run it by hand to see why"
        )
    print(f"mmcv {MMCV} (with ops) and mmdet {MMDET} are installed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
