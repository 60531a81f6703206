"""Few-shot classification from image folders and a CoOp-style split JSON.

The split file maps ``"train"``, ``"val"`` and ``"test"`` to lists of ``[relpath, label, classname]``
(CoOp's ``split_zhou_*.json`` format), with ``relpath`` relative to ``data_root``. The sampling
follows CoOp (Zhou et al., https://arxiv.org/abs/2109.01134) and its Dassl helpers:

- k-shot (``generate_fewshot_dataset``): per class, ``random.sample(items, k)`` when the class has at
  least ``k`` items; otherwise all its items, or ``random.choices(items, k=k)`` (with replacement)
  when ``repeat=True``. Dassl's default is ``repeat=False``; a class with too few items is kept
  whole and a warning says so. Here the generator is ``random.Random(seed)``, local to the
  dataset, and classes are visited in label order, so the same seed always picks the same files.
  CoOp few-shots its train split with ``k`` and its val split with ``min(k, 4)``; the test split
  is never sub-sampled. Pass the ``num_shots`` you want for each split.
- base-to-novel (``subsample_classes``): the labels present in the file's train split are sorted;
  the first ``ceil(n / 2)`` are base, the rest novel; samples of the chosen half are relabelled
  ``0..n_sub - 1`` in the same order. k-shot sampling happens before the class subset is taken, as in
  CoOp, so a base class gets the same shots as with ``subsample='all'``.
"""

from __future__ import annotations

import json
import math
import random
import warnings
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

from clipadapt.registry import DATASETS

from .base import BaseClipDataset, check_file, resolve_path

__all__ = ["FewShotDataset", "few_shot_sample", "subsample_classes"]

SPLITS = ("train", "val", "test")
SUBSAMPLES = ("all", "base", "novel", "new")  # "new" is CoOp's name for "novel"


def few_shot_sample(
    items: list[tuple[str, int, str]], num_shots: int, seed: int, repeat: bool = False
) -> tuple[list[tuple[str, int, str]], list[int]]:
    """CoOp's ``generate_fewshot_dataset`` for one split, reproducible by ``seed``.

    Args:
        items: ``(relpath, label, classname)`` entries.
        num_shots: Shots per class (``>= 1``).
        seed: Seed of the local ``random.Random``.
        repeat: Sample with replacement when a class has fewer than ``num_shots`` items.

    Returns:
        The sampled entries (classes in label order) and the labels that had fewer than ``num_shots``.
    """
    by_label: dict[int, list[tuple[str, int, str]]] = {}
    for item in items:
        by_label.setdefault(item[1], []).append(item)
    rng = random.Random(seed)
    out, short = [], []
    for label in sorted(by_label):
        group = by_label[label]
        if len(group) >= num_shots:
            out += rng.sample(group, num_shots)
        else:
            short.append(label)
            out += rng.choices(group, k=num_shots) if repeat else group
    return out, short


def subsample_classes(labels: Sequence[int], subsample: str) -> dict[int, int]:
    """CoOp's ``subsample_classes``: old label -> new label for the chosen half of the sorted labels."""
    if subsample not in SUBSAMPLES:
        raise ValueError(f"subsample must be one of {SUBSAMPLES}, got {subsample!r}")
    ordered = sorted(set(labels))
    if subsample == "all":
        return {y: y for y in ordered}
    m = math.ceil(len(ordered) / 2)
    selected = ordered[:m] if subsample == "base" else ordered[m:]
    return {y: i for i, y in enumerate(selected)}


