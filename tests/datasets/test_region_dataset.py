"""RegionDataset: the synthetic world's region JSON, boxes that follow the image, bad input named."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch
from PIL import Image

from clipadapt.datasets import RegionDataset, region_collate

SIZE = (48, 64)  # H, W of the hand-made images


def _white_extent(img: torch.Tensor) -> list[float]:
    """xyxy box of the pixels brighter than half."""
    ys, xs = torch.nonzero(img[0] > 127, as_tuple=True)
    return [xs.min().item(), ys.min().item(), xs.max().item() + 1, ys.max().item() + 1]


def _write(root: Path, images: list[dict], annotations: list[dict], extra: dict | None = None) -> Path:
    path = root / "regions.json"
    path.write_text(json.dumps({"images": images, "annotations": annotations, **(extra or {})}))
    return path


def _rect_world(root: Path, rects: list[list[int]]) -> Path:
    """One black image per xywh rectangle, drawn white; one box per image with the phrase 'box <i>'."""
    images, annotations = [], []
    for i, (x, y, w, h) in enumerate(rects):
        pixels = torch.zeros(*SIZE, 3, dtype=torch.uint8)
        pixels[y : y + h, x : x + w] = 255
        Image.fromarray(pixels.numpy()).save(root / f"{i}.png")
        images.append({"id": i, "file_name": f"{i}.png", "width": SIZE[1], "height": SIZE[0]})
        annotations.append({"id": 10 + i, "image_id": i, "bbox": [x, y, w, h], "phrase": f"box {i}"})
    return _write(root, images, annotations)


def test_reads_the_synthetic_worlds_region_file(tiny_world: Path, tiny_params: dict) -> None:
    dataset = RegionDataset(
        str(tiny_world), "regions_val.json", captions_file="captions_val.csv", category_template="{colour} {shape}"
    )
    raw = json.loads((tiny_world / "regions_val.json").read_text())
    assert len(dataset) == tiny_params["scenes_val"]
    assert dataset.metainfo["classes"] == sorted(
        {f"{a['attributes']['colour']} {a['attributes']['shape']}" for a in raw["annotations"]}
    )
    sample = dataset[0]["data_samples"]
    anns = [a for a in raw["annotations"] if a["image_id"] == raw["images"][0]["id"]]
    assert sample["phrases"] == [a["phrase"] for a in anns]
    assert sample["hard_negatives"] == [a["hard_negatives"] for a in anns]
    xyxy = [[x, y, x + w, y + h] for x, y, w, h in (a["bbox"] for a in anns)]
    assert sample["boxes"].tolist() == xyxy  # no transform: the JSON's pixels, as x1, y1, x2, y2
    names = [dataset.metainfo["classes"][i] for i in sample["box_labels"]]
    assert names == [f"{a['attributes']['colour']} {a['attributes']['shape']}" for a in anns]
    with open(tiny_world / "captions_val.csv", newline="") as fh:
        row = next(r for r in csv.DictReader(fh) if r["filepath"] == raw["images"][0]["file_name"])
    assert (sample["caption"], sample["long_caption"]) == (row["title"], row["long_title"])
    assert sample["index"] == 0


@pytest.mark.parametrize(
    "pipeline",
    [
        [dict(type="Resize", size=(24, 40))],
        [dict(type="Resize", size=32)],
        [dict(type="CenterCrop", size=(40, 40))],
        [dict(type="RandomHorizontalFlip", prob=1.0)],
        [dict(type="RandomResizedCrop", size=32, scale=(0.5, 1.0))],
        [dict(type="RandomHorizontalFlip", prob=1.0), dict(type="Resize", size=(96, 128))],
    ],
    ids=["resize", "resize-short-side", "center-crop", "flip", "random-resized-crop", "flip-then-upscale"],
)
def test_boxes_follow_the_image_through_every_transform(tmp_path: Path, pipeline: list[dict]) -> None:
    rects = [[4, 6, 20, 14], [30, 20, 16, 24], [10, 12, 40, 30], [40, 2, 12, 10]]
    dataset = RegionDataset(
        str(tmp_path), str(_rect_world(tmp_path, rects)), pipeline=[dict(type="LoadImage"), *pipeline]
    )
    torch.manual_seed(0)
    seen = 0
    for i in range(len(dataset)):
        for _ in range(3):  # random transforms draw new parameters each time
            sample = dataset[i]
            img, samples = sample["inputs"], sample["data_samples"]
            if samples["boxes"].shape[0] == 0:  # cropped away: the phrase went with it
                assert samples["phrases"] == []
                continue
            assert samples["phrases"] == [f"box {i}"]
            # Interpolation blurs the edges by at most a pixel.
            assert samples["boxes"][0].tolist() == pytest.approx(_white_extent(img), abs=1.01)
            seen += 1
    assert seen >= 8


def test_boxes_cropped_out_are_dropped_with_their_phrases(tmp_path: Path) -> None:
    pixels = torch.zeros(*SIZE, 3, dtype=torch.uint8)
    Image.fromarray(pixels.numpy()).save(tmp_path / "a.png")
    path = _write(
        tmp_path,
        [{"id": 1, "file_name": "a.png", "width": SIZE[1], "height": SIZE[0]}],
        [
            {"id": 1, "image_id": 1, "bbox": [0, 0, 6, 6], "phrase": "corner", "hard_negatives": ["x"]},
            {"id": 2, "image_id": 1, "bbox": [30, 20, 20, 20], "phrase": "centre", "hard_negatives": ["y", "z"]},
        ],
    )
    dataset = RegionDataset(
        str(tmp_path), str(path), pipeline=[dict(type="LoadImage"), dict(type="CenterCrop", size=24)]
    )
    samples = dataset[0]["data_samples"]
    assert samples["phrases"] == ["centre"] and samples["hard_negatives"] == [["y", "z"]]
    # The crop starts at (20, 12): x 30..50 -> 10..30, y 20..40 -> 8..28, clamped to the 24 x 24 image.
    assert samples["boxes"].tolist() == [[10.0, 8.0, 24.0, 24.0]]


def test_max_boxes_keeps_aligned_random_subsets(tmp_path: Path) -> None:
    Image.fromarray(torch.zeros(*SIZE, 3, dtype=torch.uint8).numpy()).save(tmp_path / "a.png")
    anns = [
        {"id": k, "image_id": 1, "bbox": [k, k, 5, 5], "phrase": f"p{k}", "hard_negatives": [f"n{k}"]} for k in range(9)
    ]
    path = _write(tmp_path, [{"id": 1, "file_name": "a.png", "width": SIZE[1], "height": SIZE[0]}], anns)
    dataset = RegionDataset(str(tmp_path), str(path), max_boxes=4)
    subsets = set()
    for _ in range(5):
        s = dataset[0]["data_samples"]
        assert len(s["phrases"]) == 4
        for box, phrase, negs in zip(s["boxes"].tolist(), s["phrases"], s["hard_negatives"], strict=True):
            k = int(phrase[1:])
            assert box[:2] == [k, k] and negs == [f"n{k}"]
        subsets.add(tuple(s["phrases"]))
    assert len(subsets) > 1


def test_collate_keeps_per_image_box_lists(tmp_path: Path) -> None:
    dataset = RegionDataset(str(tmp_path), str(_rect_world(tmp_path, [[1, 1, 5, 5], [2, 2, 8, 8]])))
    batch = region_collate([dataset[0], dataset[1]])
    assert batch["inputs"].shape == (2, 3, *SIZE) and batch["inputs"].dtype == torch.uint8
    assert [b.shape for b in batch["data_samples"]["boxes"]] == [(1, 4), (1, 4)]
    assert batch["data_samples"]["phrases"] == [["box 0"], ["box 1"]]
    assert batch["data_samples"]["index"].tolist() == [0, 1]


# ------------------------------------------------------------------------------------ bad input
def _one_image(tmp_path: Path, annotations: list[dict], **kwargs) -> RegionDataset:
    Image.fromarray(torch.zeros(*SIZE, 3, dtype=torch.uint8).numpy()).save(tmp_path / "a.png")
    images = [
        {"id": 1, "file_name": "a.png", "width": SIZE[1], "height": SIZE[0]},
        {"id": 2, "file_name": "a.png", "width": SIZE[1], "height": SIZE[0]},
    ]
    return RegionDataset(str(tmp_path), str(_write(tmp_path, images, annotations)), **kwargs)


def test_unparsable_json_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "bad.json").write_text('{"images": [')
    with pytest.raises(ValueError, match=r"region file .*bad.json is not valid JSON"):
        RegionDataset(str(tmp_path), "bad.json")
    (tmp_path / "nokey.json").write_text('{"images": []}')
    with pytest.raises(KeyError, match=r"nokey.json has no list 'annotations'"):
        RegionDataset(str(tmp_path), "nokey.json")
    with pytest.raises(FileNotFoundError, match=r"region annotation file not found: .*missing.json"):
        RegionDataset(str(tmp_path), "missing.json")


def test_a_box_without_a_phrase_is_an_error_naming_file_record_and_key(tmp_path: Path) -> None:
    with pytest.raises(KeyError, match=r"regions.json: annotations\[1\] \(id 8\) has no 'phrase'"):
        _one_image(
            tmp_path,
            [
                {"id": 7, "image_id": 1, "bbox": [0, 0, 4, 4], "phrase": "a"},
                {"id": 8, "image_id": 1, "bbox": [0, 0, 4, 4]},
            ],
        )
    with pytest.raises(ValueError, match=r"annotations\[0\] \(id 7\) has an empty 'phrase'"):
        _one_image(tmp_path, [{"id": 7, "image_id": 1, "bbox": [0, 0, 4, 4], "phrase": "  "}])


def test_other_bad_records_are_named(tmp_path: Path) -> None:
    with pytest.raises(KeyError, match=r"annotations\[0\] \(id 7\) refers to image_id 9"):
        _one_image(tmp_path, [{"id": 7, "image_id": 9, "bbox": [0, 0, 4, 4], "phrase": "a"}])
    with pytest.raises(ValueError, match=r"annotations\[0\] \(id 7\)\['bbox'\] = \[0, 0, 4\] is not \[x, y, w, h\]"):
        _one_image(tmp_path, [{"id": 7, "image_id": 1, "bbox": [0, 0, 4], "phrase": "a"}])
    with pytest.raises(ValueError, match=r"\['hard_negatives'\] must be a list of non-empty strings"):
        _one_image(tmp_path, [{"id": 7, "image_id": 1, "bbox": [0, 0, 4, 4], "phrase": "a", "hard_negatives": "b"}])
    with pytest.raises(KeyError, match=r"\['attributes'\] lacks 'colour' for category_template"):
        _one_image(
            tmp_path,
            [{"id": 7, "image_id": 1, "bbox": [0, 0, 4, 4], "phrase": "a", "attributes": {"shape": "star"}}],
            category_template="{colour} {shape}",
        )


def test_boxes_outside_are_clipped_and_zero_area_boxes_dropped_with_a_count(tmp_path: Path) -> None:
    anns = [
        {"id": 1, "image_id": 1, "bbox": [-10, 40, 30, 20], "phrase": "clipped"},  # leaves the image left and below
        {"id": 2, "image_id": 1, "bbox": [5, 5, 0, 10], "phrase": "flat"},
        {"id": 3, "image_id": 1, "bbox": [70, 5, 10, 10], "phrase": "outside"},  # right of the 64 px image
    ]
    with pytest.warns(UserWarning, match=r"dropped 2 box\(es\) of zero area .*annotation ids \[2, 3\]"):
        dataset = _one_image(tmp_path, anns)
    assert len(dataset) == 2  # image 2 has no box and is kept
    first, second = dataset[0]["data_samples"], dataset[1]["data_samples"]
    assert first["phrases"] == ["clipped"] and first["boxes"].tolist() == [[0.0, 40.0, 20.0, 48.0]]
    assert second["boxes"].shape == (0, 4) and second["phrases"] == [] and second["box_labels"].shape == (0,)
    with pytest.warns(UserWarning, match=r"dropped 1 image\(s\) without boxes"):
        assert len(_one_image(tmp_path, anns[:1], filter_empty=True)) == 1
