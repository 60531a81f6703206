"""Out-of-tree plugins are found through the entry point group and through custom_imports."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest
from mmengine.config import Config

import clipadapt
from clipadapt.plugins import discovery

PLUGIN_SOURCE = """
import torch
from clipadapt.plugins import Plugin
from clipadapt.registry import PLUGINS


@PLUGINS.register_module()
class {name}(Plugin):
    prefix = "{prefix}"
    hook_towers = {{"embed": ("text",)}}

    def attach(self, clip):
        self.shift = torch.nn.Parameter(torch.zeros(clip.text.width))

    def embed_hook(self, x, context):
        return x + self.shift
"""


def _write_package(root: Path, module: str, name: str, entry_point: bool) -> None:
    (root / f"{module}.py").write_text(PLUGIN_SOURCE.format(name=name, prefix=name.lower()))
    if entry_point:
        info = root / f"{module}-0.1.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module}\nVersion: 0.1\n")
        (info / "entry_points.txt").write_text(f"[clipadapt.plugins]\n{module} = {module}\n")


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    discovery.load_plugin_modules(force=True)


def test_entry_point_plugin_is_found(site: Path) -> None:
    _write_package(site, "thirdparty_shift", "EntryShift", entry_point=True)
    assert "thirdparty_shift" not in sys.modules
    discovery.load_plugin_modules(force=True)
    assert "EntryShift" in clipadapt.registered_plugins()
    model = clipadapt.create_model("tiny-vit", plugins=[dict(type="EntryShift")])
    assert [n for n, p in model.named_parameters() if p.requires_grad] == ["plugins.entryshift.shift"]


def test_custom_imports_plugin_is_found(site: Path) -> None:
    _write_package(site, "configured_shift", "ConfiguredShift", entry_point=False)
    config = site / "cfg.py"
    config.write_text(
        textwrap.dedent(
            """
            custom_imports = dict(imports=["configured_shift"], allow_failed_imports=False)
            plugins = [dict(type="ConfiguredShift")]
            """
        )
    )
    cfg = Config.fromfile(str(config))
    model = clipadapt.create_model("tiny-vit", plugins=cfg.plugins)
    assert "configuredshift" in model.plugins


def test_broken_entry_point_warns_with_its_name(site: Path) -> None:
    info = site / "broken_pkg-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: broken_pkg\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[clipadapt.plugins]\nbroken = broken_pkg_missing_module\n")
    with pytest.warns(RuntimeWarning, match="'broken' = 'broken_pkg_missing_module' of package 'broken_pkg'"):
        discovery.load_plugin_modules(force=True)