@DATASETS.register_module()
class FewShotDataset(BaseClipDataset):
    """Few-shot image classification from a CoOp split JSON (see the module docstring for the sampling).

    A sample is ``{'inputs': uint8 [3, H, W], 'data_samples': {'label': int, 'img_path': str}}``;
    ``metainfo['classes']`` lists the class names of the (sub)set in label order.

    Args:
        data_root: Root that the split file's relative image paths start from.
        split_file: The split JSON, relative to ``data_root`` unless absolute.
        split: ``"train"``, ``"val"`` or ``"test"``.
        num_shots: Images per class; ``None`` (or a value below 1, CoOp's ``-1``) keeps every image.
        seed: Seed of the k-shot sampling.
        subsample: ``"all"``, ``"base"`` or ``"novel"`` (``"new"`` is accepted, as in CoOp).
        repeat: Sample with replacement for classes with fewer than ``num_shots`` images (Dassl's
            ``repeat``); otherwise such classes keep all their images.
        pipeline: Transform configs or callables; ``None`` gives ``[LoadImage()]``.
        **kwargs: Other ``mmengine.dataset.BaseDataset`` arguments.
    """

    sample_keys: ClassVar[tuple[str, ...]] = ("label", "img_path")

    def __init__(
        self,
        data_root: str,
        split_file: str,
        split: str = "train",
        num_shots: int | None = None,
        seed: int = 1,
        subsample: str = "all",
        repeat: bool = False,
        pipeline: Sequence[dict | Callable] | None = None,
        **kwargs: Any,
    ) -> None:
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        if subsample not in SUBSAMPLES:
            raise ValueError(f"subsample must be one of {SUBSAMPLES}, got {subsample!r}")
        self.split = split
        self.num_shots = num_shots if num_shots is not None and num_shots >= 1 else None
        self.seed = seed
        self.subsample = "novel" if subsample == "new" else subsample
        self.repeat = repeat
        super().__init__(ann_file=split_file, data_root=data_root, pipeline=pipeline, **kwargs)

    def _read(self) -> dict[str, list[tuple[str, int, str]]]:
        """Read and validate the split file: every split present, entries ``[str, int, str]``."""
        path = check_file(self.ann_file, "split file")
        try:
            with open(path) as fh:
                raw = json.load(fh)
        except ValueError as err:
            raise ValueError(f"split file {path} is not valid JSON: {err}") from err
        if not isinstance(raw, dict):
            raise ValueError(f"split file {path} must hold a JSON object with keys {list(SPLITS)}")
        required = sorted({self.split, "train"} if self.subsample != "all" else {self.split})
        missing = [k for k in required if k not in raw]
        if missing:
            raise KeyError(
                f"split file {path} lacks the required key(s) {missing} (it has {sorted(raw)}); "
                "a CoOp split maps 'train', 'val' and 'test' to [[relpath, label, classname], ...]"
            )
        out = {}
        for split in (s for s in SPLITS if s in raw):
            entries = []
            if not isinstance(raw[split], list):
                raise ValueError(
                    f"split file {path}: {split!r} is {raw[split]!r}, not a list of [relpath, label, classname]"
                )
            for i, entry in enumerate(raw[split]):
                ok = isinstance(entry, (list, tuple)) and len(entry) == 3
                if not ok or not (isinstance(entry[0], str) and type(entry[1]) is int and isinstance(entry[2], str)):
                    raise ValueError(f"split file {path}: {split}[{i}] = {entry!r} is not [relpath, label, classname]")
                if not entry[2].strip():
                    raise ValueError(f"split file {path}: {split}[{i}] = {entry!r} has an empty class name")
                entries.append((entry[0], entry[1], entry[2]))
            out[split] = entries
        return out

    def load_data_list(self) -> list[dict]:
        """Read the split, take k shots per class and the base/novel subset; set ``metainfo['classes']``."""
        splits = self._read()
        path = self.ann_file
        names: dict[int, str] = {}
        for split, entries in splits.items():
            for _, label, name in entries:
                if names.setdefault(label, name) != name:
                    raise ValueError(
                        f"split file {path}: label {label} is both {names[label]!r} and {name!r} ({split})"
                    )
        expected = set(range(len(names)))
        if set(names) != expected:
            raise ValueError(
                f"split file {path}: labels must be 0..{len(names) - 1}; "
                f"missing {sorted(expected - set(names))}, unexpected {sorted(set(names) - expected)}"
            )
        items = splits[self.split]
        if not items:
            raise ValueError(f"split {self.split!r} of {path} is empty")
        if self.num_shots is not None:
            items, short = few_shot_sample(items, self.num_shots, self.seed, self.repeat)
            if short:
                action = "sampled with replacement" if self.repeat else "kept whole (pass repeat=True to resample)"
                warnings.warn(
                    f"{len(short)} class(es) of split {self.split!r} of {path} have fewer than num_shots="
                    f"{self.num_shots} images and were {action}: {[names[y] for y in short]}",
                    stacklevel=2,
                )
        train_labels = [label for _, label, _ in splits.get("train", [])] or list(names)
        relabel = subsample_classes(train_labels, self.subsample)
        classes = [names[old] for old in sorted(relabel, key=lambda old: relabel[old])]
        self._metainfo.update(classes=classes, split=self.split, subsample=self.subsample, num_shots=self.num_shots)
        data_list = [
            {"img_path": resolve_path(rel, self.data_root), "label": relabel[label], "classname": name}
            for rel, label, name in items
            if label in relabel
        ]
        if not data_list:
            raise ValueError(
                f"no samples left in split {self.split!r} of {path} after subsample={self.subsample!r} "
                f"(classes kept: {classes or 'none'}; labels of the split: {sorted({y for _, y, _ in items})})"
            )
        return data_list
