"""Metrics against hand computations on fixed tensors."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from clipadapt.evaluation import BaseNovelAccuracy, RetrievalRecall, Top1Accuracy, harmonic_mean, retrieval_recall


def _run(metric, samples):
    metric.process({}, samples)
    return metric.compute_metrics(metric.results)


def test_top1_and_top5_by_hand():
    scores = torch.tensor(
        [
            [0.1, 0.5, 0.2, 0.0, 0.0, 0.0, 0.3],  # order 1,6,2,0,... ; label 1 -> top1 hit
            [0.9, 0.0, 0.1, 0.2, 0.3, 0.4, 0.5],  # order 0,6,5,4,3,2,1 ; label 2 -> rank 6: miss, miss
            [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6],  # order 6,5,4,3,2,... ; label 3 -> rank 4: top5 hit
            [0.3, 0.2, 0.1, 0.0, 0.0, 0.0, 0.0],  # label 0 -> top1 hit
        ]
    )
    labels = [1, 2, 3, 0]
    samples = [{"pred_score": s, "gt_label": y} for s, y in zip(scores, labels)]
    assert _run(Top1Accuracy(topk=(1, 5)), samples) == pytest.approx({"top1": 50.0, "top5": 75.0})
    assert _run(Top1Accuracy(), samples) == pytest.approx({"top1": 50.0})


def test_topk_above_class_count_counts_every_class():
    samples = [{"pred_score": torch.tensor([0.2, 0.8]), "gt_label": 0}]
    assert _run(Top1Accuracy(topk=(1, 5)), samples) == pytest.approx({"top1": 0.0, "top5": 100.0})


def test_empty_and_unlabelled_predictions_are_errors():
    with pytest.raises(ValueError, match="no predictions"):
        Top1Accuracy().compute_metrics([])
    with pytest.raises(KeyError, match="gt_label"):
        Top1Accuracy().process({}, [{"pred_score": torch.zeros(3)}])


def test_harmonic_mean():
    assert harmonic_mean(80.0, 60.0) == pytest.approx(2 * 80 * 60 / 140)
    assert harmonic_mean(0.0, 0.0) == 0.0
    assert harmonic_mean(50.0, 50.0) == pytest.approx(50.0)
    with pytest.raises(ValueError):
        harmonic_mean(-1.0, 5.0)


def test_base_novel_by_hand():
    # 4 classes: base {0, 1}, novel {2, 3} (ceil(4 / 2) = 2).
    samples = [
        # base sample, label 0: overall argmax is 3 (novel, wrong), among base 0 wins -> base hit, all miss
        {"pred_score": torch.tensor([0.3, 0.1, 0.2, 0.4]), "gt_label": 0},
        # base sample, label 1: among base 0 wins -> base miss
        {"pred_score": torch.tensor([0.5, 0.2, 0.25, 0.05]), "gt_label": 1},
        # novel sample, label 2: among novel 2 wins -> novel hit; overall argmax 0 -> all miss
        {"pred_score": torch.tensor([0.6, 0.0, 0.3, 0.1]), "gt_label": 2},
        # novel sample, label 3: 3 wins everywhere
        {"pred_score": torch.tensor([0.1, 0.1, 0.1, 0.7]), "gt_label": 3},
    ]
    out = _run(BaseNovelAccuracy(), samples)
    assert out == pytest.approx({"base": 50.0, "novel": 100.0, "hm": 2 * 50 * 100 / 150, "all": 25.0})
    # num_base=1: base {0}, novel {1, 2, 3}
    out = _run(BaseNovelAccuracy(num_base=1), samples)
    assert out["base"] == pytest.approx(100.0)
    assert out["novel"] == pytest.approx(100 * 2 / 3)  # label 1: among classes 1..3, class 2 wins


def test_base_novel_needs_both_halves():
    samples = [{"pred_score": torch.tensor([0.9, 0.1]), "gt_label": 0}]
    with pytest.raises(ValueError, match="both halves"):
        _run(BaseNovelAccuracy(), samples)


def _unit(*rows):
    return F.normalize(torch.tensor(rows, dtype=torch.float32), dim=-1)


def test_retrieval_one_to_one_by_hand():
    images = _unit([1, 0, 0], [0, 1, 0], [0, 0, 1])
    # text 0 matches image 0 best; text 1 is closest to image 0 (wrong); text 2 matches image 2.
    texts = _unit([1, 0.1, 0], [1, 0.5, 0], [0, 0.2, 1])
    out = retrieval_recall(images, texts, torch.tensor([0, 1, 2]), ks=(1, 2))
    sim = images @ texts.t()
    # image->text: image 0 ranks text 0 (0.995) vs text 1 (0.894): rank 0. image 1 ranks texts by
    # [0.0995, 0.447, 0.196]: text 1 first -> rank 0. image 2: text 2 first -> rank 0.
    assert sim.argmax(dim=1).tolist() == [0, 1, 2]
    assert out["i2t_R@1"] == pytest.approx(100.0)
    # text->image: text 0 -> image 0 (rank 0); text 1 -> image 0 wins over image 1 (rank 1); text 2 -> image 2.
    assert out["t2i_R@1"] == pytest.approx(200 / 3)
    assert out["t2i_R@2"] == pytest.approx(100.0)
    assert out["mean_R"] == pytest.approx((100 + 100 + 200 / 3 + 100) / 4)


def test_retrieval_several_captions_per_image():
    img_a, img_b = [1.0, 0.0], [0.0, 1.0]
    samples = [
        {"image_feature": torch.tensor(img_a), "text_feature": torch.tensor([1.0, 0.0]), "img_path": "a.png"},
        {"image_feature": torch.tensor(img_a), "text_feature": torch.tensor([0.0, 1.0]), "img_path": "a.png"},
        {
            "image_feature": torch.tensor(img_b),
            "text_feature": F.normalize(torch.tensor([1.0, 0.9]), dim=0),
            "img_path": "b.png",
        },
    ]
    out = _run(RetrievalRecall(ks=(1,)), samples)
    # 2 images. Image a: its texts are t0 (1.0) and t1 (0.0); t0 is the best text overall -> hit.
    # Image b: texts score [0, 1, 0.669]; t1 (a's) beats t2 -> miss. i2t R@1 = 50.
    assert out["i2t_R@1"] == pytest.approx(50.0)
    # t0 -> a (1 vs 0) hit; t1 -> b wins (1 vs 0) miss; t2 -> a 0.743 vs b 0.669 miss -> 1/3.
    assert out["t2i_R@1"] == pytest.approx(100 / 3)


def test_retrieval_long_text_key():
    samples = [
        {
            "image_feature": torch.tensor([1.0, 0.0]),
            "text_feature": torch.tensor([0.0, 1.0]),
            "long_text_feature": torch.tensor([1.0, 0.0]),
        },
        {
            "image_feature": torch.tensor([0.0, 1.0]),
            "text_feature": torch.tensor([1.0, 0.0]),
            "long_text_feature": torch.tensor([0.0, 1.0]),
        },
    ]
    assert _run(RetrievalRecall(ks=(1,)), samples)["i2t_R@1"] == 0.0
    assert _run(RetrievalRecall(ks=(1,), text_key="long_text_feature"), samples)["i2t_R@1"] == 100.0
    assert not math.isnan(_run(RetrievalRecall(ks=(1,)), samples)["mean_R"])
