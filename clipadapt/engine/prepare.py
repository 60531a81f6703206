"""Config preparation for ``tools/train.py`` and ``tools/test.py``: check keys, resolve symbolic paths.

Configs name local resources symbolically, so that they run on any machine and build what is missing:

- ``cache://tiny-vit-synthetic``: the tiny base CLIP pretrained on the synthetic world
  (:func:`clipadapt.engine.tiny_clip.ensure_tiny_clip`; built on first use, then cached);
- ``synthetic://`` (optionally followed by a relative path): the synthetic world's root, generated
  with the config's ``synthetic_world`` parameters when missing or different;
  ``synthetic://captions_objects_<split>.csv`` is derived from its split files when asked for
  (:mod:`clipadapt.engine.object_captions`).

Folders: ``$CLIPADAPT_CACHE`` (default ``~/.cache/clipadapt``) for weights, ``$CLIPADAPT_DATA``
(default ``<cache>/synthetic``) for the synthetic world.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .config_check import check_config
from .object_captions import OBJECT_CAPTIONS, write_object_captions

__all__ = ["cache_dir", "data_dir", "prepare_config", "resolve_uri"]

CACHE_SCHEME = "cache://"
SYNTHETIC_SCHEME = "synthetic://"


def cache_dir() -> Path:
    """``$CLIPADAPT_CACHE`` or ``~/.cache/clipadapt``."""
    return Path(os.environ.get("CLIPADAPT_CACHE") or Path.home() / ".cache" / "clipadapt").expanduser()


def data_dir() -> Path:
    """Root of the synthetic world: ``$CLIPADAPT_DATA`` or ``<cache>/synthetic``."""
    return Path(os.environ.get("CLIPADAPT_DATA") or cache_dir() / "synthetic").expanduser()


def _cache_entry(name: str) -> str:
    from .tiny_clip import CACHED_MODELS

    if name not in CACHED_MODELS:
        raise ValueError(
            f"unknown cached model {CACHE_SCHEME}{name}; known: {[CACHE_SCHEME + n for n in CACHED_MODELS]}"
        )
    return str(CACHED_MODELS[name]())


def resolve_uri(value: str, world: dict[str, Any] | None = None, _done: dict[str, str] | None = None) -> str:
    """A ``cache://`` or ``synthetic://`` string as a local path (building what is missing); others unchanged."""
    done = {} if _done is None else _done
    if value.startswith(CACHE_SCHEME):
        name = value[len(CACHE_SCHEME) :]
        if value not in done:
            done[value] = _cache_entry(name)
        return done[value]
    if value.startswith(SYNTHETIC_SCHEME):
        if SYNTHETIC_SCHEME not in done:
            from clipadapt.datasets.synthetic import ensure_synthetic_world

            done[SYNTHETIC_SCHEME] = str(ensure_synthetic_world(data_dir(), **(world or {})))
        rest = value[len(SYNTHETIC_SCHEME) :].lstrip("/")
        match = OBJECT_CAPTIONS.match(rest)
        if match:  # derived from the split files (see object_captions)
            return str(write_object_captions(done[SYNTHETIC_SCHEME], match.group(1)))
        return os.path.join(done[SYNTHETIC_SCHEME], rest) if rest else done[SYNTHETIC_SCHEME]
    return value


def _map_strings(obj: Any, fn: Callable[[str], str]) -> Any:
    if isinstance(obj, str):
        return fn(obj)
    if isinstance(obj, dict):
        for key in list(obj.keys()):
            obj[key] = _map_strings(obj[key], fn)
        return obj
    if isinstance(obj, list):
        return [_map_strings(v, fn) for v in obj]
    if isinstance(obj, tuple):
        return tuple(_map_strings(v, fn) for v in obj)
    return obj


def prepare_config(cfg: Any, check: bool = True) -> Any:
    """Check ``cfg`` (:func:`check_config`) and replace its symbolic paths by local ones, in place.

    Builds the synthetic world and the tiny CLIP when the config needs them and they are missing.
    Returns ``cfg``.
    """
    if check:
        check_config(cfg)
    world = dict(cfg.get("synthetic_world") or {})
    done: dict[str, str] = {}
    for key in list(cfg.keys()):
        if key in ("_base_", "synthetic_world"):
            continue
        cfg[key] = _map_strings(cfg[key], lambda s: resolve_uri(s, world, done))
    return cfg
