"""Write the synthetic world (few-shot splits, captions CSV, region and detection JSON) under ROOT.

Examples::

    python tools/make_synthetic.py data/synthetic
    python tools/make_synthetic.py data/tiny --colours red blue --shapes circle star --scenes-train 50

Every option is a field of ``clipadapt.datasets.synthetic.WorldConfig``. Generation is skipped when
ROOT's manifest already records the same parameters (``--force`` regenerates).
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import time
from pathlib import Path

from clipadapt.datasets.synthetic import WorldConfig, ensure_synthetic_world, generate_synthetic_world, load_manifest


def _field_help() -> dict[str, str]:
    """Per-field help, taken from the ``Args:`` section of ``WorldConfig``'s docstring."""
    doc = (WorldConfig.__doc__ or "").split("Args:", 1)[-1]
    helps: dict[str, str] = {}
    for match in re.finditer(r"^\s{8}(\w+): (.+?)(?=^\s{8}\w+: |\Z)", doc, flags=re.M | re.S):
        helps[match.group(1)] = " ".join(match.group(2).split())
    return helps


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """One option per ``WorldConfig`` field (lists take several names), plus the generation options."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("root", type=Path, help="output directory")
    helps = _field_help()
    for f in dataclasses.fields(WorldConfig):
        if not f.init:
            continue
        flag = "--" + f.name.replace("_", "-")
        text = f"{helps.get(f.name, '')} (default: {f.default})"
        if f.name == "classes" or isinstance(f.default, tuple):
            parser.add_argument(flag, nargs="+", default=None, metavar="NAME", help=text)
        else:
            parser.add_argument(flag, type=type(f.default), default=None, help=text)
    parser.add_argument("--workers", type=int, default=None, help="worker processes (default: one per CPU, at most 8)")
    parser.add_argument("--force", action="store_true", help="regenerate even when the manifest matches")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    """Generate (or find up to date) the world under ROOT and print what it holds."""
    args = parse_args(argv)
    fields = [f.name for f in dataclasses.fields(WorldConfig) if f.init]
    # "classes" given as "red circle" needs quoting on the shell; "red_circle" is accepted too.
    if args.classes:
        args.classes = [name.replace("_", " ") for name in args.classes]
    params = {name: getattr(args, name) for name in fields if getattr(args, name) is not None}
    config = WorldConfig(**params)
    before = load_manifest(args.root)
    start = time.perf_counter()
    if args.force:
        generate_synthetic_world(args.root, config, workers=args.workers, progress=not args.no_progress)
    else:
        ensure_synthetic_world(args.root, workers=args.workers, progress=not args.no_progress, **params)
    elapsed = time.perf_counter() - start
    manifest = load_manifest(args.root)
    if manifest is None:
        raise SystemExit(f"no manifest was written under {args.root}")
    if not args.force and before == manifest:
        print(f"{args.root}: up to date (manifest matches the parameters), nothing written")
    else:
        print(f"{args.root}: generated in {elapsed:.1f}s (seed {config.seed})")
    counts = manifest["counts"]
    for domain, splits in counts["classification"].items():
        print(f"  classification {domain:<9} {splits}  -> split_synthetic_{domain}.json")
    for split, c in counts["scenes"].items():
        print(f"  scenes {split:<5} {c['images']} images, {c['objects']} objects")
    cats = manifest["detection_categories"]
    print(
        f"  {len(manifest['classes'])} classes; detection categories: "
        f"base {[c['name'] for c in cats if c['split'] == 'base']}, "
        f"novel {[c['name'] for c in cats if c['split'] == 'novel']}"
    )
    print("  files: " + ", ".join(manifest["files"] + ["manifest.json"]))


if __name__ == "__main__":
    main()
