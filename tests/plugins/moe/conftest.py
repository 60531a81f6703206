"""Module-scoped tiny CLIP weights: the MoE tests build many models from one file."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import clipadapt
from tests.conftest import open_clip_model, save_state


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory) -> Path:
    """open_clip's tiny model with random weights, saved once per test module."""
    return save_state(open_clip_model("tiny-vit"), tmp_path_factory.mktemp("moe") / "tiny.pt")


@pytest.fixture(scope="module")
def tiny_base(tiny_weights: Path) -> clipadapt.CLIP:
    """The dense base CLIP loaded from ``tiny_weights`` (eval mode; do not modify)."""
    torch.manual_seed(0)
    return clipadapt.create_model("tiny-vit", pretrained=tiny_weights).eval()
