"""What a CLIP reads in the synthetic world: zero-shot colour, shape and class accuracy, scene retrieval.

The tiny base CLIP's report card (docs/synthetic-world.md), and the floor that CI holds it to
(tests/engine/test_tiny_clip_floor.py). Zero-shot uses the ``synthetic`` templates, averaged per class,
as :class:`~clipadapt.tasks.PromptClassifier` does (:func:`clipadapt.tasks.zero_shot.zero_shot_classifier`).
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD
from PIL import Image

from clipadapt.models.clip import CLIP
from clipadapt.tasks.zero_shot import zero_shot_classifier

__all__ = ["evaluate_world"]

_MEAN = torch.tensor(OPENAI_DATASET_MEAN).view(1, 3, 1, 1) * 255
_STD = torch.tensor(OPENAI_DATASET_STD).view(1, 3, 1, 1) * 255


def _images(root: Path, relpaths: list[str], size: int) -> torch.Tensor:
    arrays = []
    for rel in relpaths:
        with Image.open(root / rel) as img:
            img = img.convert("RGB")
            if img.size != (size, size):
                img = img.resize((size, size), Image.Resampling.BILINEAR)
            arrays.append(np.asarray(img))
    x = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float()
    return (x - _MEAN) / _STD


@torch.no_grad()
def _encode_images(model: CLIP, x: torch.Tensor, batch: int = 256) -> torch.Tensor:
    return torch.cat([F.normalize(model.encode_image(x[i : i + batch]), dim=-1) for i in range(0, len(x), batch)])


@torch.no_grad()
def _encode_texts(model: CLIP, tokenizer: Any, texts: list[str], batch: int = 256) -> torch.Tensor:
    parts = [model.encode_text(tokenizer(texts[i : i + batch])) for i in range(0, len(texts), batch)]
    return F.normalize(torch.cat(parts), dim=-1)


def evaluate_world(
    model: CLIP, tokenizer: Any, world_root: str | os.PathLike[str], domain: str = "plain", split: str = "test"
) -> dict[str, float]:
    """Zero-shot accuracy on one domain's split, and short-caption scene retrieval on the same split.

    Args:
        model: A clipadapt CLIP (``encode_image`` / ``encode_text``), in eval mode.
        tokenizer: Its tokenizer.
        world_root: Root of a synthetic world.
        domain: Classification domain (``split_synthetic_<domain>.json``).
        split: ``"val"`` or ``"test"``.

    Returns:
        Percentages: ``top1`` over the classes, ``colour`` and ``shape`` (the predicted class's colour or
        shape is right), and ``i2t_r1`` (image -> short caption R@1 over the split's scenes; absent
        without scenes); ``images`` and ``scenes`` are the counts.
    """
    root = Path(world_root)
    size = model.image_size
    samples = json.loads((root / f"split_synthetic_{domain}.json").read_text())[split]
    manifest = json.loads((root / "manifest.json").read_text())
    names = manifest["classes"]
    class_features = zero_shot_classifier(model, tokenizer, names, "synthetic")  # [C, D]
    image_features = _encode_images(model, _images(root, [s[0] for s in samples], size))
    pred = (image_features @ class_features.t()).argmax(1).tolist()
    truth = [s[1] for s in samples]
    split_names = [n.split(" ") for n in names]
    out = {
        "images": float(len(samples)),
        "top1": 100.0 * float(np.mean([p == t for p, t in zip(pred, truth, strict=True)])),
        "colour": 100.0 * float(np.mean([split_names[p][0] == split_names[t][0] for p, t in zip(pred, truth)])),
        "shape": 100.0 * float(np.mean([split_names[p][1] == split_names[t][1] for p, t in zip(pred, truth)])),
    }
    captions = root / f"captions_{split}.csv"
    if captions.is_file():
        with open(captions, newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
        scenes = _encode_images(model, _images(root, [r["filepath"] for r in rows], size))
        texts = _encode_texts(model, tokenizer, [r["title"] for r in rows])
        hits = (scenes @ texts.t()).argmax(1) == torch.arange(len(rows))
        out |= {"scenes": float(len(rows)), "i2t_r1": 100.0 * hits.float().mean().item()}
    return out
