"""Writing the synthetic world to disk in real formats, atomically and idempotently.

Layout under one root (paths inside the files are relative to the root)::

    manifest.json                                  seed, parameters, counts, files written
    images/<domain>/<class_name>/<idx>.png         classification images, e.g. images/dark/red_circle/00003.png
    split_synthetic_<domain>.json                  CoOp split: {"train"|"val"|"test": [[relpath, label, classname]]}
    images/scenes/<split>/<idx>.png                multi-object scenes
    captions_<split>.csv                           filepath,title,long_title (open_clip's CSV columns + long captions)
    regions_<split>.json                           COCO-style boxes with phrases and hard negatives
    detection_<split>.json                         COCO detection; categories carry "split": "base" | "novel"
    detection_train_base.json                      the training annotations of base categories only (OVD training)

Every file is written to a temporary name and moved in place with ``os.replace``; the manifest is
written last, so an interrupted run leaves no manifest and is redone. When the manifest of ``root``
records the requested parameters, generation is skipped.
"""

from __future__ import annotations

import csv
import functools
import io
import json
import os
import shutil
import zlib
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_all_start_methods, get_context
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from clipadapt.fileio import atomic_write_bytes, file_lock

from .draw import apply_light, draw_background, render
from .scene import hard_negatives, long_caption, phrase, sample_scene, sample_single, short_caption
from .vocab import WorldConfig

__all__ = ["FORMAT_VERSION", "MANIFEST", "ensure_synthetic_world", "generate_synthetic_world", "load_manifest"]

FORMAT_VERSION = 3  # bump when the drawing or the formats change: cached worlds are then regenerated
MANIFEST = "manifest.json"
SPLITS = ("train", "val", "test")


def _rng(seed: int, *keys: str | int) -> np.random.Generator:
    """An independent generator per item; string keys are hashed stably (crc32), never with hash()."""
    entropy = [seed] + [zlib.crc32(k.encode()) if isinstance(k, str) else int(k) for k in keys]
    return np.random.default_rng(np.random.SeedSequence(entropy))


def _write_json(path: Path, obj: Any, indent: int | None = None) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=indent, ensure_ascii=False) + "\n").encode())


def _png_bytes(image: Any) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG", compress_level=6)
    return buf.getvalue()


def class_dir(name: str) -> str:
    """Folder name of a class: spaces become underscores (``"red circle"`` -> ``"red_circle"``)."""
    return name.replace(" ", "_")


# Jobs: module-level functions so that worker processes can run them.


def _classification_job(job: tuple[str, dict, str, str, str, int]) -> list[str]:
    """Draw and write every image of one (domain, class); returns their relative paths in order."""
    root, params, domain, colour, shape, count = job
    size = params["image_size"]
    rels = []
    for idx in range(count):
        rng = _rng(params["seed"], "classification", domain, f"{colour} {shape}", idx)
        obj = sample_single(colour, shape, size, rng, params["object_jitter"])
        image, _ = render(draw_background(domain, size, rng), [obj.drawn], rng)
        image = apply_light(domain, image)
        rel = f"images/{domain}/{class_dir(f'{colour} {shape}')}/{idx:05d}.png"
        atomic_write_bytes(Path(root) / rel, _png_bytes(image))
        rels.append(rel)
    return rels


@functools.lru_cache(maxsize=4)
def _config(params_json: str) -> WorldConfig:
    return WorldConfig(**json.loads(params_json))


def _scene_job(job: tuple[str, dict, str, int]) -> dict:
    """Draw and write one scene; returns its record (domain, captions, objects with boxes)."""
    root, params, split, idx = job
    cfg = _config(json.dumps(params, sort_keys=True))
    size = cfg.scene_size
    rng = _rng(cfg.seed, "scene", split, idx)
    domain = cfg.scene_domains[idx % len(cfg.scene_domains)]
    num = int(rng.integers(cfg.min_objects, cfg.max_objects + 1))
    objects = sample_scene(list(cfg.class_pairs), size, num, rng)
    image, boxes = render(draw_background(domain, size, rng), [o.drawn for o in objects], rng)
    image = apply_light(domain, image)
    for obj, box in zip(objects, boxes, strict=True):
        obj.bbox = box
    objects = [o for o in objects if o.bbox[2] > 0 and o.bbox[3] > 0]
    shapes = [s for s, _ in cfg.detection_categories]
    records = []
    for obj in objects:
        others = [o for o in objects if o is not obj]
        count = int(rng.integers(cfg.min_negatives, cfg.max_negatives + 1))
        negs = hard_negatives(obj, others, cfg.scene_colours, shapes, count, rng)
        records.append(
            {
                "colour": obj.colour,
                "shape": obj.shape,
                "size": obj.size,
                "texture": obj.texture,
                "bbox": list(obj.bbox),
                "phrase": phrase(obj),
                "hard_negatives": negs,
            }
        )
    rel = f"images/scenes/{split}/{idx:05d}.png"
    atomic_write_bytes(Path(root) / rel, _png_bytes(image))
    return {
        "file_name": rel,
        "width": size,
        "height": size,
        "domain": domain,
        "objects": records,
        "caption": short_caption(objects, rng),
        "long_caption": long_caption(objects, domain, size, rng),
    }


