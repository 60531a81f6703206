"""Region annotations in a COCO-style JSON: images, xywh pixel boxes, a phrase per box, hard negatives.

The format (the synthetic world writes it as ``regions_<split>.json``)::

    {"images": [{"id": 1, "file_name": "images/scenes/train/00000.png", "width": 96, "height": 96,
                 "caption": "...", "long_caption": "..."}],                        # captions optional
     "annotations": [{"id": 1, "image_id": 1, "bbox": [x, y, w, h], "phrase": "small striped red circle",
                      "hard_negatives": ["small striped blue circle", ...],          # optional
                      "category_id": 3,                                              # optional
                      "attributes": {"colour": "red", "shape": "circle", ...}}],     # optional
     "categories": [{"id": 3, "name": "circle"}]}                                    # optional

Captions for the global loss come from the image records or from an open_clip-style CSV
(``captions_file``) whose image column matches ``file_name``. A box's category, for region
classification, is its ``category_id``'s name, or ``category_template`` filled with its attributes
(the synthetic world's ``"{colour} {shape}"``: the 64 class names).

Bad input, as documented and tested:

- a missing or unparsable file, a missing key, a wrong type, an annotation of an unknown image, a
  box without a phrase: an error naming the file, the record and the key;
- boxes partly outside the image: clipped to it; boxes of zero area (after clipping): dropped, with
  one warning that counts them;
- an image without boxes: kept (it still serves the global loss; its region terms are empty), or
  dropped with a counted warning when ``filter_empty=True``.
"""

from __future__ import annotations

import csv
import json
import os
import random
import warnings
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import torch
from mmengine.dataset import default_collate
from torchvision import tv_tensors
from torchvision.transforms.v2 import functional as F

from clipadapt.registry import DATASETS, FUNCTIONS

from .base import BaseClipDataset, check_file, resolve_path
from .transforms import BOX_KEY, sanitize_boxes, to_boxes

__all__ = ["RegionDataset", "region_collate"]

# Per-box entries that travel (and are filtered) with the boxes.
BOX_ALIGNED = ("phrases", "hard_negatives", "box_labels")


def _read_json(path: str) -> dict:
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except json.JSONDecodeError as err:
        raise ValueError(f"region file {path} is not valid JSON: {err}") from err
    if not isinstance(data, dict):
        raise ValueError(f"region file {path} must hold a JSON object with 'images' and 'annotations'")
    for key in ("images", "annotations"):
        if not isinstance(data.get(key), list):
            raise KeyError(f"region file {path} has no list {key!r} (keys: {sorted(data)})")
    return data


def _field(path: str, where: str, record: Any, key: str, kind: type | tuple[type, ...]) -> Any:
    if not isinstance(record, dict):
        raise ValueError(f"region file {path}: {where} is not a JSON object")
    if key not in record:
        raise KeyError(f"region file {path}: {where} has no {key!r} (keys: {sorted(record)})")
    value = record[key]
    if not isinstance(value, kind) or isinstance(value, bool):
        raise ValueError(f"region file {path}: {where}[{key!r}] = {value!r} is not {kind}")
    return value


def _read_captions(path: str, img_key: str, caption_key: str, long_key: str | None) -> dict[str, dict[str, str]]:
    path = check_file(path, "captions CSV file")
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        missing = [k for k in (img_key, caption_key, long_key) if k and k not in (reader.fieldnames or [])]
        if missing:
            raise KeyError(f"captions CSV file {path} lacks the column(s) {missing}; header {reader.fieldnames}")
        out = {}
        for row in reader:
            out[row[img_key]] = {"caption": row[caption_key], **({"long_caption": row[long_key]} if long_key else {})}
    return out


