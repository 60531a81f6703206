"""ImageTextContrastive: CLIP's symmetric InfoNCE, logit-scale clamp, long captions, predictions."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from clipadapt.registry import MODELS
from clipadapt.tasks import clip_loss, gather_features

CAPTIONS = ["a red circle", "a blue square and a green star", "a yellow cross"]
LONG = ["The image shows one object. " * 20, "Two objects on a plain background.", "A cross."]


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return MODELS.build(dict(type="ImageTextContrastive", model_name="tiny-vit", long_caption_weight=0.5))


def test_clip_loss_by_hand():
    image = F.normalize(torch.tensor([[1.0, 0.0], [0.6, 0.8]]), dim=-1)
    text = F.normalize(torch.tensor([[1.0, 0.0], [0.0, 1.0]]), dim=-1)
    scale = torch.tensor(10.0)
    logits = 10 * image @ text.t()  # [[10, 0], [6, 8]]
    i2t = -(torch.log_softmax(logits, 1)[0, 0] + torch.log_softmax(logits, 1)[1, 1]) / 2
    t2i = -(torch.log_softmax(logits.t(), 1)[0, 0] + torch.log_softmax(logits.t(), 1)[1, 1]) / 2
    torch.testing.assert_close(clip_loss(image, text, scale), (i2t + t2i) / 2)


def test_gather_without_process_group_is_identity():
    x = torch.randn(4, 3, requires_grad=True)
    assert gather_features(x) is x


def test_loss_matches_features(model, images):
    data = model.data_preprocessor({"inputs": images, "data_samples": {"caption": CAPTIONS, "long_caption": LONG}})
    model.train()
    losses = model(**data, mode="loss")
    assert set(losses) == {"loss_contrastive", "loss_long"}
    with torch.no_grad():
        image = model.clip.encode_image(data["inputs"], normalize=True)
        text = model.clip.encode_text(model.tokenize(CAPTIONS), normalize=True)
        long = model.clip.encode_text(model.tokenize(LONG), normalize=True)
        scale = model.clip.logit_scale.exp()
    torch.testing.assert_close(losses["loss_contrastive"].detach(), clip_loss(image, text, scale), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(losses["loss_long"].detach(), 0.5 * clip_loss(image, long, scale), atol=1e-5, rtol=1e-5)
    (losses["loss_contrastive"] + losses["loss_long"]).backward()
    assert model.clip.logit_scale.grad is not None and model.clip.text.token_embedding.weight.grad is not None


def test_logit_scale_is_clamped_at_100(model, images):
    with torch.no_grad():
        model.clip.logit_scale.fill_(math.log(500.0))
    data = model.data_preprocessor({"inputs": images, "data_samples": {"caption": CAPTIONS}})
    model.train()
    model(**data, mode="loss")
    assert model.clip.logit_scale.exp().item() == pytest.approx(100.0, rel=1e-5)


def test_predict_returns_features_and_ids(model, images):
    model.eval()
    samples = {"caption": CAPTIONS, "long_caption": LONG, "index": torch.tensor([5, 6, 7])}
    data = model.data_preprocessor({"inputs": images, "data_samples": samples})
    with torch.no_grad():
        preds = model(**data, mode="predict")
    assert [p["index"] for p in preds] == [5, 6, 7]
    assert preds[0]["image_feature"].shape == (128,) and "long_text_feature" in preds[0]
    assert preds[1]["text_feature"].norm().item() == pytest.approx(1.0, abs=1e-5)


def test_missing_captions_are_named(model, images):
    data = model.data_preprocessor({"inputs": images, "data_samples": {"label": torch.tensor([0, 1, 2])}})
    with pytest.raises(KeyError, match="caption"):
        model(**data, mode="loss")
