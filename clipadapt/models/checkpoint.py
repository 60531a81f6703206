"""Weights: open_clip and OpenAI checkpoints <-> clipadapt names, both ways, loss-less.

One pipeline (as open_clip's ``load_checkpoint``): read the file (safetensors, ``torch.load`` with
``weights_only=True``, or an OpenAI TorchScript archive read without running its code; see
:mod:`clipadapt.models.checkpoint_io`) -> unwrap and strip ``module.`` -> convert
names -> strict load that names every missing, unexpected and mis-shaped key.

Name rules, open_clip ``CLIP`` layout -> clipadapt:

* ``attn.in_proj_weight`` / ``attn.in_proj_bias`` -> ``attn.qkv.weight`` / ``attn.qkv.bias``
  (everything else in a block keeps its name);
* the text tower, flattened onto open_clip's ``CLIP`` (``transformer.*``, ``token_embedding.*``,
  ``positional_embedding``, ``ln_final.*``, ``text_projection``) -> ``text.*``;
  open_clip's ``CustomTextCLIP`` already nests it under ``text.``;
* ``visual.*`` and ``logit_scale`` keep their names.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from .checkpoint_io import CheckpointReadError, UnsafeCheckpointError, is_torchscript_file, read_checkpoint

__all__ = [
    "CheckpointMismatchError",
    "CheckpointReadError",
    "UnsafeCheckpointError",
    "file_sha256",
    "from_open_clip",
    "is_openai_checkpoint",
    "load_checkpoint_file",
    "to_open_clip",
]

_TEXT_ROOTS = ("transformer.", "token_embedding.", "positional_embedding", "ln_final.", "text_projection")
_OPENAI_EXTRA = ("input_resolution", "context_length", "vocab_size")


class CheckpointMismatchError(ValueError):
    """A checkpoint whose keys or shapes do not fit the model."""


def is_openai_checkpoint(path: str | os.PathLike[str], state: Mapping[str, Any]) -> bool:
    """Whether weights are recognisably OpenAI's: a TorchScript archive, or OpenAI's state-dict layout (its
    extra ``input_resolution`` / ``context_length`` / ``vocab_size`` entries)."""
    return any(key in state for key in _OPENAI_EXTRA) or is_torchscript_file(path)


def load_checkpoint_file(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """Read a state dict from a local file: .safetensors, a torch pickle, or a TorchScript archive.

    Goes through :func:`clipadapt.models.checkpoint_io.read_checkpoint`: pickles load with
    ``weights_only=True``, TorchScript archives (OpenAI's ``ViT-B-16.pt``) have their tensors read
    without their code being run, and nothing in a file is executed.

    Raises:
        FileNotFoundError: no such file.
        CheckpointReadError: the file is empty, truncated, of no supported format, or holds no state
            dict (:class:`UnsafeCheckpointError` when it asks for a refused global); one line naming it.
    """
    path = Path(path)
    state = read_checkpoint(path)
    if isinstance(state, Mapping) and "state_dict" in state and isinstance(state["state_dict"], Mapping):
        state = state["state_dict"]
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointReadError(path, "it does not hold a state dict of tensors")
    return {k.removeprefix("module."): v for k, v in state.items()}


def file_sha256(path: str | os.PathLike[str], chunk: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _rename_block_keys(key: str, forward: bool) -> str:
    pairs = ((".attn.in_proj_weight", ".attn.qkv.weight"), (".attn.in_proj_bias", ".attn.qkv.bias"))
    for theirs, ours in pairs:
        src, dst = (theirs, ours) if forward else (ours, theirs)
        if key.endswith(src):
            return key[: -len(src)] + dst
    return key


def from_open_clip(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """open_clip (``CLIP`` or ``CustomTextCLIP``) or OpenAI state dict -> clipadapt names."""
    out = {}
    for key, value in state.items():
        if key in _OPENAI_EXTRA:
            continue  # OpenAI's archives carry these as scalars; the config holds them
        if key.startswith(_TEXT_ROOTS):
            key = "text." + key
        out[_rename_block_keys(key, forward=True)] = value
    return out


def to_open_clip(state: Mapping[str, torch.Tensor], custom_text: bool = False) -> dict[str, torch.Tensor]:
    """clipadapt state dict -> the layout ``open_clip.create_model`` loads (``CLIP`` or ``CustomTextCLIP``)."""
    out = {}
    for key, value in state.items():
        if key.startswith("plugins."):
            raise CheckpointMismatchError(f"{key!r} belongs to a plugin and has no open_clip equivalent")
        if key.startswith("text.") and not custom_text:
            key = key.removeprefix("text.")
        out[_rename_block_keys(key, forward=False)] = value
    return out


def describe_mismatch(
    model_state: Mapping[str, torch.Tensor], loaded: Mapping[str, torch.Tensor], source: str
) -> str | None:
    """A message naming the missing, unexpected and mis-shaped keys, or None when everything fits."""
    missing = sorted(set(model_state) - set(loaded))
    unexpected = sorted(set(loaded) - set(model_state))
    shapes = sorted(
        f"{k}: checkpoint {tuple(loaded[k].shape)} vs model {tuple(model_state[k].shape)}"
        for k in set(model_state) & set(loaded)
        if loaded[k].shape != model_state[k].shape
    )
    if not (missing or unexpected or shapes):
        return None

    def head(items: list[str]) -> str:
        return ", ".join(items[:8]) + (f" (+{len(items) - 8} more)" if len(items) > 8 else "")

    parts = [f"checkpoint {source} does not fit the model:"]
    if shapes:
        parts.append(f"{len(shapes)} shape mismatches [{head(shapes)}]")
    if missing:
        parts.append(f"{len(missing)} missing keys [{head(missing)}]")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected keys [{head(unexpected)}]")
    return " ".join(parts)
