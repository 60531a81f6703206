"""clipadapt.engine.paths: the cache:// resolver registry that the tiny CLIP fills in, and tools by path."""

from __future__ import annotations

from pathlib import Path

import pytest

from clipadapt.engine import paths
from clipadapt.engine.prepare import resolve_uri


def test_the_tiny_clip_registers_its_cache_name() -> None:
    from clipadapt.engine import tiny_clip

    assert paths.CACHE_RESOLVERS["tiny-vit-synthetic"] is tiny_clip.ensure_tiny_clip


def test_a_registered_resolver_resolves_and_an_unknown_name_lists_the_known(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setitem(paths.CACHE_RESOLVERS, "toy", lambda: tmp_path / "toy.pt")
    assert resolve_uri("cache://toy") == str(tmp_path / "toy.pt")
    with pytest.raises(ValueError, match=r"unknown cached model cache://nope; known: .*cache://toy"):
        resolve_uri("cache://nope")
    with pytest.raises(ValueError, match="already has a resolver"):
        paths.register_cache_resolver("toy", lambda: tmp_path)


def test_load_tool_loads_a_script_by_path() -> None:
    tool = paths.load_tool("analysis/plot_results")
    assert tool.__name__ == "clipadapt_tools_plot_results" and callable(tool.read_results)
    with pytest.raises(FileNotFoundError, match="no tool"):
        paths.load_tool("no_such_tool")
