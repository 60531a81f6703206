"""The explicit package list in setup.cfg covers every package folder of the tree."""

from __future__ import annotations

import configparser
from pathlib import Path

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