def _run_jobs(fn: Any, jobs: list, workers: int) -> Iterator[Any]:
    """Run jobs in order, in worker processes when ``workers > 1`` (fork only; else in this process)."""
    if workers > 1 and len(jobs) > 1 and "fork" in get_all_start_methods():
        with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("fork")) as pool:
            yield from pool.map(fn, jobs, chunksize=max(1, len(jobs) // (workers * 8)))
    else:
        yield from map(fn, jobs)


def _write_classification(root: Path, cfg: WorldConfig, workers: int, bar: tqdm) -> tuple[list[str], dict]:
    names = cfg.class_names
    label = {name: i for i, name in enumerate(names)}
    per_class = cfg.per_class_train + cfg.per_class_val + cfg.per_class_test
    params = cfg.to_dict()
    n_tr, n_va = cfg.per_class_train, cfg.per_class_val
    bounds = {"train": (0, n_tr), "val": (n_tr, n_tr + n_va), "test": (n_tr + n_va, per_class)}
    files, counts = [], {}
    for domain in cfg.domains:
        bar.set_description(f"classification/{domain}")
        jobs = [(str(root), params, domain, *name.split(" "), per_class) for name in names]
        split: dict[str, list] = {s: [] for s in SPLITS}
        for name, rels in zip(names, _run_jobs(_classification_job, jobs, workers), strict=True):
            for s, (lo, hi) in bounds.items():
                split[s] += [[rel, label[name], name] for rel in rels[lo:hi]]
            bar.update(len(rels))
        path = f"split_synthetic_{domain}.json"
        _write_json(root / path, split, indent=1)
        files.append(path)
        counts[domain] = {s: len(v) for s, v in split.items()}
    return files, counts


def _coco_info(cfg: WorldConfig, what: str) -> dict:
    return {"description": f"clipadapt synthetic world: {what}", "version": str(FORMAT_VERSION), "seed": cfg.seed}


def _write_scene_split(root: Path, cfg: WorldConfig, split: str, scenes: list[dict]) -> list[str]:
    rows = [[s["file_name"], s["caption"], s["long_caption"]] for s in scenes]
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["filepath", "title", "long_title"])
    writer.writerows(rows)
    atomic_write_bytes(root / f"captions_{split}.csv", buf.getvalue().encode())

    categories = cfg.detection_categories
    cat_id = {shape: i + 1 for i, (shape, _) in enumerate(categories)}
    images: list[dict[str, Any]] = []
    regions: list[dict[str, Any]] = []
    detections: list[dict[str, Any]] = []
    for image_id, scene in enumerate(scenes, start=1):
        images.append(
            {
                "id": image_id,
                "file_name": scene["file_name"],
                "width": scene["width"],
                "height": scene["height"],
                "domain": scene["domain"],
            }
        )
        for obj in scene["objects"]:
            ann_id = len(regions) + 1
            x, y, w, h = obj["bbox"]
            attributes = {k: obj[k] for k in ("colour", "shape", "size", "texture")}
            regions.append(
                {
                    "id": ann_id,
                    "image_id": image_id,
                    "bbox": obj["bbox"],
                    "phrase": obj["phrase"],
                    "hard_negatives": obj["hard_negatives"],
                    "attributes": attributes,
                }
            )
            detections.append(
                {
                    "id": ann_id,
                    "image_id": image_id,
                    "category_id": cat_id[obj["shape"]],
                    "bbox": [x, y, w, h],
                    "area": w * h,
                    "iscrowd": 0,
                    "attributes": attributes,
                }
            )
    region_cats = [{"id": i, "name": shape, "supercategory": "shape"} for shape, i in cat_id.items()]
    _write_json(
        root / f"regions_{split}.json",
        {"info": _coco_info(cfg, "regions"), "images": images, "annotations": regions, "categories": region_cats},
    )
    det_cats = [
        {"id": cat_id[shape], "name": shape, "supercategory": "shape", "split": kind} for shape, kind in categories
    ]
    det = {
        "info": _coco_info(cfg, "detection"),
        "licenses": [],
        "images": images,
        "annotations": detections,
        "categories": det_cats,
    }
    _write_json(root / f"detection_{split}.json", det)
    files = [f"captions_{split}.csv", f"regions_{split}.json", f"detection_{split}.json"]
    if split == "train":
        base = {c["id"] for c in det_cats if c["split"] == "base"}
        det_base = dict(det, annotations=[a for a in detections if a["category_id"] in base])
        _write_json(root / "detection_train_base.json", det_base)
        files.append("detection_train_base.json")
    return files


def _write_scenes(root: Path, cfg: WorldConfig, workers: int, bar: tqdm) -> tuple[list[str], dict]:
    files, counts = [], {}
    params = cfg.to_dict()
    for split in SPLITS:
        n = getattr(cfg, f"scenes_{split}")
        if n == 0:
            continue
        bar.set_description(f"scenes/{split}")
        scenes = []
        for scene in _run_jobs(_scene_job, [(str(root), params, split, i) for i in range(n)], workers):
            scenes.append(scene)
            bar.update(1)
        files += _write_scene_split(root, cfg, split, scenes)
        counts[split] = {"images": n, "objects": sum(len(s["objects"]) for s in scenes)}
    return files, counts


def load_manifest(root: str | os.PathLike) -> dict | None:
    """The manifest of a world root, or ``None`` when there is none (or it is unreadable)."""
    path = Path(root) / MANIFEST
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _is_current(root: Path, manifest: dict | None, cfg: WorldConfig) -> bool:
    return (
        manifest is not None
        and manifest.get("format_version") == FORMAT_VERSION
        and manifest.get("params") == cfg.to_dict()
        and all((root / f).is_file() for f in manifest.get("files", []))
        and all((root / d).is_dir() for d in manifest.get("image_dirs", []))
    )


def _remove_previous(root: Path, manifest: dict | None) -> None:
    """Delete what an older world in ``root`` wrote (only paths its manifest lists, inside ``root``)."""
    (root / MANIFEST).unlink(missing_ok=True)  # an interrupted run must not look finished
    if not manifest:
        return
    for rel in manifest.get("image_dirs", []) + manifest.get("files", []):
        path = (root / rel).resolve()
        if root.resolve() not in path.parents:
            continue
        if path.is_dir():
            shutil.rmtree(path)
        elif path.is_file():
            path.unlink()


def generate_synthetic_world(
    root: str | os.PathLike, config: WorldConfig, *, workers: int | None = None, progress: bool = True
) -> dict:
    """Generate the world described by ``config`` under ``root`` (always; see :func:`ensure_synthetic_world`).

    Args:
        root: Output directory (created when missing).
        config: Generation parameters.
        workers: Worker processes (``None``: one per CPU, at most 8); the output does not depend on it.
        progress: Show a tqdm progress bar.

    Returns:
        The manifest that was written.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    workers = min(os.cpu_count() or 1, 8) if workers is None else max(1, workers)
    _remove_previous(root, load_manifest(root))
    n_cls = len(cfg_names := config.class_names) * len(config.domains)
    n_cls *= config.per_class_train + config.per_class_val + config.per_class_test
    n_scenes = config.scenes_train + config.scenes_val + config.scenes_test
    with tqdm(total=n_cls + n_scenes, unit="img", desc="synthetic world", disable=not progress) as bar:
        cls_files, cls_counts = _write_classification(root, config, workers, bar)
        scene_files, scene_counts = _write_scenes(root, config, workers, bar)
    manifest = {
        "format_version": FORMAT_VERSION,
        "generator": "clipadapt.datasets.synthetic",
        "seed": config.seed,
        "params": config.to_dict(),
        "classes": cfg_names,
        "detection_categories": [{"name": s, "split": k} for s, k in config.detection_categories],
        "counts": {"classification": cls_counts, "scenes": scene_counts},
        "files": cls_files + scene_files,
        "image_dirs": [f"images/{d}" for d in config.domains] + (["images/scenes"] if n_scenes else []),
    }
    _write_json(root / MANIFEST, manifest, indent=2)
    return manifest


def ensure_synthetic_world(
    root: str | os.PathLike, *, workers: int | None = None, progress: bool = True, **params: Any
) -> Path:
    """Generate the synthetic world under ``root`` unless its manifest already records ``params``.

    Args:
        root: World directory.
        workers: Worker processes for generation (does not change the output).
        progress: Show a tqdm progress bar while generating.
        **params: Fields of :class:`WorldConfig` (``seed``, ``image_size``, ``per_class_train``, ...).

    Returns:
        ``root`` as a ``Path``.
    """
    unknown = sorted(set(params) - set(_public_fields()))
    if unknown:
        raise TypeError(f"unknown synthetic world parameters {unknown}; known: {_public_fields()}")
    config = WorldConfig(**params)
    root = Path(root)
    if _is_current(root, load_manifest(root), config):
        return root  # complete: nothing to write, so no write lock (the folder may be read-only)
    root.mkdir(parents=True, exist_ok=True)
    with file_lock(root / ".synthetic.lock"):
        if not _is_current(root, load_manifest(root), config):
            generate_synthetic_world(root, config, workers=workers, progress=progress)
    return root


def _public_fields() -> list[str]:
    return [name for name, f in WorldConfig.__dataclass_fields__.items() if f.init]
