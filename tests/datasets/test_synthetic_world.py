"""The synthetic world: layout, formats, language, boxes, determinism, idempotence, CLI."""

from __future__ import annotations

import csv
import json
import os
import shutil
from pathlib import Path

import pytest
from PIL import Image

from clipadapt.datasets.synthetic import WorldConfig, ensure_synthetic_world, load_manifest
from clipadapt.datasets.synthetic.scene import SIZES, TEXTURES

SPLITS = ("train", "val", "test")


def _all_files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file() and p.name[0] != "."
    }


def test_layout_and_manifest(tiny_world: Path, tiny_params: dict) -> None:
    manifest = load_manifest(tiny_world)
    assert manifest["seed"] == tiny_params["seed"]
    assert manifest["params"]["per_class_train"] == tiny_params["per_class_train"]
    assert manifest["classes"] == tiny_params["class_names"]
    for rel in manifest["files"]:
        assert (tiny_world / rel).is_file(), rel
    for split in SPLITS:
        for prefix in ("captions", "regions", "detection"):
            assert (tiny_world / f"{prefix}_{split}.{'csv' if prefix == 'captions' else 'json'}").is_file()
    n = len(tiny_params["class_names"])
    counts = manifest["counts"]["classification"]["dark"]
    assert counts == {"train": 4 * n, "val": 2 * n, "test": 3 * n}
    assert manifest["counts"]["scenes"]["train"]["images"] == 12


def test_coop_split_files(tiny_world: Path, tiny_params: dict) -> None:
    names = tiny_params["class_names"]
    for domain in tiny_params["domains"]:
        split = json.loads((tiny_world / f"split_synthetic_{domain}.json").read_text())
        assert sorted(split) == ["test", "train", "val"]
        seen = set()
        for rel, label, name in split["train"] + split["val"] + split["test"]:
            assert names[label] == name  # labels follow the sorted class names
            assert rel.startswith(f"images/{domain}/{name.replace(' ', '_')}/")
            assert rel not in seen
            seen.add(rel)
            with Image.open(tiny_world / rel) as image:
                assert image.size == (32, 32) and image.mode == "RGB"
        assert len(split["val"]) == 2 * len(names)


