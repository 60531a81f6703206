"""Config preparation for ``tools/train.py`` and ``tools/test.py``: check keys, resolve symbolic paths.

Configs name local resources symbolically, so that they run on any machine and build what is missing:

- ``cache://<name>``: a resource that its resolver builds on first use, then caches
  (:mod:`clipadapt.engine.paths`; ``cache://tiny-vit-synthetic`` is the tiny base CLIP pretrained on the
  synthetic world, :func:`clipadapt.engine.tiny_clip.ensure_tiny_clip`);
- ``synthetic://`` (optionally followed by a relative path): the root of the synthetic world that the
  config's ``synthetic_world`` parameters describe (:func:`world_dir`), generated when missing;
  ``synthetic://captions_objects_<split>.csv`` is derived from its split files when asked for
  (:mod:`clipadapt.engine.object_captions`), and ``synthetic://detection_colour_<split>.json`` from
  its detection files (:mod:`clipadapt.engine.attribute_detection`).

Folders (:mod:`clipadapt.engine.paths`): ``$CLIPADAPT_CACHE`` for weights, ``$CLIPADAPT_DATA`` for the
default synthetic world. Every other world lives in a sibling
folder named by a hash of its parameters, ``<data>-<8 hex>``: a config that asks for a bigger test split
must not regenerate, in place, the world that every other config and the cached tiny CLIP were built on.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .attribute_detection import ATTRIBUTE_DETECTION, write_attribute_detection
from .config_check import check_config
from .object_captions import OBJECT_CAPTIONS, write_object_captions
from .paths import CACHE_SCHEME, cache_dir, data_dir, resolve_cache

__all__ = ["cache_dir", "data_dir", "prepare_config", "resolve_uri", "world_dir"]

SYNTHETIC_SCHEME = "synthetic://"


def world_dir(world: dict[str, Any] | None = None) -> Path:
    """The folder of the synthetic world with parameters ``world`` (fields of ``WorldConfig``).

    - the default world (``{}``, or every parameter equal to ``WorldConfig()``'s): :func:`data_dir`;
    - a world that :func:`data_dir` already holds (its manifest records exactly these parameters, e.g.
      ``$CLIPADAPT_DATA`` points at a world generated for these parameters): :func:`data_dir`, reused;
    - any other: ``<data_dir>-<8 hex>``, the hex being the start of the sha256 of the canonical parameters
      (``WorldConfig(**world).to_dict()`` as sorted JSON), so two worlds never share, or overwrite, a folder.

    Raises:
        TypeError: ``world`` names a parameter that ``WorldConfig`` does not have.
    """
    from clipadapt.datasets.synthetic import WorldConfig, load_manifest

    world = dict(world or {})
    known = [name for name, f in WorldConfig.__dataclass_fields__.items() if f.init]
    unknown = sorted(set(world) - set(known))
    if unknown:
        raise TypeError(f"unknown synthetic_world parameters {unknown}; known: {known}")
    params = WorldConfig(**world).to_dict()
    root = data_dir()
    if params == WorldConfig().to_dict():
        return root
    manifest = load_manifest(root)
    if manifest is not None and manifest.get("params") == params:
        return root
    digest = hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:8]
    return root.with_name(f"{root.name}-{digest}")


def resolve_uri(value: str, world: dict[str, Any] | None = None, _done: dict[str, str] | None = None) -> str:
    """A ``cache://`` or ``synthetic://`` string as a local path (building what is missing); others unchanged."""
    done = {} if _done is None else _done
    if value.startswith(CACHE_SCHEME):
        name = value[len(CACHE_SCHEME) :]
        if value not in done:
            done[value] = str(resolve_cache(name))
        return done[value]
    if value.startswith(SYNTHETIC_SCHEME):
        if SYNTHETIC_SCHEME not in done:
            from clipadapt.datasets.synthetic import ensure_synthetic_world

            done[SYNTHETIC_SCHEME] = str(ensure_synthetic_world(world_dir(world), **(world or {})))
        rest = value[len(SYNTHETIC_SCHEME) :].lstrip("/")
        match = OBJECT_CAPTIONS.match(rest)
        if match:  # derived from the split files (see object_captions)
            return str(write_object_captions(done[SYNTHETIC_SCHEME], match.group(1)))
        match = ATTRIBUTE_DETECTION.match(rest)
        if match:  # detection by colour, derived from the detection files (see attribute_detection)
            return str(write_attribute_detection(done[SYNTHETIC_SCHEME], match.group(1), match.group(2)))
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
