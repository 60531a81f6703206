"""Metrics (MMEngine ``BaseMetric`` in ``clipadapt.registry.METRICS``).

- :class:`Top1Accuracy`: top-1 (and top-k) accuracy of a classifier.
- :class:`BaseNovelAccuracy` and :func:`harmonic_mean`: CoCoOp's base-to-novel protocol.
- :class:`RetrievalRecall`: image-text retrieval R@K in both directions.
"""

from .classification import BaseNovelAccuracy, Top1Accuracy, harmonic_mean
from .retrieval import RetrievalRecall, retrieval_recall

__all__ = ["BaseNovelAccuracy", "RetrievalRecall", "Top1Accuracy", "harmonic_mean", "retrieval_recall"]
