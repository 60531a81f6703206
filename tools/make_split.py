"""Write a CoOp-style split JSON for the data sets that CoOp reads from folder lists instead.

``FewShotDataset`` reads ``{"train"|"val"|"test": [[relpath, label, classname], ...]}`` (CoOp's
``split_zhou_*.json``). Nine of CoOp's eleven data sets ship such a file; ImageNet and FGVC-Aircraft
do not, so this tool writes one from their original layout, the way CoOp's own readers label them.

ImageNet (``datasets/imagenet.py`` of CoOp: training images from ``train/``, the 50,000 validation
images as the test split and also as the val split; labels in the order of ``classnames.txt``, whose
lines are ``<wnid> <class name>``)::

    python tools/make_split.py imagefolder --root data/imagenet/images --train train --test val \\
        --classnames data/imagenet/classnames.txt --out data/imagenet/split_imagenet.json

Any other image-folder data set (one sub-folder per class; labels in sorted folder order, class names
from the folder names with ``_`` as space, unless ``--classnames`` is given) works the same way.

FGVC-Aircraft (``datasets/fgvc_aircraft.py`` of CoOp: the 100 variants of ``variants.txt`` in file
order; ``images_variant_{train,val,test}.txt`` list ``<image id> <variant>``; images are
``images/<id>.jpg``)::

    python tools/make_split.py fgvc-aircraft --root data/fgvc_aircraft --out data/fgvc_aircraft/split_fgvc_aircraft.json

Paths in the split are relative to the image folder (``--root`` for image folders, ``<root>/images``
for FGVC-Aircraft), which is the ``data_root`` of the data set configs in configs/_base_/datasets/coop/.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from clipadapt.fileio import atomic_write

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}
Entry = list  # [relpath, label, classname]


def _read_classnames(path: Path) -> dict[str, str]:
    """``<folder> <class name>`` lines -> {folder: class name}, in file order."""
    names = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        folder, _, name = line.strip().partition(" ")
        if not name.strip():
            raise ValueError(f"{path}:{number}: expected '<folder> <class name>', got {line!r}")
        names[folder] = name.strip()
    if not names:
        raise ValueError(f"{path} lists no classes")
    return names


def image_folder_split(root: Path, splits: dict[str, str], classnames: Path | None = None) -> dict[str, list[Entry]]:
    """Entries of each split from ``root/<folder>/<class>/<image>``; ``splits`` maps split -> folder."""
    first = root / next(iter(splits.values()))
    if not first.is_dir():
        raise FileNotFoundError(f"image folder not found: {first}")
    if classnames is not None:
        names = _read_classnames(classnames)
    else:
        names = {d.name: d.name.replace("_", " ") for d in sorted(first.iterdir()) if d.is_dir()}
    labels = {folder: i for i, folder in enumerate(names)}
    out: dict[str, list[Entry]] = {}
    for split, folder in splits.items():
        base = root / folder
        if not base.is_dir():
            raise FileNotFoundError(f"image folder of split {split!r} not found: {base}")
        unknown = sorted(d.name for d in base.iterdir() if d.is_dir() and d.name not in labels)
        if unknown:
            raise ValueError(f"{base} has class folders not in the class list: {unknown[:5]}")
        entries = []
        for class_folder, label in labels.items():
            for image in sorted((base / class_folder).glob("*")):
                if image.suffix.lower() in IMAGE_SUFFIXES:
                    entries.append([image.relative_to(root).as_posix(), label, names[class_folder]])
        if not entries:
            raise ValueError(f"no images under {base}")
        out[split] = entries
    return out


def fgvc_aircraft_split(root: Path) -> dict[str, list[Entry]]:
    """Entries of FGVC-Aircraft's train/val/test variant lists, paths relative to ``root/images``."""
    data = root / "data" if (root / "data" / "variants.txt").is_file() else root
    variants_file = data / "variants.txt"
    if not variants_file.is_file():
        raise FileNotFoundError(f"variants.txt not found in {root} or {root / 'data'}")
    variants = [v.strip() for v in variants_file.read_text().splitlines() if v.strip()]
    labels = {v: i for i, v in enumerate(variants)}
    out = {}
    for split in ("train", "val", "test"):
        path = data / f"images_variant_{split}.txt"
        if not path.is_file():
            raise FileNotFoundError(f"{path.name} not found in {data}")
        entries = []
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if not line.strip():
                continue
            image, _, variant = line.strip().partition(" ")
            if variant not in labels:
                raise ValueError(f"{path}:{number}: variant {variant!r} is not in {variants_file.name}")
            entries.append([f"{image}.jpg", labels[variant], variant])
        out[split] = entries
    return out


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="source", required=True)
    folder = sub.add_parser("imagefolder", help="one sub-folder per class (ImageNet and the like)")
    folder.add_argument("--root", required=True, type=Path, help="the image folder (data_root of the config)")
    folder.add_argument("--train", required=True, help="folder of the training images, relative to --root")
    folder.add_argument("--test", required=True, help="folder of the test images, relative to --root")
    folder.add_argument("--val", help="folder of the validation images (default: the test folder, as CoOp)")
    folder.add_argument("--classnames", type=Path, help="'<folder> <class name>' lines; sets the label order")
    aircraft = sub.add_parser("fgvc-aircraft", help="FGVC-Aircraft's variant lists")
    aircraft.add_argument("--root", required=True, type=Path, help="the data set folder (holds variants.txt)")
    for command in (folder, aircraft):
        command.add_argument("--out", required=True, type=Path, help="the split JSON to write")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict[str, list[Entry]]:
    args = parse_args(argv)
    if args.source == "imagefolder":
        splits = {"train": args.train, "val": args.val or args.test, "test": args.test}
        split = image_folder_split(args.root, splits, args.classnames)
    else:
        split = fgvc_aircraft_split(args.root)
    atomic_write(args.out, lambda tmp: Path(tmp).write_text(json.dumps(split)))
    counts = ", ".join(f"{k} {len(v)}" for k, v in split.items())
    classes = len({e[1] for e in split["train"]})
    print(f"wrote {args.out}: {classes} classes; {counts} images", file=sys.stderr)
    return split


if __name__ == "__main__":
    main()
