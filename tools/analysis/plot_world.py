"""A picture of a synthetic world: classification images per visual domain, and scenes with their boxes.

    python tools/analysis/plot_world.py ~/.cache/clipadapt/synthetic --out world.png
    python tools/analysis/plot_world.py data/tiny --classes "red circle" "blue star" --scenes 2

Reads the files the world wrote (``split_synthetic_<domain>.json``, ``regions_<split>.json``), as any
loader would: one row per domain with the first training image of each chosen class, then scenes with
their boxes and region phrases.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path


def domain_images(root: Path, classes: Sequence[str] | None, per_row: int) -> dict[str, list[tuple[str, Path]]]:
    """``domain -> [(class name, image path)]``: the first training image of each chosen class."""
    rows = {}
    for split_file in sorted(root.glob("split_synthetic_*.json")):
        domain = split_file.stem.removeprefix("split_synthetic_")
        first: dict[str, Path] = {}
        for relpath, _label, name in json.loads(split_file.read_text())["train"]:
            first.setdefault(name, root / relpath)
        names = list(classes) if classes else sorted(first)[:: max(1, len(first) // per_row)][:per_row]
        missing = [n for n in names if n not in first]
        if missing:
            raise KeyError(f"classes {missing} are not in {split_file}; it has {sorted(first)}")
        rows[domain] = [(n, first[n]) for n in names]
    if not rows:
        raise FileNotFoundError(f"no split_synthetic_*.json under {root}: is it a synthetic world?")
    return rows


def plot(root: Path, out: Path, classes: Sequence[str] | None = None, per_row: int = 6, scenes: int = 3) -> Path:
    """Write the picture of the world at ``root`` to ``out`` (PNG); returns ``out``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle
    from PIL import Image

    rows = domain_images(root, classes, per_row)
    regions = json.loads((root / "regions_train.json").read_text()) if scenes else {"images": []}
    shown = regions["images"][:scenes]
    cols = max(max(len(r) for r in rows.values()), len(shown))
    fig, axes = plt.subplots(len(rows) + bool(shown), cols, figsize=(1.5 * cols, 1.6 * (len(rows) + bool(shown))))
    axes = axes.reshape(len(rows) + bool(shown), cols)
    for ax in axes.flat:
        ax.axis("off")
    for r, (domain, images) in enumerate(rows.items()):
        for c, (name, path) in enumerate(images):
            axes[r, c].imshow(Image.open(path))
            axes[r, c].set_title(f"{domain}: {name}", fontsize=6)
    for c, image in enumerate(shown):
        ax = axes[len(rows), c]
        ax.imshow(Image.open(root / image["file_name"]))
        boxes = [a for a in regions["annotations"] if a["image_id"] == image["id"]]
        for ann in boxes:
            x, y, w, h = ann["bbox"]  # COCO: top-left corner, width, height
            ax.add_patch(Rectangle((x, y), w, h, fill=False, edgecolor="white", linewidth=1))
        ax.set_title(f"scene ({image.get('domain', '')}): {len(boxes)} boxes", fontsize=6)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return out


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("root", type=Path, help="a synthetic world (default location: ~/.cache/clipadapt/synthetic)")
    parser.add_argument("--out", type=Path, help="PNG to write (default: <root>/world.png)")
    parser.add_argument("--classes", nargs="+", help="class names to show (default: spread over all classes)")
    parser.add_argument("--per-row", type=int, default=6, help="classes per domain row when --classes is not given")
    parser.add_argument("--scenes", type=int, default=3, help="scenes to show with their boxes")
    args = parser.parse_args(argv)
    path = plot(args.root, args.out or args.root / "world.png", args.classes, args.per_row, args.scenes)
    print(path)
    return path


if __name__ == "__main__":
    main()
