"""A tiny synthetic world shared by the dataset tests (generated once per session, in well under a second)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from clipadapt.datasets.synthetic import ensure_synthetic_world

# 4 classes (base: blue circle, red star; novel: blue star, red circle) on two domains; 3-4 objects per scene so
# that long captions pass 77 tokens.
TINY = {
    "seed": 7,
    "image_size": 32,
    "scene_size": 64,
    "colours": ["red", "blue"],
    "shapes": ["circle", "star"],
    "domains": ["plain", "dark"],
    "scene_domains": ["plain", "noise"],
    "per_class_train": 4,
    "per_class_val": 2,
    "per_class_test": 3,
    "scenes_train": 12,
    "scenes_val": 3,
    "scenes_test": 3,
    "min_objects": 3,
    "max_objects": 4,
}
TINY_CLASSES = ["blue circle", "red star", "blue star", "red circle"]


def _make_world(root: Path, **overrides: Any) -> Path:
    return ensure_synthetic_world(root, workers=1, progress=False, **{**TINY, **overrides})


@pytest.fixture(scope="session")
def make_world() -> Callable[..., Path]:
    """``make_world(root, **overrides)``: generate the tiny world (with overrides) under ``root``."""
    return _make_world


@pytest.fixture(scope="session")
def tiny_params() -> dict[str, Any]:
    """The tiny world's parameters, plus ``class_names``: its class names in label order."""
    return {**TINY, "class_names": TINY_CLASSES}


@pytest.fixture(scope="session")
def tiny_world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Root of the tiny world; tests must not modify it (copy it first)."""
    return _make_world(tmp_path_factory.mktemp("tiny_world"))
