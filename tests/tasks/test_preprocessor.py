"""ClipDataPreprocessor: uint8 -> CLIP-normalised floats, data samples passed through."""

from __future__ import annotations

import pytest
import torch
from open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD

from clipadapt.tasks import ClipDataPreprocessor


def test_normalises_like_clip(images):
    pre = ClipDataPreprocessor()
    out = pre({"inputs": images, "data_samples": {"label": torch.tensor([1, 2, 3]), "img_path": ["a", "b", "c"]}})
    mean = torch.tensor(OPENAI_DATASET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(OPENAI_DATASET_STD).view(1, 3, 1, 1)
    expected = (images.float() / 255 - mean) / std
    assert out["inputs"].dtype == torch.float32
    torch.testing.assert_close(out["inputs"], expected, atol=1e-5, rtol=1e-5)
    assert out["data_samples"]["img_path"] == ["a", "b", "c"]
    assert out["data_samples"]["label"].tolist() == [1, 2, 3]


def test_list_of_images_and_dtype(images):
    out = ClipDataPreprocessor(dtype="bfloat16")({"inputs": list(images), "data_samples": None})
    assert out["inputs"].shape == (3, 3, 64, 64) and out["inputs"].dtype == torch.bfloat16


def test_custom_mean_std():
    x = torch.full((1, 3, 2, 2), 255, dtype=torch.uint8)
    out = ClipDataPreprocessor(mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))({"inputs": x})
    torch.testing.assert_close(out["inputs"], torch.ones(1, 3, 2, 2))


def test_bad_inputs_are_named():
    pre = ClipDataPreprocessor()
    with pytest.raises(ValueError, match="differ in size"):
        pre({"inputs": [torch.zeros(3, 8, 8, dtype=torch.uint8), torch.zeros(3, 4, 4, dtype=torch.uint8)]})
    with pytest.raises(TypeError, match="uint8"):
        pre({"inputs": torch.zeros(1, 3, 4, 4)})
    with pytest.raises(ValueError, match="dtype"):
        ClipDataPreprocessor(dtype="int8")
