"""CLIP's score of each box (crop and dense modes) and the base/novel geometric-mean ensemble."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from clipadapt.detection.clip_models import frozen_clip
from clipadapt.detection.region_scorer import CLIPRegionScorer
from clipadapt.detection.vocabulary import vocabulary_features
from clipadapt.models.dense import encode_regions

CLIP = dict(model_name="tiny-vit")  # random weights: the arithmetic is what is tested
VOCAB = ["red circle", "blue square", "green star"]


@pytest.fixture
def images():
    torch.manual_seed(0)
    return torch.randn(2, 3, 96, 96)


def test_crop_of_the_whole_image_is_the_image_feature(images):
    scorer = CLIPRegionScorer(CLIP, mode="crop")
    clip = frozen_clip(CLIP)
    small = images[:, :, :64, :64]  # the CLIP's own input size: the crop is the identity resample
    boxes = [torch.tensor([[0.0, 0.0, 64.0, 64.0]]), torch.tensor([[0.0, 0.0, 64.0, 64.0], [0.0, 0.0, 32.0, 32.0]])]
    features = scorer.region_features(small, boxes)
    expected = clip.encode_image(small, normalize=True)
    torch.testing.assert_close(features[:2], expected, rtol=1e-5, atol=1e-5)
    quarter = F.interpolate(small[1:, :, :32, :32], size=64, mode="bilinear", align_corners=False)
    assert F.cosine_similarity(features[2:], clip.encode_image(quarter, normalize=True)).item() > 0.99


def test_dense_mode_pools_the_resized_image(images):
    scorer = CLIPRegionScorer(CLIP, mode="dense")
    boxes = [torch.tensor([[0.0, 0.0, 48.0, 48.0]]), torch.tensor([[48.0, 48.0, 96.0, 96.0]])]
    resized = F.interpolate(images, size=64, mode="bilinear", align_corners=False)
    expected = encode_regions(frozen_clip(CLIP), resized, [b * 64 / 96 for b in boxes], normalize=True)
    torch.testing.assert_close(scorer.region_features(images, boxes), expected)


def test_class_probs_are_clip_zero_shot_softmax(images):
    scorer = CLIPRegionScorer(CLIP, mode="crop", temperature=30.0)
    scorer.set_vocabulary(VOCAB, novel_classes=["green star"])
    boxes = [torch.tensor([[0.0, 0.0, 40.0, 40.0]]), torch.zeros(0, 4)]
    probs = scorer.class_probs(images, boxes)
    text = vocabulary_features(frozen_clip(CLIP), VOCAB)
    expected = (30.0 * scorer.region_features(images, boxes) @ text.t()).softmax(-1)
    torch.testing.assert_close(probs, expected)
    assert probs.shape == (1, 3)


def test_ensemble_is_the_weighted_geometric_mean_per_class():
    scorer = CLIPRegionScorer(CLIP, base_weight=0.25, novel_weight=0.75)
    scorer.set_vocabulary(VOCAB, novel_classes=["green star"])
    det = torch.tensor([[0.6, 0.3, 0.05], [0.1, 0.1, 0.1]])
    clip = torch.tensor([[0.2, 0.2, 0.6], [0.5, 0.3, 0.2]])
    out = scorer.ensemble(det, clip)
    w = torch.tensor([0.25, 0.25, 0.75])
    torch.testing.assert_close(out, det ** (1 - w) * clip**w)
    # a novel class that the detector doubts but CLIP sees is lifted; CLIP's doubt lowers a base class
    assert out[0, 2] > 3 * det[0, 2] and out[0, 0] < det[0, 0]


def test_bad_scorer_input_names_the_value():
    with pytest.raises(ValueError, match="mode"):
        CLIPRegionScorer(CLIP, mode="patches")
    with pytest.raises(ValueError, match="novel_weight"):
        CLIPRegionScorer(CLIP, novel_weight=1.5)
    scorer = CLIPRegionScorer(CLIP)
    with pytest.raises(RuntimeError, match="no vocabulary"):
        scorer.class_probs(torch.randn(1, 3, 64, 64), [torch.tensor([[0.0, 0.0, 8.0, 8.0]])])
    with pytest.raises(ValueError, match=r"novel classes \['purple'\]"):
        scorer.set_vocabulary(VOCAB, novel_classes=["purple"])
    with pytest.raises(ValueError, match="more than once"):
        scorer.set_vocabulary(["red", "red"])
    scorer.set_vocabulary(VOCAB)
    with pytest.raises(ValueError, match="share one vocabulary"):
        scorer.ensemble(torch.rand(2, 4), torch.rand(2, 3))
