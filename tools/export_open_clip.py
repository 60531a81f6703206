"""Export an adapted model as an open_clip model: weights plus model config, loadable by ``open_clip.create_model``.

    python tools/export_open_clip.py work_dirs/longclip_tiny-vit_1xb64_synthetic-long/epoch_6.pth out/longclip-tiny
    python tools/export_open_clip.py adapter.pt out/longclip-b16 --pretrained /weights/ViT-B-16.pt --verify

The input is a checkpoint of ``tools/train.py`` or a ``clipadapt.save_adapter`` file (both record the
model config, the plugins and the base weights), or any state dict of the task with ``--config``. The
output folder holds:

- ``open_clip_config.json`` and ``open_clip_model.safetensors``: ``open_clip.create_model('local-dir:OUT')``
  and ``open_clip.get_tokenizer('local-dir:OUT')`` load them (the context length is the adapted one,
  248 after Long-CLIP);
- ``<name>.json``, the model config alone: ``open_clip.add_model_config('OUT/<name>.json')`` then
  ``open_clip.create_model('<name>', pretrained='OUT/open_clip_model.safetensors')``.

Only models that open_clip can represent export (plugins that change base weights or shapes, such as
Long-CLIP); prompt learners refuse with an error naming them. ``--verify`` loads the export with open_clip
and compares its image and text features with the adapted model's.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

import torch
from open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD

import clipadapt
from clipadapt.adapter import FORMAT, read_adapter
from clipadapt.fileio import atomic_write
from clipadapt.models.checkpoint import CheckpointMismatchError
from clipadapt.models.checkpoint_io import read_checkpoint

WEIGHTS = "open_clip_model.safetensors"
CONFIG = "open_clip_config.json"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Export an adapted clipadapt model as an open_clip model")
    parser.add_argument("checkpoint", help="tools/train.py checkpoint, clipadapt adapter, or state dict (--config)")
    parser.add_argument("out_dir", help="output folder")
    parser.add_argument("--config", help="the training config; needed for checkpoints without clipadapt metadata")
    parser.add_argument("--pretrained", help="base weights to use instead of the recorded path")
    parser.add_argument("--name", help="model config name (default: the output folder's name)")
    parser.add_argument("--verify", action="store_true", help="reload with open_clip and compare features")
    return parser.parse_args(argv)


def _read_checkpoint(path: Path) -> tuple[dict[str, Any] | None, dict[str, torch.Tensor]]:
    """(clipadapt metadata or None, CLIP state dict) of an adapter file or a tools/train.py checkpoint."""
    from clipadapt.engine import enable_safe_resume

    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    enable_safe_resume()  # runner checkpoints hold MMEngine's logs; they load with weights_only=True then
    blob = read_checkpoint(path)  # the one reader: weights_only, no code run, one-line errors naming the file
    if path.suffix == ".safetensors":
        try:
            return read_adapter(path)  # an adapter keeps its metadata in the header
        except ValueError:
            return None, blob
    if isinstance(blob, dict) and blob.get("format") == FORMAT:  # a clipadapt.save_adapter file
        return {k: v for k, v in blob.items() if k != "state_dict"}, blob.get("state_dict") or {}
    state = blob.get("state_dict", blob) if isinstance(blob, dict) else None
    if not isinstance(state, dict):
        raise ValueError(f"{path} holds no state dict")
    meta = (blob.get("meta") or {}).get("clipadapt") if isinstance(blob.get("meta"), dict) else None
    if any(k.startswith("clip.") for k in state):  # a task's state dict: the CLIP is under 'clip.'
        state = {k.removeprefix("clip."): v for k, v in state.items() if k.startswith("clip.")}
    return meta, state


def _model_from_config(config: str, pretrained: str | None) -> clipadapt.CLIP:
    from mmengine.config import Config

    from clipadapt.engine import prepare_config

    cfg = Config.fromfile(config)
    prepare_config(cfg)  # resolves cache:// and synthetic:// paths
    spec = cfg.model
    base = pretrained if pretrained is not None else spec.get("pretrained")
    return clipadapt.create_model(spec["model_name"], pretrained=base, plugins=list(spec.get("plugins") or []))


def load_adapted_model(
    checkpoint: str | os.PathLike[str], config: str | None = None, pretrained: str | None = None
) -> clipadapt.CLIP:
    """Rebuild the adapted CLIP of ``checkpoint`` (base weights + plugins + the checkpoint's tensors), in eval mode.

    Raises:
        ValueError: no metadata and no ``config`` to build the model from.
        CheckpointMismatchError: the checkpoint's tensors do not fit the model; each key is named.
    """
    path = Path(checkpoint)
    meta, state = _read_checkpoint(path)
    if config is not None:
        model = _model_from_config(config, pretrained)
    elif meta is not None and meta.get("format") == FORMAT:
        base = pretrained if pretrained is not None else (meta.get("base") or {}).get("path")
        if base is not None and not Path(base).is_file():
            raise FileNotFoundError(f"{path} refers to base weights {base}, which do not exist; pass --pretrained")
        model = clipadapt.create_model(meta["model"], pretrained=base, plugins=meta.get("plugins") or [])
    else:
        raise ValueError(f"{path} records no clipadapt model (a checkpoint without plugins?); pass --config")
    own = model.state_dict()
    unknown = sorted(k for k in state if k not in own)
    shapes = sorted(
        f"{k}: {tuple(v.shape)} vs {tuple(own[k].shape)}"
        for k, v in state.items()
        if k in own and v.shape != own[k].shape
    )
    if unknown or shapes:
        raise CheckpointMismatchError(f"{path} does not fit the model: unknown keys {unknown[:8]}, shapes {shapes[:8]}")
    model.load_state_dict(state, strict=False)
    return model.eval()


def export_open_clip(
    model: clipadapt.CLIP, out_dir: str | os.PathLike[str], name: str | None = None
) -> dict[str, Path]:
    """Write ``model`` as an open_clip model into ``out_dir``; returns the paths written.

    Raises:
        ValueError: a plugin changed the model into something open_clip cannot represent.
    """
    from safetensors.torch import save_file

    out = Path(out_dir)
    name = name or out.resolve().name
    state = {k: v.detach().contiguous().cpu() for k, v in clipadapt.to_open_clip_state_dict(model).items()}
    model_cfg = clipadapt.open_clip_model_config(model)
    preprocess = {"mean": list(OPENAI_DATASET_MEAN), "std": list(OPENAI_DATASET_STD)}
    paths = {"weights": out / WEIGHTS, "config": out / CONFIG, "model_config": out / f"{name}.json"}
    atomic_write(paths["weights"], lambda tmp: save_file(state, tmp, metadata={"format": "pt"}))
    for key, obj in (("config", {"model_cfg": model_cfg, "preprocess_cfg": preprocess}), ("model_config", model_cfg)):
        text = json.dumps(obj, indent=2) + "\n"
        atomic_write(paths[key], lambda tmp, text=text: Path(tmp).write_text(text))
    return paths


def verify_export(model: clipadapt.CLIP, out_dir: str | os.PathLike[str], atol: float = 1e-5) -> dict[str, float]:
    """Load ``out_dir`` with open_clip and compare features with ``model`` on random images and captions.

    Raises:
        AssertionError: a feature differs by more than ``atol``, or the context lengths differ.
    """
    import open_clip

    reference = open_clip.create_model(f"local-dir:{Path(out_dir).resolve()}").eval()
    tokenizer = open_clip.get_tokenizer(f"local-dir:{Path(out_dir).resolve()}")
    if tokenizer.context_length != model.context_length:
        raise AssertionError(
            f"open_clip tokenizes to {tokenizer.context_length} tokens, the model to {model.context_length}"
        )
    generator = torch.Generator().manual_seed(0)
    images = torch.randn(2, 3, model.image_size, model.image_size, generator=generator)
    long = " ".join(["a large striped red circle sits in the top left and a small blue star is below it."] * 12)
    tokens = tokenizer(["a red circle", long])
    model.eval()
    with torch.no_grad():
        diffs = {
            "image": (model.encode_image(images) - reference.encode_image(images)).abs().max().item(),
            "text": (model.encode_text(tokens) - reference.encode_text(tokens)).abs().max().item(),
        }
    bad = {k: v for k, v in diffs.items() if not v <= atol}
    if bad:
        raise AssertionError(f"open_clip's features differ from the adapted model's by {bad} (> {atol})")
    return diffs


def main(argv: list[str] | None = None) -> dict[str, Path]:
    args = parse_args(argv)
    try:
        model = load_adapted_model(args.checkpoint, args.config, args.pretrained)
        paths = export_open_clip(model, args.out_dir, args.name)
    except (ValueError, FileNotFoundError) as err:
        sys.exit(f"export failed: {err}")
    for path in paths.values():
        print(f"wrote {path}")
    if args.verify:
        diffs = verify_export(model, args.out_dir)
        print(f"open_clip reload: max abs feature difference image {diffs['image']:.2e}, text {diffs['text']:.2e}")
    return paths


if __name__ == "__main__":
    main()
