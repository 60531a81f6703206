"""Same weights, same inputs: clipadapt's features equal open_clip's (fp32, max abs diff <= 1e-5)."""

from __future__ import annotations

import gc
from pathlib import Path

import pytest
import torch

import clipadapt
from tests.conftest import open_clip_model, save_state

TEXTS = ["a photo of a dog.", "a diagram", "an extremely long caption " * 20, ""]
PARITY_MODELS = ["tiny-vit", "tiny-vit-quickgelu", "ViT-B-32", "ViT-B-16", "ViT-B-16-quickgelu", "ViT-L-14"]


@pytest.mark.parametrize("name", PARITY_MODELS)
def test_features_equal_open_clip(name: str, tmp_path: Path) -> None:
    reference = open_clip_model(name)
    path = save_state(reference, tmp_path / "weights.pt")
    ours = clipadapt.create_model(name, pretrained=path).eval()
    size = ours.image_size
    torch.manual_seed(1)
    images = torch.randn(2, 3, size, size)
    tokens = clipadapt.get_tokenizer(name)(TEXTS)
    with torch.no_grad():
        image_diff = (ours.encode_image(images) - reference.encode_image(images)).abs().max().item()
        text_diff = (ours.encode_text(tokens) - reference.encode_text(tokens)).abs().max().item()
    del reference, ours
    gc.collect()
    assert image_diff <= 1e-5, f"{name}: image features differ by {image_diff:.3g}"
    assert text_diff <= 1e-5, f"{name}: text features differ by {text_diff:.3g}"


def test_logit_scale_and_forward_dict(tiny_pair) -> None:
    reference, ours, _ = tiny_pair
    images = torch.randn(3, 3, 64, 64)
    tokens = clipadapt.get_tokenizer(model=ours)(["red", "green", "blue"])
    with torch.no_grad():
        out = ours(images, tokens)
        ref_img, ref_txt, ref_scale = reference(images, tokens)
    torch.testing.assert_close(out["image_features"], ref_img, atol=1e-5, rtol=0)
    torch.testing.assert_close(out["text_features"], ref_txt, atol=1e-5, rtol=0)
    torch.testing.assert_close(out["logit_scale"], ref_scale)


def test_patch_tokens_equal_open_clip(tiny_pair) -> None:
    reference, ours, _ = tiny_pair
    reference.visual.output_tokens = True
    images = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        pooled, tokens = reference.visual(images)
        out = ours.forward_image(images, output_tokens=True)
    assert out.patch_tokens.shape == (2, 64, 192)
    torch.testing.assert_close(out.patch_tokens, tokens, atol=1e-5, rtol=0)
    torch.testing.assert_close(out.pooled, pooled, atol=1e-5, rtol=0)
