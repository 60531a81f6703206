"""Region metrics: region classification, hard-negative accuracy, region-phrase retrieval, global zero-shot."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from mmengine.evaluator import BaseMetric

from clipadapt.registry import METRICS

from .retrieval import retrieval_recall

__all__ = ["RegionMetric", "hard_negative_accuracy", "region_top1", "scene_zero_shot_top1"]


def region_top1(scores: torch.Tensor, labels: torch.Tensor) -> float:
    """Percent of boxes whose best-scoring category is theirs; boxes labelled -1 are left out.

    Args:
        scores: ``[K, C]`` region-category similarities.
        labels: ``[K]`` category indices (-1: none).
    """
    keep = labels >= 0
    if not keep.any():
        raise ValueError("region classification needs boxes with a category label")
    return 100.0 * (scores[keep].argmax(dim=1) == labels[keep]).float().mean().item()


def hard_negative_accuracy(scores: torch.Tensor) -> float:
    """Percent of boxes that score their phrase (column 0) strictly above each of their hard negatives.

    Args:
        scores: ``[K, 1 + k]``; padding is ``-inf``. Boxes without a negative are left out.
    """
    has_negative = torch.isfinite(scores[:, 1:]).any(dim=1)
    if not has_negative.any():
        raise ValueError("hard-negative accuracy needs boxes with at least one hard negative")
    scores = scores[has_negative]
    return 100.0 * (scores[:, 0] > scores[:, 1:].max(dim=1).values).float().mean().item()


def scene_zero_shot_top1(image_scores: torch.Tensor, present: Sequence[set[int]]) -> float:
    """Global zero-shot on multi-object images: percent whose top category is one of the objects shown.

    Args:
        image_scores: ``[N, C]`` global image-category similarities.
        present: Per image, the category labels of its boxes (images with none are left out).
    """
    hits = [int(s.argmax()) in p for s, p in zip(image_scores, present, strict=True) if p]
    if not hits:
        raise ValueError("global zero-shot needs images with labelled boxes")
    return 100.0 * sum(hits) / len(hits)


@METRICS.register_module()
class RegionMetric(BaseMetric):
    """Region-text evaluation of :class:`~clipadapt.tasks.RegionTextAlignment` predictions.

    Reported (as ``region/<name>``), each when the predictions carry what it needs:

    - ``top1``: region classification, each box against the phrases of *all* categories
      (``region_scores``, ``box_labels``);
    - ``hard_negative``: the box's phrase beats every one of its attribute-swapped negatives
      (``hard_scores``);
    - ``r2p_R@K`` / ``p2r_R@K``: region -> phrase and phrase -> region retrieval over the whole
      evaluation set (``region_features``, ``phrase_features``); identical phrases tie, and ties do
      not count against the correct item;
    - ``global_top1``: global zero-shot on the images, correct when the top category of the whole
      image is one of its objects' (``image_scores``); it tracks what region training costs the
      global feature (run ``RetrievalRecall`` beside it for caption retrieval).

    Args:
        ks: The ``K`` of the retrieval recalls.
        collect_device: ``'cpu'`` or ``'gpu'``.
        prefix: Default ``'region'``.
    """

    default_prefix = "region"

    def __init__(self, ks: Sequence[int] = (1, 5), collect_device: str = "cpu", prefix: str | None = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        if not ks or any(k < 1 for k in ks):
            raise ValueError(f"ks must be positive integers, got {ks}")
        self.ks = tuple(ks)

    def process(self, data_batch: Any, data_samples: Sequence[dict[str, Any]]) -> None:
        keys = ("region_scores", "box_labels", "hard_scores", "region_features", "phrase_features", "image_scores")
        for sample in data_samples:
            self.results.append({k: torch.as_tensor(sample[k]).cpu() for k in keys if k in sample})

    def compute_metrics(self, results: list) -> dict[str, float]:
        if not results:
            raise ValueError(f"{type(self).__name__}: no predictions to score (an empty data set?)")
        out: dict[str, float] = {}

        def cat(key: str) -> torch.Tensor | None:
            parts = [r[key] for r in results if key in r]
            return torch.cat(parts) if len(parts) == len(results) else None

        scores, labels = cat("region_scores"), cat("box_labels")
        if scores is not None and labels is not None and (labels >= 0).any():
            out["top1"] = region_top1(scores, labels)
        hard = [r["hard_scores"] for r in results if "hard_scores" in r and r["hard_scores"].numel()]
        if hard:
            width = max(h.shape[1] for h in hard)
            padded = [torch.cat([h, h.new_full((h.shape[0], width - h.shape[1]), float("-inf"))], 1) for h in hard]
            stacked = torch.cat(padded)
            if torch.isfinite(stacked[:, 1:]).any():
                out["hard_negative"] = hard_negative_accuracy(stacked)
        regions, phrases = cat("region_features"), cat("phrase_features")
        if regions is not None and phrases is not None and regions.shape[0] > 0:
            recall = retrieval_recall(regions, phrases, torch.arange(regions.shape[0]), self.ks)
            out.update({k.replace("i2t", "r2p").replace("t2i", "p2r"): v for k, v in recall.items()})
        if all("image_scores" in r for r in results) and labels is not None:
            present = [{int(v) for v in r["box_labels"] if v >= 0} for r in results]
            if any(present):
                out["global_top1"] = scene_zero_shot_top1(torch.stack([r["image_scores"] for r in results]), present)
        if not out:
            raise ValueError(
                "RegionMetric: the predictions carry nothing to score; RegionTextAlignment needs category names "
                "(ClassNamesHook), phrases and boxes in the data"
            )
        return out