def test_captions_csv_and_long_captions(tiny_world: Path) -> None:
    from open_clip.tokenizer import SimpleTokenizer

    tokenizer = SimpleTokenizer()
    with open(tiny_world / "captions_train.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == ["filepath", "title", "long_title"]
    assert len(rows) == 12
    lengths = []
    for row in rows:
        assert (tiny_world / row["filepath"]).is_file()
        assert row["title"].startswith(("a ", "an ")) and " and " in row["title"]
        assert len(row["long_title"]) > len(row["title"])
        lengths.append(len(tokenizer.encode(row["long_title"])) + 2)  # + start and end tokens
    assert max(lengths) > 77, lengths


def test_regions_boxes_and_hard_negatives(tiny_world: Path, tiny_params: dict) -> None:
    data = json.loads((tiny_world / "regions_train.json").read_text())
    images = {im["id"]: im for im in data["images"]}
    assert data["annotations"]
    for ann in data["annotations"]:
        im = images[ann["image_id"]]
        x, y, w, h = ann["bbox"]
        assert w > 0 and h > 0 and x >= 0 and y >= 0
        assert x + w <= im["width"] and y + h <= im["height"]
        positive = ann["phrase"].split()
        assert len(positive) == 4 and positive[0] in SIZES and positive[1] in TEXTURES
        negatives = ann["hard_negatives"]
        assert 3 <= len(negatives) <= 5 and len(set(negatives)) == len(negatives)
        for neg in negatives:
            assert neg != ann["phrase"]
            assert sum(a != b for a, b in zip(neg.split(), positive, strict=True)) == 1  # one attribute swapped
    # The phrases of a scene name distinct objects.
    by_image: dict[int, list[str]] = {}
    for ann in data["annotations"]:
        by_image.setdefault(ann["image_id"], []).append(ann["phrase"])
    assert all(len(set(p)) == len(p) for p in by_image.values())


def test_box_matches_drawn_object(tiny_world: Path) -> None:
    """The box is tight: the object's colour fills its box's centre, and nothing of it lies far outside."""
    from clipadapt.datasets.synthetic.vocab import COLOURS

    data = json.loads((tiny_world / "regions_val.json").read_text())
    ann = next(
        a for a in data["annotations"] if a["attributes"]["texture"] == "plain" and a["attributes"]["shape"] == "circle"
    )
    im = next(i for i in data["images"] if i["id"] == ann["image_id"])
    with Image.open(tiny_world / im["file_name"]) as image:
        pixels = image.load()
        x, y, w, h = ann["bbox"]
        r, g, b = pixels[x + w // 2, y + h // 2]
        ref = COLOURS[ann["attributes"]["colour"]]
        assert max(abs(r - ref[0]), abs(g - ref[1]), abs(b - ref[2])) <= 20


def test_detection_coco(tiny_world: Path) -> None:
    data = json.loads((tiny_world / "detection_train.json").read_text())
    cats = data["categories"]
    assert [c["name"] for c in cats] == ["circle", "star"]
    assert [c["split"] for c in cats] == ["base", "novel"]  # the last round(2 / 3) = 1 is novel
    assert [c["id"] for c in cats] == [1, 2]
    image_ids = {im["id"] for im in data["images"]}
    ann_ids = [a["id"] for a in data["annotations"]]
    assert len(set(ann_ids)) == len(ann_ids)
    for ann in data["annotations"]:
        assert ann["image_id"] in image_ids and ann["category_id"] in (1, 2)
        assert ann["iscrowd"] == 0 and ann["area"] == ann["bbox"][2] * ann["bbox"][3]
    base = json.loads((tiny_world / "detection_train_base.json").read_text())
    assert base["annotations"] and all(a["category_id"] == 1 for a in base["annotations"])
    assert base["images"] == data["images"]


def test_detection_split_default_world() -> None:
    cats = WorldConfig().detection_categories
    assert [s for s, k in cats if k == "novel"] == ["ring", "diamond", "hexagon"]
    assert len(WorldConfig().class_names) == 64


def test_determinism(tmp_path: Path, tiny_world: Path, make_world) -> None:
    same = make_world(tmp_path / "same")
    assert _all_files(same) == _all_files(tiny_world)
    # The output does not depend on the number of worker processes.
    forked = ensure_synthetic_world(
        tmp_path / "forked", workers=2, progress=False, **load_manifest(tiny_world)["params"]
    )
    assert _all_files(forked) == _all_files(tiny_world)
    other = make_world(tmp_path / "other", seed=8)
    a, b = _all_files(other), _all_files(tiny_world)
    assert a.keys() == b.keys()
    changed = [k for k in a if a[k] != b[k]]
    assert any(k.endswith(".png") for k in changed) and "captions_train.csv" in changed


def test_idempotent_and_regenerates_on_change(tmp_path: Path, tiny_world: Path, make_world) -> None:
    root = tmp_path / "world"
    shutil.copytree(tiny_world, root)
    manifest = root / "manifest.json"
    stamp = os.stat(root / "captions_train.csv").st_mtime_ns
    make_world(root)  # same parameters: nothing is rewritten
    assert os.stat(root / "captions_train.csv").st_mtime_ns == stamp
    make_world(root, domains=["plain"], scenes_train=5)
    assert json.loads(manifest.read_text())["params"]["domains"] == ["plain"]
    assert not (root / "images" / "dark").exists() and not (root / "split_synthetic_dark.json").exists()
    assert len(list((root / "images" / "scenes" / "train").iterdir())) == 5
    (root / "regions_val.json").unlink()  # a listed file gone: generated again
    make_world(root, domains=["plain"], scenes_train=5)
    assert (root / "regions_val.json").is_file()
    assert not list(root.rglob(".*.tmp"))


def test_invalid_parameters(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"unknown colours"):
        WorldConfig(colours=("red", "mauve"))
    with pytest.raises(ValueError, match=r"not '<colour> <shape>'"):
        WorldConfig(classes=("red",))
    with pytest.raises(TypeError, match=r"unknown synthetic world parameters"):
        ensure_synthetic_world(tmp_path, per_class=3)
    with pytest.raises(ValueError, match=r"max_objects=4 exceeds the 2 classes"):
        WorldConfig(classes=("red circle", "blue star"))
    assert WorldConfig(classes=("red circle", "blue star"), max_objects=2).class_names == ["blue star", "red circle"]


def test_cli(tmp_path: Path, tiny_params: dict, capsys: pytest.CaptureFixture) -> None:
    from clipadapt.engine.paths import load_tool

    module = load_tool("make_synthetic")
    argv = [
        str(tmp_path / "cli"),
        "--classes",
        "red_circle",
        "blue star",
        "--domains",
        "dark",
        "--per-class-train",
        "2",
        "--per-class-val",
        "1",
        "--per-class-test",
        "1",
        "--scenes-train",
        "3",
        "--scenes-val",
        "1",
        "--scenes-test",
        "1",
        "--max-objects",
        "2",
        "--workers",
        "1",
        "--no-progress",
    ]
    module.main(argv)
    out = capsys.readouterr().out
    assert "generated" in out and "split_synthetic_dark.json" in out
    assert load_manifest(tmp_path / "cli")["classes"] == ["blue star", "red circle"]
    module.main(argv)
    assert "up to date" in capsys.readouterr().out


def test_warm_light_casts_every_pixel(tmp_path: Path) -> None:
    """The "warm" domain: every pixel (object included) under the light's cast; other domains unlit."""
    import numpy as np

    from clipadapt.datasets.synthetic.draw import LIGHT_CASTS, apply_light

    image = Image.fromarray(np.array([[[200, 100, 50], [255, 255, 255]]], dtype=np.uint8))
    lit = np.asarray(apply_light("warm", image), dtype=np.float64)
    assert lit.tolist() == np.rint(np.asarray(image, dtype=np.float64) * LIGHT_CASTS["warm"]).tolist()
    assert apply_light("plain", image) is image
    root = ensure_synthetic_world(
        tmp_path / "w", classes=["blue circle"], domains=["plain", "warm"], per_class_train=4, per_class_val=1,
        per_class_test=1, scenes_train=0, scenes_val=0, scenes_test=0, progress=False, workers=1,
    )  # fmt: skip
    means = {}
    for domain in ("plain", "warm"):
        entries = json.loads((root / f"split_synthetic_{domain}.json").read_text())["train"]
        pixels = np.stack([np.asarray(Image.open(root / rel), dtype=np.float64) for rel, _, _ in entries])
        means[domain] = pixels.reshape(-1, 3).mean(axis=0)
    # blue objects on light backgrounds: under the warm light blue falls far more than red
    assert means["warm"][2] / means["warm"][0] < 0.6 < means["plain"][2] / means["plain"][0]


def test_classification_objects_sit_near_the_centre() -> None:
    """object_jitter bounds where a classification image's object sits; None places it anywhere it fits."""
    import numpy as np

    from clipadapt.datasets.synthetic.scene import sample_single

    def centres(jitter: float | None) -> np.ndarray:
        rng = np.random.default_rng(0)
        objs = [sample_single("red", "circle", 64, rng, jitter) for _ in range(400)]
        return np.array([(o.drawn.cx, o.drawn.cy) for o in objs])

    near = centres(0.0625)
    assert np.abs(near - 32).max() <= 4.0
    anywhere = centres(None)
    assert np.abs(anywhere - 32).max() > 8.0  # the old placement: anywhere the object fits
    assert np.all(anywhere - 1 >= 0) and np.all(anywhere + 1 <= 64)
    with pytest.raises(ValueError, match="object_jitter"):
        WorldConfig(object_jitter=0.7)
