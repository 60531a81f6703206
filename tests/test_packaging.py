"""The explicit package list in setup.cfg covers every package folder of the tree."""

from __future__ import annotations

import configparser
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_every_package_folder_is_listed_in_setup_cfg() -> None:
    parser = configparser.ConfigParser()
    parser.read(ROOT / "setup.cfg")
    listed = set(parser["options"]["packages"].split())
    found = set()
    for top, name in (("clipadapt", "clipadapt"), ("plugins", "clipadapt_plugins")):
        for init in (ROOT / top).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / top)
            found.add(".".join([name, *rel.parts]))
    assert found == listed, f"missing from setup.cfg: {sorted(found - listed)}; stale: {sorted(listed - found)}"


def test_builtin_plugins_install_under_their_own_name() -> None:
    import clipadapt_plugins

    assert Path(clipadapt_plugins.__file__).resolve().parent == ROOT / "plugins"


def test_an_installed_wheel_registers_every_builtin_plugin(tmp_path: Path) -> None:
    """Installed (no source checkout beside the package), the built-ins register through ``clipadapt_plugins``,
    and the wheel ships the package and the plugins but not benchmarks/."""
    import shutil
    import subprocess
    import sys

    pytest.importorskip("setuptools")
    source, wheel, site = tmp_path / "source", tmp_path / "wheel", tmp_path / "site"
    source.mkdir()  # build from a copy, so that no build/ or egg-info lands in the checkout
    for name in ("setup.cfg", "pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    for folder in ("clipadapt", "plugins"):
        shutil.copytree(ROOT / folder, source / folder, ignore=shutil.ignore_patterns("__pycache__"))
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", str(source), "-w", str(wheel)], check=True)
    subprocess.run([*pip, "install", "--no-deps", "--target", str(site), *map(str, wheel.glob("*.whl"))], check=True)
    assert {p.name for p in site.iterdir()} >= {"clipadapt", "clipadapt_plugins"}
    assert not (site / "benchmarks").exists()
    code = (
        "import clipadapt, clipadapt_plugins; "
        "print(clipadapt_plugins.__file__); print(' '.join(clipadapt.registered_plugins()))"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"PYTHONPATH": str(site)}
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    location, names = done.stdout.splitlines()[-2:]
    assert Path(location).parent == site / "clipadapt_plugins"
    expected = {"CLOCPrompter", "CoCoOp", "CoOp", "IVLP", "LongCLIP", "MaPLe", "MoEUpcycle", "RegionAlign", "VPT"}
    assert expected <= set(names.split())
