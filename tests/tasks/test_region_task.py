"""RegionTextAlignment: each loss term is its definition on the task's features; switches and weights work."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from clipadapt.models.dense import encode_regions
from clipadapt.tasks import RegionTextAlignment, clip_loss
from clipadapt.tasks.region_losses import hard_negative_loss, region_contrastive_loss, tic_loss

BOXES = [torch.tensor([[0.0, 0.0, 32.0, 32.0], [16.0, 8.0, 64.0, 40.0]]), torch.tensor([[8.0, 8.0, 56.0, 60.0]])]
SAMPLES = {
    "boxes": BOXES,
    "phrases": [["small plain red circle", "large striped blue star"], ["medium dotted red star"]],
    "hard_negatives": [[["small plain blue circle", "small plain red star"], []], [["medium dotted blue star"]]],
    "box_labels": [torch.tensor([0, 1]), torch.tensor([2])],
    "caption": ["a red circle and a blue star", "a red star"],
    "long_caption": ["The image shows two objects.", "The image shows one object."],
    "index": torch.tensor([0, 1]),
}


def _task(**kwargs) -> RegionTextAlignment:
    torch.manual_seed(0)
    return RegionTextAlignment("tiny-vit", **kwargs)


def _images() -> torch.Tensor:
    torch.manual_seed(1)
    return torch.randn(2, 3, 64, 64)


def test_each_loss_term_is_its_weighted_definition() -> None:
    weights = dict(region=0.5, hard_negative=2.0, hard_batch=0.0, cmr=0.0, tic=0.3, long=0.0)
    task = _task(loss_weights=weights).eval()
    images = _images()
    with torch.no_grad():
        losses = task(images, SAMPLES, mode="loss")
        clip = task.clip
        regions = encode_regions(clip, images, BOXES, normalize=True)
        phrases = clip.encode_text(task.tokenize([p for ps in SAMPLES["phrases"] for p in ps]), normalize=True)
        captions = clip.encode_text(task.tokenize(SAMPLES["caption"]), normalize=True)
        image = clip.encode_image(images, normalize=True)
        scale = task.region_logit_scale.exp()
        candidates = [
            ["small plain red circle", "small plain blue circle", "small plain red star"],
            ["large striped blue star"],
            ["medium dotted red star", "medium dotted blue star"],
        ]
        cand = torch.zeros(3, 3, regions.shape[1])
        valid = torch.zeros(3, 3, dtype=torch.bool)
        for i, texts in enumerate(candidates):
            cand[i, : len(texts)] = clip.encode_text(task.tokenize(texts), normalize=True)
            valid[i, : len(texts)] = True
    assert set(losses) == {"loss_global", "loss_region", "loss_hard_negative", "loss_tic"}
    torch.testing.assert_close(losses["loss_global"], clip_loss(image, captions, clip.logit_scale.exp()))
    torch.testing.assert_close(losses["loss_region"], 0.5 * region_contrastive_loss(regions, phrases, scale))
    want = 2.0 * hard_negative_loss(regions, cand, valid, task.hard_logit_scale.exp())
    torch.testing.assert_close(losses["loss_hard_negative"], want, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(losses["loss_tic"], 0.3 * tic_loss(phrases))


def test_all_terms_train_and_long_captions_count() -> None:
    task = _task().train()
    losses = task(_images(), SAMPLES, mode="loss")
    assert set(losses) == {
        f"loss_{k}" for k in ("global", "long", "region", "hard_negative", "hard_batch", "cmr", "tic")
    }
    sum(losses.values()).backward()
    assert task.region_logit_scale.grad is not None and task.hard_logit_scale.grad is not None
    assert task.clip.visual.proj.grad is not None  # no plugins: the whole CLIP trains


def test_a_batch_without_boxes_gives_zero_region_terms() -> None:
    task = _task()
    empty = dict(SAMPLES, boxes=[torch.zeros(0, 4)] * 2, phrases=[[], []], hard_negatives=[[], []])
    losses = task(_images(), empty, mode="loss")
    assert losses["loss_region"].item() == 0.0 and losses["loss_global"].item() > 0


def test_predict_gives_region_scores_hard_scores_and_features() -> None:
    task = _task(classnames=["red circle", "blue star", "red star"], templates="synthetic").eval()
    out = task(_images(), SAMPLES, mode="predict")
    assert len(out) == 2
    first = out[0]
    assert first["region_scores"].shape == (2, 3) and first["image_scores"].shape == (3,)
    assert first["hard_scores"].shape == (2, 3) and torch.isinf(first["hard_scores"][1, 1:]).all()
    torch.testing.assert_close(first["hard_scores"][:, 0], (first["region_features"] * first["phrase_features"]).sum(1))
    assert first["box_labels"].tolist() == [0, 1] and first["index"] == 0
    assert set(first) >= {"image_feature", "text_feature", "long_text_feature"}
    torch.testing.assert_close(F.normalize(first["region_features"], dim=-1), first["region_features"])


def test_bad_configuration_and_data_are_named() -> None:
    with pytest.raises(ValueError, match=r"unknown loss_weights \['regoin'\]"):
        _task(loss_weights=dict(regoin=1.0))
    with pytest.raises(ValueError, match="computes its own region loss"):
        _task(plugins=[dict(type="CLOCPrompter")])
    task = _task()
    with pytest.raises(ValueError, match="image 1 of the batch has 1 boxes, 2 phrases"):
        task(_images(), dict(SAMPLES, phrases=[SAMPLES["phrases"][0], ["a", "b"]]), mode="loss")
    with pytest.raises(KeyError, match=r"loss term 'long' needs data_samples\['long_caption'\]"):
        task(_images(), {k: v for k, v in SAMPLES.items() if k != "long_caption"}, mode="loss")
    with pytest.raises(KeyError, match=r"data_samples\['boxes'\]"):
        task(_images(), {"caption": SAMPLES["caption"]}, mode="loss")
