"""The texts of a region batch: each box's phrase and hard negatives, encoded once per distinct string."""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["per_image", "region_texts"]


def per_image(samples: dict[str, Any], key: str, num_images: int, default: Any = None) -> list[Any]:
    """``samples[key]``, one entry per image; ``default()`` each when absent (an error when no default)."""
    values = samples.get(key)
    if values is None:
        if default is None:
            raise KeyError(f"RegionTextAlignment needs data_samples[{key!r}] (one entry per image; region_collate)")
        return [default() for _ in range(num_images)]
    if len(values) != num_images:
        raise ValueError(f"data_samples[{key!r}] has {len(values)} entries for {num_images} images")
    return list(values)


def region_texts(
    samples: dict[str, Any], boxes: list[torch.Tensor], negatives: bool, device: torch.device | str
) -> tuple[list[str], torch.Tensor, torch.Tensor, torch.Tensor]:
    """Distinct texts of the batch, each box's phrase index ``[K]``, candidate indices and validity ``[K, 1+k]``."""
    num_images = len(boxes)
    phrases = per_image(samples, "phrases", num_images)
    negs = per_image(samples, "hard_negatives", num_images, default=list) if negatives else [[]] * num_images
    vocab: dict[str, int] = {}
    rows: list[list[int]] = []
    for i, (b, p, n) in enumerate(zip(boxes, phrases, negs, strict=True)):
        n = n or [[] for _ in p]
        if len(p) != b.shape[0] or len(n) != b.shape[0]:
            raise ValueError(
                f"image {i} of the batch has {b.shape[0]} boxes, {len(p)} phrases and {len(n)} negative lists"
            )
        for phrase, box_negs in zip(p, n, strict=True):
            rows.append([vocab.setdefault(t, len(vocab)) for t in [phrase, *box_negs]])
    width = max((len(r) for r in rows), default=1)
    index = torch.zeros(len(rows), width, dtype=torch.long)
    valid = torch.zeros(len(rows), width, dtype=torch.bool)
    for j, r in enumerate(rows):
        index[j, : len(r)] = torch.tensor(r)
        valid[j, : len(r)] = True
    return list(vocab), index[:, 0].to(device), index.to(device), valid.to(device)
