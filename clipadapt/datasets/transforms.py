"""Data transforms on ``torchvision.transforms.v2``, registered in ``TRANSFORMS``.

A transform takes and returns the sample's ``results`` dict (MMEngine's convention):

- ``results['img_path']``: the file that :class:`LoadImage` reads;
- ``results['img']``: a ``tv_tensors.Image``, uint8 ``[3, H, W]`` (RGB), set by :class:`LoadImage`;
- ``results['gt_bboxes']`` (optional): a ``tv_tensors.BoundingBoxes`` of the same image. Geometric
  transforms move the boxes with the image, drawing one set of random parameters for both.

Images stay uint8: normalisation happens later, on the device, in the data preprocessor.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from PIL import Image
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

from clipadapt.registry import TRANSFORMS

__all__ = [
    "CenterCrop",
    "LoadImage",
    "RandomHorizontalFlip",
    "RandomResizedCrop",
    "Resize",
    "SanitizeBoxes",
    "V2Transform",
    "build_pipeline",
    "sanitize_boxes",
    "to_boxes",
]

BOX_KEY = "gt_bboxes"


def to_boxes(boxes: Any, canvas_size: tuple[int, int], box_format: str = "XYWH") -> tv_tensors.BoundingBoxes:
    """Boxes (``[N, 4]`` nested lists, array or tensor) as ``BoundingBoxes`` that transforms move.

    Args:
        boxes: ``[N, 4]`` boxes in pixels.
        canvas_size: ``(H, W)`` of the image the boxes belong to.
        box_format: ``"XYWH"`` (COCO, the region and detection JSON) or ``"XYXY"``.
    """
    data = torch.as_tensor(boxes, dtype=torch.float32).reshape(-1, 4)
    return tv_tensors.BoundingBoxes(data, format=box_format, canvas_size=tuple(canvas_size))


@TRANSFORMS.register_module()
class LoadImage:
    """Read ``results['img_path']`` into ``results['img']``: an RGB uint8 ``tv_tensors.Image`` ``[3, H, W]``.

    A missing file raises ``FileNotFoundError`` and an unreadable one (corrupt, truncated, not an
    image) raises ``OSError``, both naming the file: a broken dataset fails loudly instead of being
    skipped.
    """

    def __call__(self, results: dict) -> dict:
        """Set ``img``, ``ori_shape`` and ``img_shape`` from the file at ``img_path``."""
        path = results.get("img_path")
        if path is None:
            raise KeyError(f"LoadImage needs results['img_path']; got keys {sorted(results)}")
        try:
            with Image.open(path) as image:
                image = image.convert("RGB")  # forces the full decode, so truncation surfaces here
        except FileNotFoundError as err:
            raise FileNotFoundError(f"image file not found: {path}") from err
        except Exception as err:  # PIL raises OSError, SyntaxError, ValueError, zlib errors, ...
            raise OSError(f"cannot read image {path}: {err}") from err
        img = tv_tensors.Image(F.pil_to_tensor(image))
        results["img"] = img
        results["ori_shape"] = results["img_shape"] = tuple(img.shape[-2:])
        return results

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class V2Transform:
    """Base of the geometric transforms: applies a ``v2`` transform to the image and its boxes together.

    Args:
        transform: The torchvision v2 transform.
    """

    def __init__(self, transform: v2.Transform) -> None:
        self.transform = transform

    def __call__(self, results: dict) -> dict:
        """Transform ``img`` (and ``gt_bboxes`` when present) with the same random parameters."""
        if "img" not in results:
            raise KeyError(f"{type(self).__name__} needs results['img']; put LoadImage first in the pipeline")
        img = results["img"]
        if not isinstance(img, tv_tensors.Image):
            img = tv_tensors.Image(img)
        boxes = results.get(BOX_KEY)
        if boxes is None:
            img = self.transform(img)
        else:
            if not isinstance(boxes, tv_tensors.BoundingBoxes):
                raise TypeError(
                    f"results['{BOX_KEY}'] must be tv_tensors.BoundingBoxes (see to_boxes), got {type(boxes)}"
                )
            img, boxes = self.transform(img, boxes)
            results[BOX_KEY] = boxes
        results["img"] = img
        results["img_shape"] = tuple(img.shape[-2:])
        return results

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.transform!r})"


INTERPOLATIONS = {"bilinear": v2.InterpolationMode.BILINEAR, "bicubic": v2.InterpolationMode.BICUBIC}


def interpolation_mode(name: str) -> v2.InterpolationMode:
    """The ``v2`` interpolation mode of a config string; an unknown name is an error that lists the known ones."""
    if name not in INTERPOLATIONS:
        raise ValueError(f"interpolation must be one of {sorted(INTERPOLATIONS)}, got {name!r}")
    return INTERPOLATIONS[name]


@TRANSFORMS.register_module()
class RandomResizedCrop(V2Transform):
    """Crop a random area and aspect ratio, then resize to ``size`` (CLIP's training crop).

    Args:
        size: Output size, ``int`` (square) or ``(H, W)``.
        scale: Range of the cropped area as a fraction of the image.
        ratio: Range of the crop's aspect ratio.
        interpolation: ``"bilinear"`` or ``"bicubic"`` (CLIP and CoOp/MaPLe use bicubic).
    """

    def __init__(
        self,
        size: int | Sequence[int],
        scale: Sequence[float] = (0.08, 1.0),
        ratio: Sequence[float] = (3 / 4, 4 / 3),
        interpolation: str = "bilinear",
    ) -> None:
        mode = interpolation_mode(interpolation)
        super().__init__(
            v2.RandomResizedCrop(size, scale=tuple(scale), ratio=tuple(ratio), interpolation=mode, antialias=True)
        )


@TRANSFORMS.register_module()
class Resize(V2Transform):
    """Resize; an ``int`` size sets the shorter side (aspect ratio kept), ``(H, W)`` sets both.

    Args:
        size: Target size.
        max_size: Upper bound of the longer side when ``size`` is an ``int``.
        interpolation: ``"bilinear"`` or ``"bicubic"`` (CLIP's evaluation resize is bicubic).
    """

    def __init__(self, size: int | Sequence[int], max_size: int | None = None, interpolation: str = "bilinear") -> None:
        mode = interpolation_mode(interpolation)
        super().__init__(v2.Resize(size, max_size=max_size, interpolation=mode, antialias=True))


@TRANSFORMS.register_module()
class CenterCrop(V2Transform):
    """Crop the centre to ``size`` (``int`` or ``(H, W)``); CLIP's evaluation crop after :class:`Resize`."""

    def __init__(self, size: int | Sequence[int]) -> None:
        super().__init__(v2.CenterCrop(size))


@TRANSFORMS.register_module()
class RandomHorizontalFlip(V2Transform):
    """Flip left-right with probability ``prob`` (boxes are mirrored with the image).

    Args:
        prob: Flip probability.
    """

    def __init__(self, prob: float = 0.5) -> None:
        super().__init__(v2.RandomHorizontalFlip(p=prob))


def sanitize_boxes(results: dict, min_size: float = 1.0, aligned_keys: Sequence[str] = ()) -> dict:
    """Clamp ``results['gt_bboxes']`` to the image and drop boxes narrower or lower than ``min_size`` pixels.

    Crops move boxes partly or wholly out of the image; torchvision clamps them to the canvas, which
    leaves zero-width boxes behind. The entries of ``aligned_keys`` (per-box lists or tensors, e.g.
    phrases) are filtered with the boxes so that they stay aligned. Boxes keep their format.
    """
    boxes = results.get(BOX_KEY)
    if boxes is None:
        return results
    if not isinstance(boxes, tv_tensors.BoundingBoxes):
        raise TypeError(f"results['{BOX_KEY}'] must be tv_tensors.BoundingBoxes (see to_boxes), got {type(boxes)}")
    clamped = F.clamp_bounding_boxes(boxes)
    xyxy = F.convert_bounding_box_format(clamped, new_format=tv_tensors.BoundingBoxFormat.XYXY)
    keep = ((xyxy[:, 2] - xyxy[:, 0]) >= min_size) & ((xyxy[:, 3] - xyxy[:, 1]) >= min_size)
    results[BOX_KEY] = tv_tensors.wrap(clamped[keep], like=boxes)
    for key in aligned_keys:
        values = results.get(key)
        if values is None:
            continue
        if len(values) != len(keep):
            raise ValueError(f"results[{key!r}] has {len(values)} entries for {len(keep)} boxes")
        if isinstance(values, torch.Tensor):
            results[key] = values[keep]
        else:
            results[key] = [v for v, k in zip(values, keep.tolist(), strict=True) if k]
    return results


@TRANSFORMS.register_module()
class SanitizeBoxes:
    """Clamp boxes to the image and drop degenerate ones, with the per-box entries of ``aligned_keys``.

    Put it after the geometric transforms (:func:`sanitize_boxes`).

    Args:
        min_size: Smallest width and height in pixels that a box keeps.
        aligned_keys: Keys of per-box entries filtered with the boxes.
    """

    def __init__(self, min_size: float = 1.0, aligned_keys: Sequence[str] = ()) -> None:
        if min_size < 0:
            raise ValueError(f"min_size must be >= 0, got {min_size}")
        self.min_size = min_size
        self.aligned_keys = tuple(aligned_keys)

    def __call__(self, results: dict) -> dict:
        return sanitize_boxes(results, self.min_size, self.aligned_keys)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(min_size={self.min_size}, aligned_keys={self.aligned_keys})"


def build_pipeline(pipeline: Sequence[dict | Callable] | None) -> list[Callable]:
    """Build transforms from config dicts (looked up in clipadapt's ``TRANSFORMS``, then its parents) or callables.

    ``None`` gives ``[LoadImage()]``. Names are resolved in clipadapt's registry first whatever the
    current default scope is, so ``dict(type='Resize')`` is always :class:`Resize` above.
    """
    if pipeline is None:
        return [LoadImage()]
    built: list[Callable] = []
    for i, step in enumerate(pipeline):
        if isinstance(step, dict):
            cfg = dict(step)
            kind = cfg.pop("type", None)
            if kind is None:
                raise KeyError(f"pipeline step {i} {step} has no 'type'")
            cls = TRANSFORMS.get(kind) if isinstance(kind, str) else kind
            if cls is None:
                raise KeyError(
                    f"pipeline step {i}: unknown transform {kind!r}; clipadapt has {sorted(TRANSFORMS.module_dict)}"
                )
            step = cls(**cfg)
        if not callable(step):
            raise TypeError(f"pipeline step {i} must be a config dict or a callable, got {type(step)}")
        built.append(step)
    return built
