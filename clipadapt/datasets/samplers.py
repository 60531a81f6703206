"""Batch samplers: batches drawn from one pseudo-label cluster each (hard negatives for contrastive learning)."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from mmengine.dist import get_dist_info
from torch.utils.data import Sampler

from clipadapt.registry import DATA_SAMPLERS

__all__ = ["ClusterBatchSampler", "load_labels"]


def load_labels(labels: str | os.PathLike[str] | Sequence[int] | np.ndarray) -> np.ndarray:
    """Integer labels [N] from a ``.npy`` / ``.txt`` file (one per line) or a sequence."""
    if isinstance(labels, (str, os.PathLike)):
        path = Path(labels)
        if not path.is_file():
            raise FileNotFoundError(f"cluster labels file not found: {path}")
        array = np.load(path) if path.suffix == ".npy" else np.loadtxt(path, dtype=np.int64, ndmin=1)
    else:
        array = np.asarray(labels)
    if array.ndim != 1 or not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"cluster labels must be a 1-D integer array, got shape {array.shape} of {array.dtype}")
    return array.astype(np.int64)


REMAINDERS = ("drop", "pool")
ORDERS = ("round_robin", "shuffle")


@DATA_SAMPLERS.register_module()
class ClusterBatchSampler(Sampler[list[int]]):
    """Every global batch is drawn from one cluster, so its in-batch negatives are hard ones.

    CLIP-MoE's multistage contrastive learning (``MCL_batch_sampler_DDP``): each global batch (all
    ranks together) holds samples of one pseudo-label. Each epoch, every cluster is shuffled and cut
    into full global batches. The defaults are the original's rules:

    - ``remainder='drop'``: what is left of each cluster (fewer than a global batch) is dropped, and
      so is every cluster smaller than a global batch;
    - ``order='round_robin'``: clusters take turns in ascending label order, one batch each, skipping
      the clusters that have run out.

    ``remainder='pool'`` instead pools the leftovers in label order and cuts them again (full batches
    that mix neighbouring labels; with DMU's hierarchical labels, ``parent * 9 + child``, neighbours
    share their parent cluster), so every sample appears once per epoch: small data sets, whose
    clusters are mostly smaller than a batch, need it. ``order='shuffle'`` serves the batches in a
    random order. Each rank takes its slice of every global batch.

    Use as the ``batch_sampler`` of a data loader config (MMEngine passes ``sampler`` and
    ``batch_size``)::

        train_dataloader = dict(batch_size=64, sampler=dict(type="DefaultSampler", shuffle=True),
                                batch_sampler=dict(type="ClusterBatchSampler", labels="labels.npy"), ...)

    Args:
        sampler: The loader's sampler; only its ``dataset`` (for the length check), ``seed`` and
            ``epoch`` are used, so every rank draws the same global batches.
        batch_size: Samples per rank and batch.
        labels: One integer label per data set index: a ``.npy`` / ``.txt`` file or a sequence.
        seed: Shuffling seed; None = the sampler's seed (or 0).
        drop_last: With ``remainder='pool'``, drop the last pooled batch when it is not full.
        remainder: ``'drop'`` (the original) or ``'pool'``.
        order: ``'round_robin'`` (the original) or ``'shuffle'``.
    """

    def __init__(
        self,
        sampler: Any,
        batch_size: int,
        labels: str | os.PathLike[str] | Sequence[int],
        seed: int | None = None,
        drop_last: bool = False,
        remainder: str = "drop",
        order: str = "round_robin",
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"ClusterBatchSampler batch_size must be >= 1, got {batch_size}")
        if remainder not in REMAINDERS:
            raise ValueError(f"ClusterBatchSampler remainder must be one of {REMAINDERS}, got {remainder!r}")
        if order not in ORDERS:
            raise ValueError(f"ClusterBatchSampler order must be one of {ORDERS}, got {order!r}")
        self.sampler = sampler
        self.batch_size = batch_size
        self.labels = load_labels(labels)
        dataset = getattr(sampler, "dataset", None)
        if dataset is not None and len(dataset) != len(self.labels):
            source = labels if isinstance(labels, (str, os.PathLike)) else "the given labels"
            raise ValueError(
                f"ClusterBatchSampler: {source} holds {len(self.labels)} labels but the data set has {len(dataset)} "
                "samples (labels must be computed on this very data set, in index order)"
            )
        self.seed = int(seed if seed is not None else getattr(sampler, "seed", 0) or 0)
        self.drop_last = drop_last
        self.remainder, self.order = remainder, order
        self.rank, self.world_size = get_dist_info()
        self._epoch = 0
        if len(self) == 0:
            raise ValueError(
                f"ClusterBatchSampler: no cluster holds a global batch of {batch_size * self.world_size} samples "
                f"(largest cluster: {int(np.unique(self.labels, return_counts=True)[1].max(initial=0))}); "
                "use remainder='pool', a smaller batch or fewer clusters"
            )

    def set_epoch(self, epoch: int) -> None:
        self._epoch = epoch

    @property
    def epoch(self) -> int:
        return int(getattr(self.sampler, "epoch", self._epoch))

    def global_batches(self, epoch: int) -> list[np.ndarray]:
        """The global batches (index arrays) of ``epoch``, in the order they are served."""
        rng = np.random.default_rng([self.seed, epoch])
        size = self.batch_size * self.world_size
        per_cluster, rest = [], []
        for label in np.unique(self.labels):  # ascending label order
            members = rng.permutation(np.flatnonzero(self.labels == label))
            full = len(members) // size * size
            per_cluster.append(np.split(members[:full], full // size) if full else [])
            rest.append(members[full:])
        if self.order == "round_robin":  # one batch of each cluster in turn, skipping exhausted ones
            rounds = max((len(b) for b in per_cluster), default=0)
            batches = [b[r] for r in range(rounds) for b in per_cluster if r < len(b)]
        else:
            batches = [batch for b in per_cluster for batch in b]
        if self.remainder == "pool":
            pooled = np.concatenate(rest) if rest else np.zeros(0, dtype=np.int64)
            batches += [pooled[i : i + size] for i in range(0, len(pooled), size)]
            if self.drop_last and batches and len(batches[-1]) < size:
                batches = batches[:-1]
        if self.order == "shuffle":
            batches = [batches[i] for i in rng.permutation(len(batches))]
        return batches

    def __iter__(self) -> Iterator[list[int]]:
        for batch in self.global_batches(self.epoch):
            yield np.array_split(batch, self.world_size)[self.rank].tolist()

    def __len__(self) -> int:
        size = self.batch_size * self.world_size
        counts = np.unique(self.labels, return_counts=True)[1]
        full = int((counts // size).sum())
        if self.remainder == "drop":
            return full
        rest = int((counts % size).sum())
        pooled = rest // size if self.drop_last else -(-rest // size)
        return full + pooled
