"""Classification metrics: top-k accuracy, and the base-to-novel protocol with its harmonic mean."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from mmengine.evaluator import BaseMetric

from clipadapt.registry import METRICS

__all__ = ["BaseNovelAccuracy", "Top1Accuracy", "harmonic_mean"]


def harmonic_mean(base: float, novel: float) -> float:
    """``2 * base * novel / (base + novel)``: CoOp/CoCoOp's HM of base and novel accuracy (0 when both are 0)."""
    if base < 0 or novel < 0:
        raise ValueError(f"accuracies must be >= 0, got base={base}, novel={novel}")
    return 0.0 if base + novel == 0 else 2 * base * novel / (base + novel)


def _gt(sample: dict[str, Any]) -> int:
    if "gt_label" not in sample:
        raise KeyError("the predictions carry no 'gt_label': the data set gives no labels")
    return int(sample["gt_label"])


@METRICS.register_module()
class Top1Accuracy(BaseMetric):
    """Top-1 (and optionally top-k) accuracy in percent, as ``accuracy/top1``, ``accuracy/top5``, ...

    Expects predictions ``{'pred_score': [C], 'gt_label': int}`` (:class:`PromptClassifier`'s
    ``predict`` mode). Stores only the top-k class indices per sample.

    Args:
        topk: The ``k`` to report; ``(1, 5)`` adds top-5. A ``k`` above the number of classes counts
            every class (accuracy 100).
        collect_device: ``'cpu'`` or ``'gpu'``, where results of the ranks are gathered.
        prefix: Metric name prefix; default ``'accuracy'``.
    """

    default_prefix = "accuracy"

    def __init__(
        self, topk: int | Sequence[int] = (1,), collect_device: str = "cpu", prefix: str | None = None
    ) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.topk = (topk,) if isinstance(topk, int) else tuple(topk)
        if not self.topk or any(k < 1 for k in self.topk):
            raise ValueError(f"topk must be positive integers, got {topk}")

    def process(self, data_batch: Any, data_samples: Sequence[dict[str, Any]]) -> None:
        for sample in data_samples:
            scores = torch.as_tensor(sample["pred_score"])
            top = scores.topk(min(max(self.topk), scores.numel())).indices
            self.results.append((top, _gt(sample)))

    def compute_metrics(self, results: list) -> dict[str, float]:
        if not results:
            raise ValueError(f"{type(self).__name__}: no predictions to score (an empty data set?)")
        width = max(r[0].numel() for r in results)
        # Pad with -1 (never a label) so rows of different lengths stack.
        tops = torch.stack([torch.cat([r[0], r[0].new_full((width - r[0].numel(),), -1)]) for r in results])
        labels = torch.tensor([r[1] for r in results]).view(-1, 1)
        hits = tops == labels
        return {f"top{k}": 100.0 * hits[:, :k].any(dim=1).float().mean().item() for k in self.topk}


@METRICS.register_module()
class BaseNovelAccuracy(BaseMetric):
    """The base-to-novel protocol of CoCoOp (Zhou et al. 2022, https://arxiv.org/abs/2203.05557) in one pass.

    Run on the full label space (``subsample='all'``). The first ``num_base`` labels are base (CoOp's
    split: ``ceil(C / 2)`` by default), the rest novel. ``base`` is the accuracy on base-class samples
    choosing among base classes only, ``novel`` likewise among novel classes, ``hm`` their harmonic
    mean, ``all`` the accuracy over every sample and class. Choosing among a subset of the logits
    is what evaluating with only those class names gives, as long as a class's text feature does not
    depend on the other classes (true of CLIP prompts and prompt learners).

    Args:
        num_base: Number of base classes; ``None`` = ``ceil(C / 2)``.
        collect_device: See :class:`Top1Accuracy`.
        prefix: Default ``'base_novel'``.
    """

    default_prefix = "base_novel"

    def __init__(self, num_base: int | None = None, collect_device: str = "cpu", prefix: str | None = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        if num_base is not None and num_base < 1:
            raise ValueError(f"num_base must be >= 1, got {num_base}")
        self.num_base = num_base

    def process(self, data_batch: Any, data_samples: Sequence[dict[str, Any]]) -> None:
        for sample in data_samples:
            scores = torch.as_tensor(sample["pred_score"])
            num_base = self.num_base if self.num_base is not None else math.ceil(scores.numel() / 2)
            if not 0 < num_base < scores.numel():
                raise ValueError(f"num_base={num_base} leaves no novel classes among {scores.numel()}")
            gt = _gt(sample)
            base = gt < num_base
            pick = scores[:num_base].argmax() if base else num_base + scores[num_base:].argmax()
            self.results.append((bool(base), int(pick) == gt, int(scores.argmax()) == gt))

    def compute_metrics(self, results: list) -> dict[str, float]:
        if not results:
            raise ValueError(f"{type(self).__name__}: no predictions to score (an empty data set?)")
        base = [hit for is_base, hit, _ in results if is_base]
        novel = [hit for is_base, hit, _ in results if not is_base]
        if not base or not novel:
            raise ValueError(
                f"base-to-novel accuracy needs samples of both halves, got {len(base)} base and {len(novel)} novel"
            )
        base_acc = 100.0 * sum(base) / len(base)
        novel_acc = 100.0 * sum(novel) / len(novel)
        return {
            "base": base_acc,
            "novel": novel_acc,
            "hm": harmonic_mean(base_acc, novel_acc),
            "all": 100.0 * sum(r[2] for r in results) / len(results),
        }
