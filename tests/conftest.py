"""Shared fixtures: open_clip reference models with the same random weights as ours."""

from __future__ import annotations

import json
from pathlib import Path

import open_clip
import pytest
import torch

import clipadapt
from clipadapt.models.config import load_model_config

OWN_CONFIGS = Path(clipadapt.__file__).parent / "model_configs"


def open_clip_model(name: str) -> torch.nn.Module:
    """open_clip's model for a zoo name or one of clipadapt's own JSON configs, random weights, eval."""
    torch.manual_seed(0)
    own = OWN_CONFIGS / f"{name}.json"
    if own.is_file():
        cfg = json.loads(own.read_text())
        model = open_clip.model.CLIP(**cfg)
    else:
        model = open_clip.create_model(name, pretrained=None)
    return model.eval()


def save_state(model: torch.nn.Module, path: Path) -> Path:
    torch.save(model.state_dict(), path)
    return path


@pytest.fixture
def tiny_pair(tmp_path: Path) -> tuple[torch.nn.Module, clipadapt.CLIP, Path]:
    """open_clip's tiny model, ours loaded from its weights file, and that file."""
    reference = open_clip_model("tiny-vit")
    path = save_state(reference, tmp_path / "tiny.pt")
    return reference, clipadapt.create_model("tiny-vit", pretrained=path).eval(), path


@pytest.fixture
def tiny_cfg():
    return load_model_config("tiny-vit")


@pytest.fixture
def clipadapt_scope():
    """Build from clipadapt's registries whatever default scope an earlier test (a runner) left."""
    from mmengine.registry import DefaultScope

    with DefaultScope.overwrite_default_scope("clipadapt"):
        yield
