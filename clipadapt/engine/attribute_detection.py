"""COCO detection files of the synthetic world whose categories are an object attribute (colour).

The world's own ``detection_<split>.json`` names objects by shape. The tiny base CLIP, pretrained on
the world's 64-pixel images, tells colours apart (99.8 % zero-shot) but not shapes (chance): an
open-vocabulary detector built on it can only find *novel* categories that its CLIP can name. So the
open-vocabulary detection configs use the same scenes and boxes with colour categories:
``detection_colour_<split>.json``, derived here from ``detection_<split>.json`` and each
annotation's ``attributes.colour``. Categories follow the vocabulary's colour order (``COLOURS``); the last
``novel_fraction`` of them are novel (the rule of the shape categories), and
``detection_colour_train_base.json`` keeps the training annotations of base colours only.

A config refers to them as ``synthetic://detection_colour_train_base.json`` and so on; they are
written on first use and rewritten only when their content changes.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from clipadapt.fileio import atomic_write

__all__ = ["ATTRIBUTE_DETECTION", "write_attribute_detection"]

ATTRIBUTE_DETECTION = re.compile(r"^detection_(colour)_(train_base|train|val|test)\.json$")


def _categories(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    from clipadapt.datasets.synthetic import WorldConfig
    from clipadapt.datasets.synthetic.vocab import split_base_novel

    config = WorldConfig(**manifest["params"])
    colours = config.scene_colours
    splits = split_base_novel(len(colours), config.novel_fraction)
    return [
        {"id": i + 1, "name": name, "supercategory": "colour", "split": split}
        for i, (name, split) in enumerate(zip(colours, splits, strict=True))
    ]


def write_attribute_detection(world_root: str | os.PathLike[str], attribute: str, split: str) -> Path:
    """Write ``detection_<attribute>_<split>.json`` under ``world_root`` and return its path.

    ``split`` is ``train``, ``val``, ``test`` or ``train_base`` (the training split, base annotations only).
    """
    if attribute != "colour":
        raise ValueError(f"detection by attribute {attribute!r} is not available; known: ['colour']")
    root = Path(world_root)
    manifest = json.loads((root / "manifest.json").read_text())
    source = root / f"detection_{split.removesuffix('_base')}.json"
    if not source.is_file():
        raise FileNotFoundError(f"{source} does not exist; the world in {root} has no detection data")
    coco = json.loads(source.read_text())
    categories = _categories(manifest)
    ids = {c["name"]: c["id"] for c in categories}
    base = {c["id"] for c in categories if c["split"] == "base"}
    annotations = []
    for ann in coco["annotations"]:
        colour = ann.get("attributes", {}).get("colour")
        if colour not in ids:
            raise KeyError(f"{source}: annotation {ann['id']} has colour {colour!r}, not one of {list(ids)}")
        if split == "train_base" and ids[colour] not in base:
            continue
        annotations.append(dict(ann, category_id=ids[colour]))
    info = dict(coco["info"], description=f"{coco['info']['description']} ({attribute} categories)")
    derived = dict(coco, info=info, categories=categories, annotations=annotations)
    path = root / f"detection_{attribute}_{split}.json"
    text = json.dumps(derived, indent=1)
    if not path.is_file() or path.read_text() != text:
        atomic_write(path, lambda tmp: Path(tmp).write_text(text))
    return path
