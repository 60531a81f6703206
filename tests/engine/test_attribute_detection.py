"""Detection files of the synthetic world with colour categories (the open-vocabulary configs' data)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from clipadapt.datasets.synthetic import ensure_synthetic_world
from clipadapt.engine.attribute_detection import write_attribute_detection
from clipadapt.engine.prepare import resolve_uri

WORLD = dict(
    colours=["red", "blue", "green"],
    shapes=["circle", "square"],
    per_class_train=1,
    per_class_val=1,
    per_class_test=1,
    scenes_train=6,
    scenes_val=2,
    scenes_test=3,
    max_objects=3,
)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return ensure_synthetic_world(tmp_path_factory.mktemp("attr") / "world", progress=False, workers=1, **WORLD)


def test_colour_categories_keep_the_boxes_and_split_base_novel(world):
    shape = json.loads((world / "detection_train.json").read_text())
    colour = json.loads(write_attribute_detection(world, "colour", "train").read_text())
    assert [(c["name"], c["split"]) for c in colour["categories"]] == [
        ("red", "base"),  # colour order of the vocabulary (COLOURS), the last third novel
        ("green", "base"),
        ("blue", "novel"),
    ]
    names = {c["id"]: c["name"] for c in colour["categories"]}
    assert colour["images"] == shape["images"]
    assert len(colour["annotations"]) == len(shape["annotations"])
    for a, b in zip(shape["annotations"], colour["annotations"], strict=True):
        assert a["bbox"] == b["bbox"] and a["image_id"] == b["image_id"]
        assert names[b["category_id"]] == a["attributes"]["colour"]


def test_train_base_keeps_only_base_colours_and_uri_resolves(world, monkeypatch):
    monkeypatch.setenv("CLIPADAPT_DATA", str(world))
    path = resolve_uri("synthetic://detection_colour_train_base.json", WORLD)
    data = json.loads(Path(path).read_text())
    full = json.loads(write_attribute_detection(world, "colour", "train").read_text())
    base = {c["id"] for c in data["categories"] if c["split"] == "base"}
    assert data["annotations"] and {a["category_id"] for a in data["annotations"]} <= base
    assert len(data["annotations"]) == sum(a["category_id"] in base for a in full["annotations"])


def test_unknown_attribute_is_refused(world):
    with pytest.raises(ValueError, match="'size'"):
        write_attribute_detection(world, "size", "train")
