"""ClusterBatchSampler: the original's rules by default (remainders and small clusters dropped, clusters
in turn), the pooled variant (every sample once), DDP slices."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from mmengine.dataset import DefaultSampler

from clipadapt.datasets import ClusterBatchSampler
from clipadapt.registry import DATA_SAMPLERS


class _Data:
    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n


LABELS = np.array([0] * 20 + [1] * 9 + [2] * 3 + [5] * 8)  # 40 samples, uneven clusters


def _sampler(batch_size: int = 8, labels=LABELS, **kwargs) -> ClusterBatchSampler:
    kwargs = dict(remainder="pool", order="shuffle") | kwargs
    return ClusterBatchSampler(DefaultSampler(_Data(len(labels)), seed=3), batch_size, labels, **kwargs)


def _original_order(labels: np.ndarray, batch_size: int, world_size: int) -> list[int]:
    """The cluster of each batch that CLIP-MoE's ``MCL_batch_sampler_DDP`` serves, from its rules.

    Each cluster keeps ``len // world // batch * batch * world`` samples (the rest, and clusters smaller
    than a global batch, are dropped); batches are then taken from cluster 0, 1, ... in turn, a cluster
    with nothing left being skipped, until every cluster is empty.
    """
    cluster_num = int(labels.max()) + 1
    left = {c: int((labels == c).sum()) // world_size // batch_size * batch_size for c in range(cluster_num)}
    order, modulo = [], 0
    while any(left.values()):
        if left[modulo] > 0:
            left[modulo] -= batch_size  # one rank's batch (every rank does the same)
            order.append(modulo)
        modulo = (modulo + 1) % cluster_num
    return order


@pytest.mark.parametrize("world_size", [1, 2])
def test_the_original_rules_by_default(monkeypatch, world_size) -> None:
    import clipadapt.datasets.samplers as module

    labels = np.array([0] * 37 + [1] * 9 + [2] * 3 + [5] * 16 + [3] * 24)
    for rank in range(world_size):
        monkeypatch.setattr(module, "get_dist_info", lambda rank=rank: (rank, world_size))
        sampler = ClusterBatchSampler(DefaultSampler(_Data(len(labels)), seed=3), 4, labels)
        batches = list(sampler)
        assert len(batches) == len(sampler)
        assert all(len(b) == 4 and len(set(labels[b])) == 1 for b in batches)  # no mixed batch
        assert [int(labels[b[0]]) for b in batches] == _original_order(labels, 4, world_size)
        used = np.bincount(labels[[i for b in batches for i in b]], minlength=6)
        size = 4 * world_size  # each cluster's remainder is dropped, as is cluster 2 (3 < a global batch)
        expected = np.bincount(labels, minlength=6) // size * size // world_size
        assert used.tolist() == expected.tolist()


def test_no_cluster_holding_a_global_batch_is_an_error() -> None:
    with pytest.raises(ValueError, match="no cluster holds a global batch of 32"):
        ClusterBatchSampler(DefaultSampler(_Data(len(LABELS))), 32, LABELS)


def test_full_batches_come_from_one_cluster_and_the_rest_is_pooled_in_label_order() -> None:
    sampler = _sampler()
    batches = list(sampler)
    assert len(batches) == len(sampler) == 5  # 2 + 1 + 0 + 1 full, then 4 + 1 + 3 + 0 = 8 pooled
    pure = [b for b in batches if len(set(LABELS[b])) == 1]
    assert len(pure) == 4
    mixed = [b for b in batches if len(set(LABELS[b])) > 1]
    assert len(mixed) == 1 and sorted(LABELS[mixed[0]].tolist()) == [0] * 4 + [1] + [2] * 3
    assert sorted(i for b in batches for i in b) == list(range(40))  # each sample exactly once
    assert all(len(b) == 8 for b in batches)


def test_epochs_reshuffle_deterministically() -> None:
    sampler = _sampler()
    first = list(sampler)
    assert list(_sampler()) == first  # same seed and epoch: same batches
    sampler.sampler.set_epoch(1)  # what MMEngine's DistSamplerSeedHook does
    second = list(sampler)
    assert second != first and sorted(map(sorted, second)) != sorted(map(sorted, first))


def test_drop_last_drops_a_short_pooled_batch() -> None:
    sampler = _sampler(batch_size=6, drop_last=True)
    batches = list(sampler)
    assert len(batches) == len(sampler) and all(len(b) == 6 for b in batches)
    kept = sum(len(b) for b in batches)
    assert kept == 36  # 40 = 6 full batches + 4 left over, dropped


def test_ranks_take_disjoint_slices_of_the_same_global_batches(monkeypatch) -> None:
    import clipadapt.datasets.samplers as module

    per_rank = []
    for rank in range(2):
        monkeypatch.setattr(module, "get_dist_info", lambda rank=rank: (rank, 2))
        per_rank.append(list(_sampler(batch_size=4)))
    assert len(per_rank[0]) == len(per_rank[1]) == 5
    assert all(not set(a) & set(b) and len(a) == len(b) == 4 for a, b in zip(*per_rank))
    pure = sum(len(set(LABELS[a + b])) == 1 for a, b in zip(*per_rank))
    assert pure == 4  # the global batch (8) is what comes from one cluster


def test_labels_load_from_a_file_and_must_fit_the_data(tmp_path: Path) -> None:
    path = tmp_path / "labels.npy"
    np.save(path, LABELS)
    built = DATA_SAMPLERS.build(
        dict(type="ClusterBatchSampler", labels=str(path)),
        default_args=dict(sampler=DefaultSampler(_Data(40)), batch_size=8),
    )
    assert len(list(built)) == 4  # the original rules: 2 + 1 + 0 + 1 full batches, remainders dropped
    with pytest.raises(ValueError, match=r"labels.npy holds 40 labels but the data set has 41 samples"):
        ClusterBatchSampler(DefaultSampler(_Data(41)), 8, str(path))
    with pytest.raises(FileNotFoundError, match="cluster labels file not found"):
        ClusterBatchSampler(DefaultSampler(_Data(40)), 8, str(tmp_path / "missing.npy"))
    with pytest.raises(ValueError, match="1-D integer array"):
        ClusterBatchSampler(DefaultSampler(_Data(40)), 8, np.zeros((40, 2)))
