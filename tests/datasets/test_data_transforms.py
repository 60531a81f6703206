"""Transforms: uint8 images, boxes moved with the image, pipeline building."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torchvision import tv_tensors

from clipadapt.datasets import (
    CenterCrop,
    LoadImage,
    RandomHorizontalFlip,
    RandomResizedCrop,
    Resize,
    build_pipeline,
    to_boxes,
)
from clipadapt.registry import TRANSFORMS


def _square_image(x: int, y: int, w: int, h: int, size: tuple[int, int] = (40, 60)) -> dict:
    """A black image with one white rectangle, and its XYWH box."""
    img = torch.zeros(3, *size, dtype=torch.uint8)
    img[:, y : y + h, x : x + w] = 255
    return {"img": tv_tensors.Image(img), "gt_bboxes": to_boxes([[x, y, w, h]], size)}


def _white_extent(img: torch.Tensor) -> list[float]:
    """XYWH box of the pixels brighter than half."""
    ys, xs = torch.nonzero(img[0] > 127, as_tuple=True)
    return [
        xs.min().item(),
        ys.min().item(),
        xs.max().item() - xs.min().item() + 1,
        ys.max().item() - ys.min().item() + 1,
    ]


def test_flip_moves_the_box() -> None:
    results = RandomHorizontalFlip(prob=1.0)(_square_image(5, 10, 12, 8))
    box = results["gt_bboxes"]
    assert box.tolist() == [[60 - 5 - 12, 10, 12, 8]]  # x' = W - x - w
    assert box.format == tv_tensors.BoundingBoxFormat.XYWH
    assert _white_extent(results["img"]) == box[0].tolist()
    unchanged = RandomHorizontalFlip(prob=0.0)(_square_image(5, 10, 12, 8))
    assert unchanged["gt_bboxes"].tolist() == [[5, 10, 12, 8]]


def test_random_resized_crop_keeps_boxes_aligned() -> None:
    torch.manual_seed(0)
    crop = RandomResizedCrop(size=32, scale=(0.6, 1.0))
    for _ in range(10):
        results = crop(_square_image(20, 12, 14, 10))
        assert results["img"].shape == (3, 32, 32) and results["img"].dtype == torch.uint8
        assert results["img_shape"] == (32, 32)
        box = results["gt_bboxes"][0].tolist()
        if (results["img"][0] > 127).any() and box[2] > 1 and box[3] > 1:
            extent = _white_extent(results["img"])
            assert all(abs(a - b) <= 1.5 for a, b in zip(extent, box, strict=True)), (extent, box)


def test_resize_short_side_and_center_crop() -> None:
    results = Resize(size=20)(_square_image(0, 0, 30, 20))  # 40 x 60 -> 20 x 30
    assert results["img"].shape == (3, 20, 30) and results["img"].dtype == torch.uint8
    assert results["gt_bboxes"].tolist() == [[0, 0, 15, 10]]
    results = CenterCrop(size=20)(results)
    assert results["img"].shape == (3, 20, 20)
    assert results["gt_bboxes"].tolist() == [[0, 0, 10, 10]]  # shifted by 5 and clamped to the crop


def test_load_image_on_the_world(tiny_world: Path) -> None:
    """A scene with its regions: a flip keeps every region box on its object."""
    data = json.loads((tiny_world / "regions_train.json").read_text())
    image = data["images"][0]
    anns = [a for a in data["annotations"] if a["image_id"] == image["id"]]
    results = LoadImage()({"img_path": str(tiny_world / image["file_name"])})
    assert results["img"].shape == (3, image["height"], image["width"]) and results["img"].dtype == torch.uint8
    original = results["img"].clone()
    results["gt_bboxes"] = to_boxes([a["bbox"] for a in anns], results["img_shape"])
    flipped = RandomHorizontalFlip(prob=1.0)(results)
    for ann, box in zip(anns, flipped["gt_bboxes"].tolist(), strict=True):
        x, y, w, h = ann["bbox"]
        xf, yf, wf, hf = (int(v) for v in box)
        assert (xf, yf, wf, hf) == (image["width"] - x - w, y, w, h)
        assert torch.equal(flipped["img"][:, yf : yf + hf, xf : xf + wf], original[:, y : y + h, x : x + w].flip(-1))


def test_build_pipeline() -> None:
    steps = build_pipeline(
        [dict(type="LoadImage"), dict(type="RandomResizedCrop", size=24, scale=[0.5, 1.0]), lambda results: results]
    )
    assert isinstance(steps[0], LoadImage) and isinstance(steps[1], RandomResizedCrop) and callable(steps[2])
    assert isinstance(build_pipeline(None)[0], LoadImage)
    assert TRANSFORMS.get("RandomHorizontalFlip") is RandomHorizontalFlip
    with pytest.raises(KeyError, match=r"unknown transform 'NoSuchTransform'"):
        build_pipeline([dict(type="NoSuchTransform")])
    with pytest.raises(TypeError, match=r"config dict or a callable"):
        build_pipeline([3])
    with pytest.raises(KeyError, match=r"put LoadImage first"):
        Resize(8)({"img_path": "x.png"})
    with pytest.raises(TypeError, match=r"must be tv_tensors.BoundingBoxes"):
        RandomHorizontalFlip()({"img": torch.zeros(3, 4, 4, dtype=torch.uint8), "gt_bboxes": [[0, 0, 1, 1]]})


def test_bicubic_interpolation_matches_torchvision_and_bad_names_are_refused() -> None:
    from torchvision.transforms.v2 import functional as TF

    img = torch.randint(0, 256, (3, 40, 60), dtype=torch.uint8)
    out = Resize(size=24, interpolation="bicubic")({"img": tv_tensors.Image(img)})["img"]
    expected = TF.resize(img, [24, 36], interpolation=TF.InterpolationMode.BICUBIC, antialias=True)
    assert torch.equal(out, expected)
    assert not torch.equal(out, Resize(size=24)({"img": tv_tensors.Image(img)})["img"])  # bilinear differs
    with pytest.raises(ValueError, match="interpolation must be one of.*'nearest-ish'"):
        RandomResizedCrop(size=16, interpolation="nearest-ish")
