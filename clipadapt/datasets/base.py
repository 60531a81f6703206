"""The dataset base: MMEngine's ``BaseDataset`` plus packing into ``{'inputs', 'data_samples'}``.

clipadapt's datasets subclass ``mmengine.dataset.BaseDataset`` rather than a plain torch
``Dataset``: they get lazy initialisation, ``metainfo``, ``get_subset`` and the serialisation of the
sample list into one numpy buffer (workers of a ``DataLoader`` share it instead of copying Python
objects). Two things differ from the base class:

- the pipeline is built from clipadapt's ``TRANSFORMS`` (see :func:`build_pipeline`) and defaults to
  ``[LoadImage()]``;
- a sample is packed after the pipeline as ``{'inputs': uint8 Tensor[3, H, W], 'data_samples': dict}``,
  which ``mmengine.dataset.default_collate`` batches (images stacked, ints to tensors, strings to lists).
  ``data_samples`` holds the keys listed in ``sample_keys``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import torch
from mmengine.dataset import BaseDataset

from .transforms import build_pipeline

__all__ = ["BaseClipDataset", "check_file"]


def check_file(path: str | os.PathLike, what: str) -> str:
    """``path`` as a string when it is a file; a ``FileNotFoundError`` naming it and ``what`` it is otherwise."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{what} not found: {path}")
    return str(path)


def resolve_path(path: str, root: str) -> str:
    """``path`` when absolute, else joined to ``root`` (no join when ``root`` is empty)."""
    return path if os.path.isabs(path) or not root else os.path.join(root, path)


class BaseClipDataset(BaseDataset):
    """An MMEngine dataset whose samples are ``{'inputs': uint8 [3, H, W], 'data_samples': {...}}``.

    Subclasses implement ``load_data_list`` (a list of dicts holding at least ``img_path``) and set
    ``sample_keys``: the keys of the transformed results copied into ``data_samples`` (a key missing
    from the results is left out).

    Args:
        ann_file: Annotation file, relative to ``data_root`` unless absolute.
        data_root: Root of the data set.
        pipeline: Transform configs (``dict(type=...)`` from ``TRANSFORMS``) or callables; ``None``
            gives ``[LoadImage()]``.
        **kwargs: Other ``BaseDataset`` arguments (``test_mode``, ``lazy_init``, ``indices``,
            ``serialize_data``, ``max_refetch``).
    """

    sample_keys: ClassVar[tuple[str, ...]] = ()

    def __init__(
        self,
        ann_file: str,
        data_root: str = "",
        pipeline: Sequence[dict | Callable] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(ann_file=str(ann_file), data_root=str(data_root), pipeline=build_pipeline(pipeline), **kwargs)

    def prepare_data(self, idx: int) -> dict | None:
        """Run the pipeline on sample ``idx`` and pack it (``None`` only when a transform returns ``None``)."""
        results = self.pipeline(self.get_data_info(idx))
        return None if results is None else self.pack(results)

    def pack(self, results: dict) -> dict:
        """``{'inputs': uint8 Tensor[3, H, W], 'data_samples': {key: results[key] for key in sample_keys}}``."""
        img = results.get("img")
        if img is None:
            raise KeyError(
                f"the pipeline of {type(self).__name__} produced no 'img' for {results.get('img_path')}; "
                "start it with dict(type='LoadImage')"
            )
        if not isinstance(img, torch.Tensor) or img.dtype != torch.uint8 or img.ndim != 3 or img.shape[0] != 3:
            got = f"{type(img).__name__} {getattr(img, 'dtype', '')} {tuple(getattr(img, 'shape', ()))}"
            raise TypeError(f"the pipeline must produce a uint8 tensor [3, H, W] (images stay uint8), got {got}")
        samples = {key: results[key] for key in self.sample_keys if key in results}
        return {"inputs": img.as_subclass(torch.Tensor), "data_samples": samples}
