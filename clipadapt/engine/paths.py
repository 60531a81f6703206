"""Where clipadapt keeps things, and the ``cache://`` names: a leaf module that imports nothing of clipadapt.

Folders: ``$CLIPADAPT_CACHE`` (default ``~/.cache/clipadapt``) for weights, ``$CLIPADAPT_DATA`` (default
``<cache>/synthetic``) for the default synthetic world, ``$CLIPADAPT_CONFIGS`` (default the checkout's
``configs/``) for the configs.

``cache://<name>`` names a local resource that is built on first use. Whoever can build one registers a
resolver here (:func:`register_cache_resolver`; the tiny CLIP registers ``tiny-vit-synthetic`` when
:mod:`clipadapt.engine.tiny_clip` is imported), and :func:`resolve_cache` calls it. So config preparation
needs no import of what it resolves.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

__all__ = [
    "CACHE_RESOLVERS",
    "CACHE_SCHEME",
    "cache_dir",
    "data_dir",
    "find_config",
    "load_tool",
    "register_cache_resolver",
    "resolve_cache",
]

CACHE_SCHEME = "cache://"
# Names that ``cache://<name>`` resolves, each to a function that returns the local path (building it).
CACHE_RESOLVERS: dict[str, Callable[[], Path]] = {}


def cache_dir() -> Path:
    """``$CLIPADAPT_CACHE`` or ``~/.cache/clipadapt``."""
    return Path(os.environ.get("CLIPADAPT_CACHE") or Path.home() / ".cache" / "clipadapt").expanduser()


def data_dir() -> Path:
    """Root of the synthetic world: ``$CLIPADAPT_DATA`` or ``<cache>/synthetic``."""
    return Path(os.environ.get("CLIPADAPT_DATA") or cache_dir() / "synthetic").expanduser()


def find_config(relpath: str) -> Path:
    """A config of clipadapt's ``configs/`` folder: ``$CLIPADAPT_CONFIGS`` first, then the source checkout."""
    roots = [Path(os.environ["CLIPADAPT_CONFIGS"])] if os.environ.get("CLIPADAPT_CONFIGS") else []
    roots.append(Path(__file__).resolve().parents[2] / "configs")
    for root in roots:
        if (root / relpath).is_file():
            return root / relpath
    raise FileNotFoundError(
        f"config {relpath} not found under {[str(r) for r in roots]}; "
        "set CLIPADAPT_CONFIGS to clipadapt's configs/ folder"
    )


def load_tool(name: str) -> ModuleType:
    """``tools/<name>.py`` (``name`` may hold a folder: ``analysis/plot_results``) of the source checkout as a
    module, executed anew and registered in ``sys.modules``.

    The tools are scripts, not a package (``tools/test.py`` would shadow the standard library's ``test``),
    so tools and tests that reuse one load it by path. The module is named ``clipadapt_tools_<name>`` and
    registered (by the file's stem), so that dataclasses and pickling can look it up while it executes.
    """
    path = Path(__file__).resolve().parents[2] / "tools" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"clipadapt_tools_{path.stem}", path)
    if spec is None or spec.loader is None or not path.is_file():
        raise FileNotFoundError(f"no tool {path}: tools/ exists in a source checkout of clipadapt only")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def register_cache_resolver(name: str, resolve: Callable[[], Path]) -> Callable[[], Path]:
    """Make ``cache://<name>`` resolve to ``resolve()`` (a local path, built when missing); returns ``resolve``."""
    if name in CACHE_RESOLVERS and CACHE_RESOLVERS[name] is not resolve:
        raise ValueError(f"{CACHE_SCHEME}{name} already has a resolver: {CACHE_RESOLVERS[name]!r}")
    CACHE_RESOLVERS[name] = resolve
    return resolve


def resolve_cache(name: str) -> Path:
    """The local path of ``cache://<name>``, built by its resolver when missing."""
    if name not in CACHE_RESOLVERS:
        raise ValueError(
            f"unknown cached model {CACHE_SCHEME}{name}; known: {[CACHE_SCHEME + n for n in CACHE_RESOLVERS]}"
        )
    return CACHE_RESOLVERS[name]()
