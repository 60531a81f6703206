"""The CLIPs that the detection modules use, built from one small config dict.

Every detection module names its CLIP the same way::

    clip=dict(model_name="tiny-vit", pretrained="cache://tiny-vit-synthetic", adapter=None)

- ``model_name``: an open_clip or clipadapt model config name, or a JSON config path;
- ``pretrained``: local base weights (``cache://`` names resolve as in every clipadapt config, so the
  configs also run under MMDetection's own ``tools/train.py``);
- ``adapter``: an adapter file saved by a clipadapt plugin run (``clipadapt.save_adapter``); the
  adapted model is rebuilt from it, so a prompt learner's learned prompts shape the class text
  features and a region plugin's pooler scores the boxes.

Frozen CLIPs (the classifier's text encoder, the region scorer) are shared: one instance per distinct
config in the process, kept out of the detector's ``state_dict`` and parameters, so checkpoints hold
only what the detector trains and DDP sees no unused parameters.
"""

from __future__ import annotations

from typing import Any

import torch

from clipadapt.factory import create_model, get_tokenizer
from clipadapt.models.clip import CLIP

__all__ = ["CLIP_KEYS", "build_clip", "frozen_clip", "on_device", "tokenizer_for"]

CLIP_KEYS = frozenset({"model_name", "pretrained", "adapter"})
_FROZEN: dict[tuple[str, str | None, str | None], CLIP] = {}


def _resolved(cfg: dict[str, Any]) -> tuple[str, str | None, str | None]:
    from clipadapt.engine.prepare import resolve_uri

    if not isinstance(cfg, dict) or "model_name" not in cfg:
        raise ValueError(f"clip must be dict(model_name=..., pretrained=..., adapter=...), got {cfg!r}")
    unknown = sorted(set(cfg) - CLIP_KEYS)
    if unknown:
        raise ValueError(f"unknown clip keys {unknown}; known: {sorted(CLIP_KEYS)}")
    pretrained, adapter = cfg.get("pretrained"), cfg.get("adapter")
    return (
        str(cfg["model_name"]),
        resolve_uri(str(pretrained)) if pretrained is not None else None,
        resolve_uri(str(adapter)) if adapter is not None else None,
    )


def build_clip(cfg: dict[str, Any]) -> CLIP:
    """A new CLIP (own parameters, trainable as built) from ``dict(model_name, pretrained, adapter)``."""
    from clipadapt.adapter import load_adapter

    name, pretrained, adapter = _resolved(cfg)
    if adapter is not None:
        return load_adapter(adapter, pretrained=pretrained)
    return create_model(name, pretrained=pretrained)


def frozen_clip(cfg: dict[str, Any]) -> CLIP:
    """The shared, frozen, eval-mode CLIP of ``cfg`` (built on first request)."""
    key = _resolved(cfg)
    if key not in _FROZEN:
        model = build_clip(cfg)
        model.requires_grad_(False)
        _FROZEN[key] = model.eval()
    return _FROZEN[key]


def tokenizer_for(model: CLIP) -> Any:
    """The tokenizer that fits ``model`` (its context length included)."""
    return get_tokenizer(model=model)


def on_device(model: CLIP, device: torch.device) -> CLIP:
    """Move a shared frozen CLIP to ``device`` (a no-op when it is there)."""
    if model.logit_scale.device != device:
        model.to(device)
    return model
