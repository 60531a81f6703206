"""The vision tower on images of another size: positional embedding resized as open_clip resizes it."""

from __future__ import annotations

import pytest
import torch
from open_clip.model import resize_pos_embed

import clipadapt


def test_positional_embedding_resize_equals_open_clips(tiny_pair):
    reference, ours, _ = tiny_pair
    state = {"visual.positional_embedding": ours.visual.positional_embedding.detach().clone()}
    reference.visual.grid_size = (12, 9)  # what open_clip's loader resizes a checkpoint to
    resize_pos_embed(state, reference)
    torch.testing.assert_close(ours.visual.positional_embedding_for((12, 9)), state["visual.positional_embedding"])


def test_native_size_is_unchanged_and_other_sizes_need_dynamic_size(tiny_cfg):
    model = clipadapt.create_model("tiny-vit").eval()
    size = tiny_cfg.vision.image_size
    images = torch.randn(2, 3, size, size)
    before = model.encode_image(images)
    with pytest.raises(ValueError, match="dynamic_size"):
        model.encode_image(torch.randn(2, 3, 2 * size, size))
    model.visual.dynamic_size = True
    torch.testing.assert_close(model.encode_image(images), before)  # native size: the embedding as trained
    wide = model.visual(torch.randn(2, 3, 2 * size, size), output_tokens=True)
    grid = size // tiny_cfg.vision.patch_size
    assert wide.patch_tokens.shape[1] == 2 * grid * grid
    with pytest.raises(ValueError, match="multiples of the patch size"):
        model.encode_image(torch.randn(1, 3, size + 3, size))
