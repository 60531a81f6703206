"""Metrics (MMEngine ``BaseMetric`` in ``clipadapt.registry.METRICS``).

- :class:`Top1Accuracy`: top-1 (and top-k) accuracy of a classifier.
- :class:`BaseNovelAccuracy` and :func:`harmonic_mean`: CoCoOp's base-to-novel protocol.
- :class:`RetrievalRecall`: image-text retrieval R@K in both directions.
- :class:`LongTextRetrieval`: long- and short-caption retrieval and zero-shot retention in one pass
  (with :class:`MetricModelHook`, which hands it the model).
- :class:`RegionMetric`: region classification, hard-negative accuracy, region-phrase retrieval, global zero-shot.
"""

from .classification import BaseNovelAccuracy, Top1Accuracy, harmonic_mean
from .long_text import LongTextRetrieval, MetricModelHook, zero_shot_hits
from .regions import RegionMetric, hard_negative_accuracy, region_top1, scene_zero_shot_top1
from .retrieval import RetrievalRecall, retrieval_recall

__all__ = [
    "BaseNovelAccuracy",
    "LongTextRetrieval",
    "MetricModelHook",
    "RegionMetric",
    "RetrievalRecall",
    "Top1Accuracy",
    "hard_negative_accuracy",
    "harmonic_mean",
    "region_top1",
    "retrieval_recall",
    "scene_zero_shot_top1",
    "zero_shot_hits",
]
