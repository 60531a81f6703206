"""The public surface: ``create_model``, ``get_tokenizer``, ``to_open_clip_state_dict``."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from open_clip.tokenizer import SimpleTokenizer
from torch.nn.utils import parametrize

from .models.checkpoint import (
    CheckpointMismatchError,
    describe_mismatch,
    file_sha256,
    from_open_clip,
    is_openai_checkpoint,
    load_checkpoint_file,
    to_open_clip,
)
from .models.clip import CLIP
from .models.config import load_model_config
from .plugins.base import Plugin
from .plugins.discovery import build_plugin

__all__ = ["create_model", "get_tokenizer", "load_base_weights", "open_clip_model_config", "to_open_clip_state_dict"]

_HASHES: dict[tuple[str, int, int], str] = {}


def _cached_sha256(path: Path) -> str:
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    if key not in _HASHES:
        _HASHES[key] = file_sha256(path)
    return _HASHES[key]


def _quickgelu_name(name: str) -> str | None:
    """The ``-quickgelu`` twin of a config name, when one exists."""
    try:
        load_model_config(f"{name}-quickgelu")
    except (KeyError, ValueError, OSError):
        return None
    return f"{name}-quickgelu"


def check_activation(model: CLIP, path: Path, state: dict[str, torch.Tensor]) -> None:
    """OpenAI's weights were trained with QuickGELU: refuse them on a GELU config, naming the right one.

    With the wrong activation every feature is quietly off, so this is an error, never a warning.

    Raises:
        CheckpointMismatchError: OpenAI weights (a TorchScript archive or OpenAI's state-dict layout)
            for a config whose ``quick_gelu`` is false.
    """
    if model.cfg.quick_gelu or not is_openai_checkpoint(path, state):
        return
    name = model.cfg.name
    twin = _quickgelu_name(name)
    fix = f"use the config {twin!r}" if twin else 'set "quick_gelu": true in the model config'
    raise CheckpointMismatchError(
        f"{path} holds OpenAI weights, which were trained with QuickGELU, but model config {name!r} uses GELU "
        f"(its features would be silently wrong); {fix}"
    )


def load_base_weights(model: CLIP, pretrained: str | os.PathLike[str]) -> None:
    """Load open_clip or OpenAI weights from a local file into the base CLIP, strictly.

    Raises:
        FileNotFoundError: no such file.
        CheckpointReadError: the file is empty, truncated, malicious or of no supported format.
        CheckpointMismatchError: keys or shapes do not fit (each is named), or OpenAI weights for a
            GELU config (:func:`check_activation`).
    """
    path = Path(pretrained).expanduser().resolve()
    raw = load_checkpoint_file(path)
    check_activation(model, path, raw)
    state = from_open_clip(raw)
    own = {k: v for k, v in model.state_dict().items() if not k.startswith("plugins.")}
    problem = describe_mismatch(own, state, str(path))
    if problem:
        raise CheckpointMismatchError(f"{problem} (model config {model.cfg.name!r})")
    model.load_state_dict(state, strict=False)
    model.base_weights = {"path": str(path), "sha256": _cached_sha256(path)}


def create_model(
    model_name: str | os.PathLike[str] | dict[str, Any],
    pretrained: str | os.PathLike[str] | None = None,
    plugins: Sequence[dict[str, Any] | Plugin] | None = None,
    device: str | torch.device | None = None,
) -> CLIP:
    """Build a base CLIP, load its weights from a local file, and attach plugins in list order.

    Args:
        model_name: An open_clip config name (``"ViT-B-16"``), a clipadapt config name
            (``"tiny-vit"``), a path to a JSON config in open_clip's schema, or such a dict.
        pretrained: Local open_clip (.pt/.bin/.safetensors) or OpenAI (TorchScript or state dict)
            weights; None keeps the random initialisation. Nothing is downloaded.
        plugins: Plugin configs (``dict(type="VPT", num_tokens=8)``) or built plugins.
        device: Where to put the model.

    Returns:
        The CLIP. With plugins, the base weights are frozen and the trainable parameters are exactly
        those with ``requires_grad=True``; without, everything trains, as in open_clip.
    """
    cfg = load_model_config(model_name)
    model = CLIP(cfg)
    if pretrained is not None:
        load_base_weights(model, pretrained)
    if plugins:
        model.requires_grad_(False)
        for plugin_cfg in plugins:
            model.attach(build_plugin(plugin_cfg))
    if device is not None:
        model.to(device)
    return model


def get_tokenizer(
    model_name: str | os.PathLike[str] | dict[str, Any] | None = None,
    model: CLIP | None = None,
    context_length: int | None = None,
) -> SimpleTokenizer:
    """open_clip's CLIP BPE tokenizer at the model's context length (plugins may have changed it).

    ``tokenizer(texts)`` returns [len(texts), context_length] token ids, EOT last, zero padded.
    """
    if context_length is None:
        if model is not None:
            context_length = model.context_length
        elif model_name is not None:
            context_length = load_model_config(model_name).text.context_length
        else:
            raise ValueError("get_tokenizer needs a model name, a model or a context length")
    return SimpleTokenizer(context_length=context_length)


def _check_exportable(model: CLIP) -> None:
    blocked = [p for p, plugin in model.plugins.items() if not plugin.exportable]
    if blocked:
        raise ValueError(
            f"the model carries plugins {blocked} that open_clip cannot represent; "
            "save an adapter checkpoint with clipadapt.save_adapter instead"
        )


def to_open_clip_state_dict(model: CLIP) -> dict[str, torch.Tensor]:
    """The model's weights in open_clip's layout, loadable by ``open_clip.create_model`` unchanged.

    Raises:
        ValueError: a plugin changed the model into something open_clip does not represent.
    """
    _check_exportable(model)
    state = {k: v for k, v in _materialised_state_dict(model).items() if not k.startswith("plugins.")}
    return to_open_clip(state, custom_text=model.cfg.custom_text)


def _materialised_state_dict(model: CLIP) -> dict[str, torch.Tensor]:
    """The state dict with every parametrized tensor as the tensor it computes, under its plain name.

    A plugin may change a base tensor through ``torch.nn.utils.parametrize`` (Long-CLIP: frozen leading
    positions plus trainable ones); the state dict then holds ``<module>.parametrizations.<name>.*``,
    which open_clip does not know, in place of ``<module>.<name>``.
    """
    state = model.state_dict()
    for module_name, module in model.named_modules():
        if not parametrize.is_parametrized(module):
            continue
        prefix = f"{module_name}." if module_name else ""
        for name in module.parametrizations:
            inner = f"{prefix}parametrizations.{name}."
            for key in [k for k in state if k.startswith(inner)]:
                del state[key]
            state[prefix + name] = getattr(module, name).detach()
    return state


def open_clip_model_config(model: CLIP) -> dict[str, Any]:
    """The open_clip JSON model config of the (possibly adapted) model, e.g. a stretched context."""
    _check_exportable(model)
    cfg = {k: v for k, v in model.cfg.source.items() if k != "name"}
    cfg["text_cfg"] = dict(cfg["text_cfg"], context_length=model.context_length)
    return cfg


__all__ += ["CheckpointMismatchError"]
