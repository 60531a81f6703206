"""Adapter checkpoints: what trains and what plugins changed, plus a reference to the base weights.

An adapted ViT-B/16 stores a few hundred kilobytes of prompts, not a second copy of a frozen 600 MB
backbone. The file holds only tensors and plain Python values, so it loads with
``torch.load(weights_only=True)``; ``.safetensors`` files keep the metadata as JSON in the header.
Writes go to a temporary file that is renamed into place: a crash never leaves a half-written file.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any

import torch

from .factory import create_model
from .fileio import atomic_write
from .models.checkpoint import CheckpointMismatchError
from .models.checkpoint_io import read_checkpoint
from .models.clip import CLIP

__all__ = ["adapter_metadata", "adapter_state_dict", "load_adapter", "read_adapter", "save_adapter"]

FORMAT = "clipadapt.adapter/1"


def adapter_state_dict(model: CLIP) -> dict[str, torch.Tensor]:
    """Plugin state, every trainable parameter, and every module a plugin replaced."""
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    changed = tuple(f"{name}." for name in model.changed_modules)
    return {
        k: v.detach().clone()
        for k, v in model.state_dict().items()
        if k.startswith("plugins.") or k in trainable or k.startswith(changed)
    }


def adapter_metadata(model: CLIP) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "model": model.cfg.source | {"name": model.cfg.name},
        "plugins": [plugin.config() for plugin in model.plugins.values()],
        "base": model.base_weights,
    }


def save_adapter(model: CLIP, path: str | os.PathLike[str]) -> Path:
    """Write the adapter of ``model`` to ``path`` (``.pt``/``.pth`` or ``.safetensors``), atomically."""
    path = Path(path)
    state = adapter_state_dict(model)
    meta = adapter_metadata(model)
    if path.suffix == ".safetensors":
        from safetensors.torch import save_file

        tensors = {k: v.contiguous() for k, v in state.items()}
        atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata={"clipadapt": json.dumps(meta)}))
    else:
        atomic_write(path, lambda tmp: torch.save({**meta, "state_dict": state}, tmp))
    return path


def read_adapter(path: str | os.PathLike[str]) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Metadata and tensors of an adapter file, read safely."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"adapter checkpoint not found: {path}")
    blob = read_checkpoint(path)  # the one reader: weights_only=True, one-line errors naming the file
    if path.suffix == ".safetensors":
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as handle:
            meta = json.loads((handle.metadata() or {}).get("clipadapt", "{}"))
        state = blob
    else:
        if not isinstance(blob, dict):
            raise ValueError(f"{path} is not a clipadapt adapter checkpoint")
        meta, state = {k: v for k, v in blob.items() if k != "state_dict"}, blob.get("state_dict", {})
    if meta.get("format") != FORMAT:
        raise ValueError(f"{path} is not a clipadapt adapter checkpoint (format {meta.get('format')!r})")
    return meta, state


def load_adapter(
    path: str | os.PathLike[str],
    model: CLIP | None = None,
    pretrained: str | os.PathLike[str] | None = None,
) -> CLIP:
    """Load an adapter onto ``model``, or rebuild the adapted model from the adapter and base weights.

    Args:
        path: The adapter file.
        model: An adapted model to load into (same plugins); None builds one from the stored config.
        pretrained: Base weights to use instead of the recorded path (a warning names a hash mismatch).

    Raises:
        CheckpointMismatchError: the adapter's tensors do not fit the model; each key is named.
    """
    meta, state = read_adapter(path)
    if model is None:
        base = pretrained if pretrained is not None else (meta.get("base") or {}).get("path")
        if base is not None and not Path(base).is_file():
            raise FileNotFoundError(
                f"adapter {path} refers to base weights {base}, which do not exist; pass pretrained=<path>"
            )
        model = create_model(meta["model"], pretrained=base, plugins=meta.get("plugins") or [])
        recorded = (meta.get("base") or {}).get("sha256")
        if recorded and model.base_weights and model.base_weights["sha256"] != recorded:
            warnings.warn(
                f"base weights {base} differ from those adapter {path} was trained on (sha256 mismatch)",
                stacklevel=2,
            )
    own = model.state_dict()
    missing = sorted(k for k in state if k not in own)
    shapes = sorted(
        f"{k}: adapter {tuple(v.shape)} vs model {tuple(own[k].shape)}"
        for k, v in state.items()
        if k in own and v.shape != own[k].shape
    )
    if missing or shapes:
        raise CheckpointMismatchError(
            f"adapter {path} does not fit model {model.cfg.name!r}: "
            + "; ".join(
                filter(
                    None, [f"shape mismatches {shapes}" if shapes else "", f"unknown keys {missing}" if missing else ""]
                )
            )
        )
    model.load_state_dict(state, strict=False)
    return model