@DATASETS.register_module()
class RegionDataset(BaseClipDataset):
    """Images with boxes, a phrase per box and optional hard negatives, from a COCO-style region JSON.

    A sample is ``{'inputs': uint8 [3, H, W], 'data_samples': {...}}`` with ``boxes`` (float ``[K, 4]``
    x1, y1, x2, y2 in pixels of the *transformed* image), ``phrases`` (K strings), ``hard_negatives``
    (K lists of strings), ``box_labels`` (``[K]`` category indices into ``metainfo['classes']``, -1
    without a category), ``caption`` / ``long_caption`` (when known), ``index`` and ``img_path``.
    Batch with ``collate_fn=dict(type='clipadapt.region_collate')`` (MMEngine's runner looks collate
    functions up in its root registry, so the name carries the scope). Boxes move with the image through the
    pipeline's geometric transforms and are clamped and sanitised after it.

    Args:
        data_root: Root of relative image paths (and of relative ``ann_file`` / ``captions_file``).
        ann_file: The region JSON.
        captions_file: Optional CSV of captions joined on the image path (``img_key`` column).
        img_key: Image column of ``captions_file``.
        caption_key: Short-caption column of ``captions_file``.
        long_caption_key: Long-caption column of ``captions_file``, or ``None``.
        category_template: Box category from its ``attributes`` (``"{colour} {shape}"``); ``None`` uses
            ``category_id`` and the ``categories`` list.
        classes: The category names in label order; ``None``: the sorted names found in the file.
        max_boxes: At most this many boxes per image (FG-CLIP trains with 4); ``None`` keeps all.
        box_selection: Which boxes ``max_boxes`` keeps in training: ``'random'`` (a new random subset
            each time) or ``'first'`` (the first ones in annotation order, as FG-CLIP and FG-CLIP 2
            take ``bbox_info[:4]``). ``test_mode`` always keeps the first ones.
        caption_prefix: Put before every short caption (FG-CLIP and FG-CLIP 2: ``"a photo of "``).
        min_box_size: Boxes narrower or lower than this (pixels) after the pipeline are dropped.
        filter_empty: Drop images without boxes (with a counted warning) instead of keeping them.
        pipeline: Transform configs; ``None`` gives ``[LoadImage()]``.
        **kwargs: Other ``mmengine.dataset.BaseDataset`` arguments.
    """

    sample_keys: ClassVar[tuple[str, ...]] = (
        "boxes",
        "phrases",
        "hard_negatives",
        "box_labels",
        "caption",
        "long_caption",
        "index",
        "img_path",
    )

    def __init__(
        self,
        data_root: str,
        ann_file: str,
        captions_file: str | None = None,
        img_key: str = "filepath",
        caption_key: str = "title",
        long_caption_key: str | None = "long_title",
        category_template: str | None = None,
        classes: Sequence[str] | None = None,
        max_boxes: int | None = None,
        box_selection: str = "random",
        caption_prefix: str = "",
        min_box_size: float = 1.0,
        filter_empty: bool = False,
        pipeline: Sequence[dict | Callable] | None = None,
        **kwargs: Any,
    ) -> None:
        if max_boxes is not None and max_boxes < 1:
            raise ValueError(f"max_boxes must be >= 1 or None, got {max_boxes}")
        if box_selection not in ("random", "first"):
            raise ValueError(f"box_selection must be 'random' or 'first', got {box_selection!r}")
        self.box_selection, self.caption_prefix = box_selection, str(caption_prefix)
        self.captions_file = captions_file
        self.caption_columns = (img_key, caption_key, long_caption_key)
        self.category_template = category_template
        self.fixed_classes = list(classes) if classes is not None else None
        self.max_boxes = max_boxes
        self.min_box_size = min_box_size
        self.filter_empty = filter_empty
        super().__init__(ann_file=ann_file, data_root=data_root, pipeline=pipeline, **kwargs)

    # -------------------------------------------------------------------------------- loading
    def _category(self, path: str, ann: dict, where: str, names: dict[int, str]) -> str | None:
        if self.category_template is not None:
            attributes = _field(path, where, ann, "attributes", dict)
            try:
                return self.category_template.format(**attributes)
            except KeyError as err:
                raise KeyError(
                    f"region file {path}: {where}['attributes'] lacks {err} for category_template "
                    f"{self.category_template!r}"
                ) from err
        if "category_id" not in ann:
            return None
        cid = ann["category_id"]
        if cid not in names:
            raise KeyError(f"region file {path}: {where} has category_id {cid!r}, which 'categories' does not list")
        return names[cid]

    def _read_images(self, path: str, data: dict, image_root: str) -> dict[Any, dict]:
        captions: dict[str, dict[str, str]] = {}
        if self.captions_file:
            captions_path = resolve_path(self.captions_file, self.data_root)
            captions = _read_captions(captions_path, *self.caption_columns)
        images: dict[Any, dict] = {}
        for i, record in enumerate(data["images"]):
            where = f"images[{i}]"
            image_id = _field(path, where, record, "id", (int, str))
            if image_id in images:
                raise ValueError(f"region file {path}: {where} repeats image id {image_id!r}")
            name = _field(path, where, record, "file_name", str)
            info = {
                "img_path": resolve_path(name, image_root),
                "img_id": image_id,
                "width": _field(path, where, record, "width", (int, float)),
                "height": _field(path, where, record, "height", (int, float)),
                "bboxes": [],
                "phrases": [],
                "hard_negatives": [],
                "categories": [],
            }
            extra = captions.get(name, {})
            for key in ("caption", "long_caption"):
                if key in record or key in extra:
                    info[key] = str(record.get(key, extra.get(key)))
            if "caption" in info:
                info["caption"] = self.caption_prefix + info["caption"]
            if self.captions_file and not extra:
                raise KeyError(f"captions file {self.captions_file} has no row for image {name!r} of {path}")
            images[image_id] = info
        return images

    def load_data_list(self) -> list[dict]:
        """Read and check the JSON; clip boxes to their image, drop zero-area ones (counted)."""
        path = check_file(self.ann_file, "region annotation file")
        data = _read_json(path)
        image_root = self.data_root or os.path.dirname(os.path.abspath(path))
        images = self._read_images(path, data, image_root)
        names = {c["id"]: str(c["name"]) for c in data.get("categories", []) if isinstance(c, dict) and "id" in c}
        dropped: list[Any] = []
        for j, ann in enumerate(data["annotations"]):
            where = f"annotations[{j}] (id {ann.get('id') if isinstance(ann, dict) else '?'})"
            image_id = _field(path, where, ann, "image_id", (int, str))
            if image_id not in images:
                raise KeyError(f"region file {path}: {where} refers to image_id {image_id!r}, which 'images' lacks")
            bbox = _field(path, where, ann, "bbox", list)
            if len(bbox) != 4 or not all(isinstance(v, (int, float)) for v in bbox):
                raise ValueError(f"region file {path}: {where}['bbox'] = {bbox!r} is not [x, y, w, h] numbers")
            phrase = _field(path, where, ann, "phrase", str).strip()
            if not phrase:
                raise ValueError(f"region file {path}: {where} has an empty 'phrase'")
            negatives = ann.get("hard_negatives", [])
            if not isinstance(negatives, list) or not all(isinstance(n, str) and n.strip() for n in negatives):
                raise ValueError(f"region file {path}: {where}['hard_negatives'] must be a list of non-empty strings")
            info = images[image_id]
            x, y, w, h = (float(v) for v in bbox)
            x1, y1 = min(max(x, 0.0), info["width"]), min(max(y, 0.0), info["height"])
            x2, y2 = min(max(x + w, 0.0), info["width"]), min(max(y + h, 0.0), info["height"])
            if x2 - x1 <= 0 or y2 - y1 <= 0:
                dropped.append(ann.get("id", j))
                continue
            info["bboxes"].append([x1, y1, x2 - x1, y2 - y1])
            info["phrases"].append(phrase)
            info["hard_negatives"].append(list(negatives))
            info["categories"].append(self._category(path, ann, where, names))
        if dropped:
            warnings.warn(
                f"region file {path}: dropped {len(dropped)} box(es) of zero area after clipping to the image "
                f"(annotation ids {dropped[:10]}{' ...' if len(dropped) > 10 else ''})",
                stacklevel=2,
            )
        return self._finish(path, list(images.values()))

    def _finish(self, path: str, data_list: list[dict]) -> list[dict]:
        if self.filter_empty:
            empty = [d["img_path"] for d in data_list if not d["bboxes"]]
            if empty:
                warnings.warn(f"region file {path}: dropped {len(empty)} image(s) without boxes", stacklevel=3)
            data_list = [d for d in data_list if d["bboxes"]]
        if not data_list:
            raise ValueError(f"region file {path} yields no images")
        found = sorted({c for d in data_list for c in d["categories"] if c is not None})
        classes = self.fixed_classes if self.fixed_classes is not None else found
        label = {c: i for i, c in enumerate(classes)}
        unknown = sorted(set(found) - set(label))
        if unknown:
            raise ValueError(f"region file {path} has categories {unknown[:10]} missing from classes={classes[:10]}...")
        for index, d in enumerate(data_list):
            d["box_labels"] = [label[c] if c is not None else -1 for c in d.pop("categories")]
            d["index"] = index
        if classes:
            self._metainfo["classes"] = list(classes)
        return data_list

    # --------------------------------------------------------------------------------- samples
    def get_data_info(self, idx: int) -> dict:
        """The sample's record with its boxes as ``BoundingBoxes`` (``max_boxes`` of them, see ``box_selection``)."""
        info = super().get_data_info(idx)
        keep = list(range(len(info["bboxes"])))
        if self.max_boxes is not None and len(keep) > self.max_boxes:
            at_random = self.box_selection == "random" and not self.test_mode
            keep = sorted(random.sample(keep, self.max_boxes)) if at_random else keep[: self.max_boxes]
        info[BOX_KEY] = to_boxes([info["bboxes"][k] for k in keep], (int(info["height"]), int(info["width"])))
        for key in BOX_ALIGNED:
            info[key] = [info[key][k] for k in keep]
        del info["bboxes"]
        return info

    def pack(self, results: dict) -> dict:
        """Sanitise the transformed boxes and pack them as ``x1, y1, x2, y2`` float ``[K, 4]``."""
        results = sanitize_boxes(results, self.min_box_size, BOX_ALIGNED)
        boxes = F.convert_bounding_box_format(results.pop(BOX_KEY), new_format=tv_tensors.BoundingBoxFormat.XYXY)
        results["boxes"] = boxes.as_subclass(torch.Tensor).float().reshape(-1, 4)
        results["box_labels"] = torch.as_tensor(results["box_labels"], dtype=torch.long).reshape(-1)
        return super().pack(results)


@FUNCTIONS.register_module()
def region_collate(batch: Sequence[dict]) -> dict:
    """Batch region samples: images stacked, per-image box data kept as lists (images differ in box count).

    ``data_samples`` becomes ``{key: [value of image 0, value of image 1, ...]}``; ``index`` a tensor.
    """
    if not batch:
        raise ValueError("region_collate got an empty batch")
    images = [b["inputs"] for b in batch]
    inputs = torch.stack(images) if len({tuple(i.shape) for i in images}) == 1 else images
    keys = [k for k in batch[0]["data_samples"]]
    samples: dict[str, Any] = {}
    for key in keys:
        values = [b["data_samples"].get(key) for b in batch]
        if any(v is None for v in values):
            raise KeyError(f"region_collate: data_samples[{key!r}] is missing from some samples of the batch")
        samples[key] = default_collate(values) if key == "index" else values
    return {"inputs": inputs, "data_samples": samples}
