"""RegionMetric: region top-1, hard-negative accuracy (ties are misses), region-phrase retrieval, global top-1."""

from __future__ import annotations

import math

import pytest
import torch

from clipadapt.evaluation import RegionMetric, hard_negative_accuracy

INF = -math.inf


def _predictions() -> list[dict]:
    eye = torch.eye(3)
    return [
        {
            "region_scores": torch.tensor([[0.9, 0.1, 0.0], [0.2, 0.1, 0.7]]),  # box 0 right (0), box 1 wrong (2 vs 1)
            "box_labels": torch.tensor([0, 1]),
            "hard_scores": torch.tensor([[0.5, 0.4, INF], [0.3, 0.3, 0.1]]),  # beats its negative; a tie
            "region_features": eye[:2],
            "phrase_features": torch.stack([eye[0], eye[2]]),  # box 1 retrieves phrase 2's slot
            "image_scores": torch.tensor([0.1, 0.8, 0.1]),  # top category 1 is in the image
        },
        {
            "region_scores": torch.tensor([[0.0, 0.2, 0.9]]),
            "box_labels": torch.tensor([2]),
            "hard_scores": torch.tensor([[0.9, 0.1]]),
            "region_features": eye[2:],
            "phrase_features": eye[1:2],
            "image_scores": torch.tensor([0.9, 0.0, 0.1]),  # top category 0 is not in the image
        },
    ]


def test_region_metric_scores_each_part() -> None:
    metric = RegionMetric(ks=(1, 3))
    metric.process({}, _predictions())
    out = metric.compute_metrics(metric.results)
    assert out["top1"] == pytest.approx(100 * 2 / 3)
    assert out["hard_negative"] == pytest.approx(100 * 2 / 3)
    # Region 0 <-> phrase 0 match; regions 1 and 2 have their phrases swapped.
    assert out["r2p_R@1"] == pytest.approx(100 / 3) and out["p2r_R@1"] == pytest.approx(100 / 3)
    assert out["r2p_R@3"] == 100.0
    assert out["global_top1"] == 50.0


def test_hard_negative_accuracy_skips_boxes_without_negatives() -> None:
    assert hard_negative_accuracy(torch.tensor([[1.0, 0.0], [0.1, INF], [0.2, 0.5]])) == 50.0
    with pytest.raises(ValueError, match="at least one hard negative"):
        hard_negative_accuracy(torch.tensor([[1.0, INF]]))


def test_nothing_to_score_is_an_error() -> None:
    metric = RegionMetric()
    metric.process({}, [{"image_feature": torch.zeros(3)}])
    with pytest.raises(ValueError, match="nothing to score"):
        metric.compute_metrics(metric.results)
