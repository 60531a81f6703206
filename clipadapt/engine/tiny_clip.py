"""The tiny base CLIP: ``tiny-vit`` pretrained contrastively on the synthetic world, cached, rebuilt when missing.

No weights can be downloaded here, so every method needs a base CLIP that knows something. This one
is trained by the config ``configs/clip/clip_tiny-vit_1xb64_synthetic-stream.py`` (8.5 minutes on two CPU
cores) through the same runner as every other config, and saved as an open_clip state dict
(``open_clip.create_model('tiny-vit' config)`` loads it unchanged) at
``$CLIPADAPT_CACHE/tiny-vit-synthetic-<recipe>.pt`` (default ``~/.cache/clipadapt``), written atomically,
with a JSON note beside it. Configs refer to it as ``pretrained='cache://tiny-vit-synthetic'``.

``<recipe>`` is :func:`recipe_key`: a hash of everything that decides the weights (the pretraining
config with its bases, the model config, the synthetic world's format version). A model cached by
another recipe is never picked up silently: the file name differs, so the current recipe is trained.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import torch

from clipadapt.fileio import atomic_write, file_lock

from .paths import cache_dir, find_config, register_cache_resolver
from .prepare import prepare_config
from .run import train_in_process

__all__ = ["PRETRAIN_CONFIG", "ensure_tiny_clip", "recipe_key", "tiny_clip_path"]

PRETRAIN_CONFIG = "clip/clip_tiny-vit_1xb64_synthetic-stream.py"
NAME = "tiny-vit-synthetic"


def recipe_key(config: str | os.PathLike[str] | None = None) -> str:
    """12 hex digits that change whenever the pretrained weights would: config, model config, world version."""
    from mmengine.config import Config

    from clipadapt.datasets.synthetic import FORMAT_VERSION
    from clipadapt.models.config import load_model_config

    cfg = Config.fromfile(str(config or find_config(PRETRAIN_CONFIG))).to_dict()
    cfg.pop("work_dir", None)
    model = cfg.get("model", {}).get("model_name", "tiny-vit")
    parts = {"config": cfg, "model": load_model_config(model), "world_format": FORMAT_VERSION}
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def tiny_clip_path() -> Path:
    """``$CLIPADAPT_CACHE/tiny-vit-synthetic-<recipe_key()>.pt``."""
    return cache_dir() / f"{NAME}-{recipe_key()}.pt"


def build_environment() -> dict[str, str]:
    """What decides the weights besides the recipe: the same recipe on another CPU or with other versions
    of torch, numpy or Pillow (which draws the world) can train a different model (docs/synthetic-world.md)."""
    import platform
    from importlib.metadata import PackageNotFoundError, version

    env = {"cpu": _cpu_model() or platform.processor() or platform.machine(), "python": platform.python_version()}
    for package in ("torch", "numpy", "pillow", "open_clip_torch", "mmengine"):
        try:
            env[package] = version(package)
        except PackageNotFoundError:
            env[package] = "not installed"
    return env


def _cpu_model() -> str | None:
    try:
        with open("/proc/cpuinfo") as handle:
            return next((line.split(":", 1)[1].strip() for line in handle if line.startswith("model name")), None)
    except OSError:
        return None


def pretrain_tiny_clip(
    out: Path, config: str | os.PathLike[str] | None = None, progress: bool = True
) -> dict[str, Any]:
    """Run the pretraining config in this process and write the open_clip state dict to ``out``."""
    from mmengine.config import Config

    from clipadapt.factory import to_open_clip_state_dict

    from .safe_load import enable_safe_resume

    enable_safe_resume()
    cfg = Config.fromfile(str(config or find_config(PRETRAIN_CONFIG)))
    cfg.work_dir = str(cache_dir() / "work" / NAME)
    cfg.log_level = "WARNING"  # the progress bar speaks instead
    cfg.default_hooks.checkpoint = dict(type="CheckpointHook", interval=-1, save_last=False)
    cfg.default_hooks.logger = dict(type="LoggerHook", interval=50)
    if progress:
        cfg.custom_hooks = [*(cfg.get("custom_hooks") or []), dict(type="ProgressBarHook", desc="tiny CLIP")]
    cfg.experiment_name = f"{NAME}-{time.strftime('%Y%m%d_%H%M%S')}"
    prepare_config(cfg)
    start, cpu_start = time.time(), time.process_time()
    runner, task = train_in_process(cfg)
    atomic_write(out, lambda tmp: torch.save(to_open_clip_state_dict(task.clip.float().cpu()), tmp))
    info = {
        "model": "tiny-vit",
        "config": str(config or PRETRAIN_CONFIG),
        "recipe_key": recipe_key(config),
        "synthetic_world": dict(cfg.get("synthetic_world") or {}),
        "iterations": runner.iter,
        "seconds": round(time.time() - start, 1),
        "cpu_seconds": round(time.process_time() - cpu_start, 1),
        "threads": torch.get_num_threads(),
        "logs": str(Path(cfg.work_dir) / runner.timestamp),
        "environment": build_environment(),
    }
    out.with_suffix(".json").write_text(json.dumps(info, indent=2) + "\n")
    return info


def ensure_tiny_clip(force: bool = False, progress: bool = True) -> Path:
    """Path of the cached tiny base CLIP (open_clip state dict), pretraining it first when missing.

    Args:
        force: Pretrain again even when the file exists.
        progress: Show a progress bar while pretraining.

    Returns:
        :func:`tiny_clip_path`.
    """
    path = tiny_clip_path()
    if path.is_file() and not force:
        return path
    stale = sorted(p.name for p in path.parent.glob(f"{NAME}*.pt") if p != path)
    if stale:
        print(f"clipadapt: ignoring tiny CLIPs of other recipes in {path.parent}: {stale}", file=sys.stderr)
    with file_lock(path.with_name(f".{path.name}.lock")):
        if path.is_file() and not force:  # another process built it while we waited
            return path
        print(
            f"clipadapt: the tiny base CLIP is not cached at {path}; pretraining it on the synthetic world "
            "(about 8.5 minutes on 2 CPU cores, done once)...",
            file=sys.stderr,
            flush=True,
        )
        info = pretrain_tiny_clip(path, progress=progress)
        print(f"clipadapt: tiny base CLIP saved to {path} ({info['seconds']:.0f} s)", file=sys.stderr, flush=True)
    return path


register_cache_resolver(NAME, ensure_tiny_clip)  # configs say pretrained='cache://tiny-vit-synthetic'
