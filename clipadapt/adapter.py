"""Adapter checkpoints: what trains and what plugins changed, plus a reference to the base weights.

An adapted ViT-B/16 stores a few hundred kilobytes of prompts, not a second copy of a frozen 600 MB
backbone. The file holds only tensors and plain Python values, so it loads with
``torch.load(weights_only=True)``; ``.safetensors`` files keep the metadata as JSON in the header.
Writes go to a temporary file that is renamed into place: a crash never leaves a half-written file.

A training checkpoint (``epoch_N.pth``, ``best_*.pth`` of ``tools/train.py``) is not an adapter: it
also holds the optimizer, the message hub and the config. :func:`adapter_from_checkpoint` (or
``python -m clipadapt.adapter CHECKPOINT [OUT]``) writes the adapter it contains.

A plugin whose text depends on the image (``Plugin.conditions``: CoCoOp) classifies through its task;
the CLIP that :func:`load_adapter` returns refuses a bare ``encode_text`` and says how. Rebuild the
task and load into its CLIP::

    meta, _ = clipadapt.read_adapter(path)
    task = PromptClassifier(meta["model"], pretrained=meta["base"]["path"], plugins=meta["plugins"],
                            classnames=[...])
    clipadapt.load_adapter(path, model=task.clip)
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

__all__ = [
    "adapter_from_checkpoint",
    "adapter_metadata",
    "adapter_state_dict",
    "load_adapter",
    "read_adapter",
    "save_adapter",
]

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
    blob = _read(path)
    if _is_training_checkpoint(blob):
        raise ValueError(
            f"{path} is a training checkpoint (state_dict, meta, optimizer, message hub), not an adapter: write "
            f"its adapter with clipadapt.adapter_from_checkpoint({str(path)!r}) or `python -m clipadapt.adapter "
            f"{path}`, then load that file"
        )
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


def _read(path: Path) -> Any:
    """:func:`read_checkpoint` (weights_only=True), also allowing what MMEngine training checkpoints hold.

    Those classes (numpy arrays and scalars, MMEngine's HistoryBuffer) rebuild data and run nothing;
    allowing them lets a training checkpoint be recognised and converted rather than refused.
    """
    from .engine.safe_load import SAFE_GLOBALS

    with torch.serialization.safe_globals(SAFE_GLOBALS):
        return read_checkpoint(path)  # the one reader: weights_only=True, one-line errors naming the file


def _is_training_checkpoint(blob: Any) -> bool:
    return (
        isinstance(blob, dict)
        and "format" not in blob
        and isinstance(blob.get("meta"), dict)
        and isinstance(blob.get("state_dict"), dict)
    )


def adapter_from_checkpoint(
    checkpoint: str | os.PathLike[str], out: str | os.PathLike[str] | None = None, prefix: str = "clip."
) -> Path:
    """Write the adapter held by a training checkpoint of ``tools/train.py``; returns its path.

    ``AdapterCheckpointHook`` already prunes a training checkpoint to the adapter's tensors (under the
    task's ``clip.`` prefix) and records the adapter metadata in ``meta['clipadapt']``. This keeps
    those, drops the optimizer, message hub and config, and writes an adapter file that
    :func:`load_adapter` reads.

    Args:
        checkpoint: ``epoch_N.pth`` / ``best_*.pth`` of a run whose model carried plugins.
        out: The adapter file (``.safetensors`` or ``.pt``/``.pth``); default
            ``<checkpoint stem>.adapter.safetensors`` beside the checkpoint.
        prefix: Where the task holds its CLIP in the state dict (``clip.`` for every clipadapt task).

    Raises:
        ValueError: not a training checkpoint, or one without adapter metadata (a run without plugins
            trains the whole CLIP: export that with ``to_open_clip_state_dict`` instead).
    """
    checkpoint = Path(checkpoint)
    if not checkpoint.is_file():
        raise FileNotFoundError(f"training checkpoint not found: {checkpoint}")
    blob = _read(checkpoint)
    if not _is_training_checkpoint(blob):
        raise ValueError(f"{checkpoint} is not a training checkpoint of tools/train.py (no 'state_dict' and 'meta')")
    meta = blob["meta"].get("clipadapt")
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ValueError(
            f"{checkpoint} has no adapter metadata (meta['clipadapt']): its run had no plugins and trained the "
            "whole CLIP; use the checkpoint as it is, or export it with clipadapt.to_open_clip_state_dict"
        )
    state = {k[len(prefix) :]: v for k, v in blob["state_dict"].items() if k.startswith(prefix)}
    out = Path(out) if out is not None else checkpoint.with_name(checkpoint.stem + ".adapter.safetensors")
    if out.suffix == ".safetensors":
        from safetensors.torch import save_file

        tensors = {k: v.contiguous() for k, v in state.items()}
        atomic_write(out, lambda tmp: save_file(tensors, tmp, metadata={"clipadapt": json.dumps(meta)}))
    else:
        atomic_write(out, lambda tmp: torch.save({**meta, "state_dict": state}, tmp))
    return out


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

    A plugin whose text depends on the image (``Plugin.conditions``: CoCoOp) classifies through its
    task: build the task and pass ``model=task.clip`` (see this module's docstring). Without it, the
    returned CLIP's ``encode_text`` raises and says the same.

    Raises:
        CheckpointMismatchError: the adapter's tensors do not fit the model; each key is named.
        ValueError: ``path`` is a training checkpoint; the message says how to convert it.
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


def main(argv: list[str] | None = None) -> None:
    """``python -m clipadapt.adapter CHECKPOINT [OUT]``: write the adapter of a training checkpoint."""
    import argparse

    parser = argparse.ArgumentParser(description="Write the adapter held by a clipadapt training checkpoint")
    parser.add_argument("checkpoint", help="epoch_N.pth or best_*.pth of tools/train.py")
    parser.add_argument("out", nargs="?", help="adapter file (.safetensors or .pt); default beside the checkpoint")
    args = parser.parse_args(argv)
    print(adapter_from_checkpoint(args.checkpoint, args.out))


if __name__ == "__main__":
    main()
