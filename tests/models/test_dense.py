"""Dense patch features and box pooling: exact against direct computations, one RoIAlign call."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import clipadapt
from clipadapt.models import dense
from clipadapt.models.dense import dense_map, encode_regions, forward_dense, pool_boxes


@pytest.fixture(scope="module")
def model() -> clipadapt.CLIP:
    torch.manual_seed(0)
    return clipadapt.create_model("tiny-vit").eval()  # 64 px, patch 8: an 8 x 8 grid


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    torch.manual_seed(1)
    return torch.randn(3, 3, 64, 64)


def _crop_mean(dense_map_: torch.Tensor, image: int, box: list[int], patch: int) -> torch.Tensor:
    """The plain average of the map's cells inside a box whose corners lie on the patch grid."""
    x1, y1, x2, y2 = (v // patch for v in box)
    return dense_map_[image, :, y1:y2, x1:x2].mean(dim=(1, 2))


def test_pooled_boxes_equal_crop_and_average_on_the_patch_grid(model, images) -> None:
    with torch.no_grad():
        vision = forward_dense(model, images)
        features = dense_map(model, vision)  # [3, D, 8, 8]
        boxes = [
            [[0, 0, 16, 16], [8, 24, 64, 40], [0, 0, 64, 64], [56, 56, 64, 64]],
            [],  # an image without boxes
            [[16, 8, 40, 48]],
        ]
        pooled = pool_boxes(features, [torch.tensor(b, dtype=torch.float32).view(-1, 4) for b in boxes], 64)
    expected = [_crop_mean(features, i, box, 8) for i, per_image in enumerate(boxes) for box in per_image]
    assert pooled.shape == (5, model.embed_dim)
    torch.testing.assert_close(pooled, torch.stack(expected), atol=1e-5, rtol=1e-5)


def test_pooling_takes_one_roi_align_call_for_any_number_of_boxes(model, images, monkeypatch) -> None:
    calls = []
    real = dense.roi_align
    monkeypatch.setattr(dense, "roi_align", lambda *a, **k: calls.append(1) or real(*a, **k))
    torch.manual_seed(2)
    boxes = [torch.rand(n, 2).mul(30).repeat(1, 2) + torch.tensor([0, 0, 20, 30]) for n in (7, 0, 64)]
    with torch.no_grad():
        out = encode_regions(model, images, boxes)
    assert out.shape == (71, model.embed_dim) and len(calls) == 1


def test_value_path_dense_map_follows_its_definition(model, images) -> None:
    """Last block without query-key attention: x + out_proj(W_v ln_1(x) + b_v), then the MLP; ln_post; proj."""
    block = model.visual.transformer.resblocks[-1]
    with torch.no_grad():
        vision = forward_dense(model, images)
        got = dense_map(model, vision, value_path=True)
        x = vision.penultimate[:, 1:65]
        w_v = block.attn.qkv.weight.chunk(3)[2]
        b_v = block.attn.qkv.bias.chunk(3)[2]
        x = x + block.attn.out_proj(F.linear(block.ln_1(x), w_v, b_v))
        x = x + block.mlp(block.ln_2(x))
        want = (model.visual.ln_post(x) @ model.visual.proj).transpose(1, 2).reshape(3, -1, 8, 8)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def test_plain_dense_map_is_the_towers_own_patch_output(model, images) -> None:
    with torch.no_grad():
        vision = forward_dense(model, images)
        got = dense_map(model, vision, value_path=False)
        out = model.visual(images, output_tokens=True)
        want = (out.patch_tokens @ model.visual.proj).transpose(1, 2).reshape(3, -1, 8, 8)
        torch.testing.assert_close(vision.pooled, model.encode_image(images), atol=0, rtol=0)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    # The recorded tokens are what enters and leaves the last block.
    block = model.visual.transformer.resblocks[-1]
    torch.testing.assert_close(block(vision.penultimate), vision.tokens, atol=1e-6, rtol=1e-6)


def test_box_set_count_and_scale_are_checked(model, images) -> None:
    features = torch.zeros(3, 4, 8, 8)
    with pytest.raises(ValueError, match="2 box sets for 3 images"):
        pool_boxes(features, [torch.zeros(1, 4)] * 2, 64)
    with pytest.raises(ValueError, match="boxes of image 0 must be \\[K, 4\\]"):
        pool_boxes(features, [torch.zeros(1, 5)] * 3, 64)
    with pytest.raises(ValueError, match="differ in scale"):
        pool_boxes(features, [torch.zeros(1, 4)] * 3, (64, 32))
    assert pool_boxes(features, [torch.zeros(0, 4)] * 3, 64).shape == (0, 4)
