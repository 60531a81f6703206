"""Captions for the synthetic world's single-object images, so that pretraining can use them as image-text pairs.

The world writes classification images with CoOp split files (``[relpath, label, classname]``); the
tiny CLIP's pretraining also wants them captioned (``"a red circle"``, the way scene captions name
objects). :func:`write_object_captions` derives ``captions_objects_<split>.csv`` (open_clip's
``filepath,title`` columns) from the split files of the scene domains, so that the held-out domains
(``dark`` by default) stay unseen. The config refers to it as ``synthetic://captions_objects_train.csv``.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
from pathlib import Path

from clipadapt.fileio import atomic_write_bytes

__all__ = ["OBJECT_CAPTIONS", "write_object_captions"]

OBJECT_CAPTIONS = re.compile(r"^captions_objects_(train|val|test)\.csv$")


def _article(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"


def write_object_captions(world_root: str | os.PathLike[str], split: str = "train") -> Path:
    """Write ``captions_objects_<split>.csv`` under ``world_root`` (only when its content changes).

    Images come from ``split_synthetic_<domain>.json`` of each scene domain of the world's manifest.
    """
    root = Path(world_root)
    manifest = json.loads((root / "manifest.json").read_text())
    domains = manifest["params"]["scene_domains"]
    rows = []
    for domain in domains:
        split_file = root / f"split_synthetic_{domain}.json"
        if not split_file.is_file():  # a scene domain without classification images
            continue
        for relpath, _, name in json.loads(split_file.read_text())[split]:
            rows.append((relpath, f"{_article(name)} {name}"))
    if not rows:
        raise ValueError(f"no classification images of the scene domains {domains} in {root} ({split} split)")
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["filepath", "title"])
    writer.writerows(rows)
    path = root / f"captions_objects_{split}.csv"
    text = buf.getvalue()
    if not path.is_file() or path.read_text() != text:
        atomic_write_bytes(path, text.encode())
    return path
