"""Diversified Multiplet Upcycling (DMU): pseudo-labels by k-means, and experts from the stage MLPs.

CLIP-MoE's multistage contrastive learning (``train/train_mcl.py``, ``clipmoe.py::initMoE_MCL``):
stage 0 is the base CLIP; stage s >= 1 fine-tunes the MLPs of a fresh copy of the base with batches
drawn from one pseudo-label cluster each; after every stage the image and the text embeddings of the
training set are clustered (3 x 3 k-means) and the labels refined, ``labels * 9 + 3 * text + image``
(9 -> 81 -> 729 groups). Expert j of every MoE layer is then the MLP of stage j.

The training itself is the recipe's (``recipe.py``, run by ``tools/dmu.py``); this module holds the two
model-side steps it needs.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from clipadapt.adapter import adapter_metadata, read_adapter
from clipadapt.models import CLIP
from clipadapt.models.checkpoint import CheckpointMismatchError

from .plugin import MoEUpcycle

__all__ = ["StageMismatchError", "load_stage_experts", "refine_labels"]


class StageMismatchError(CheckpointMismatchError):
    """A stage checkpoint does not belong to this MoE: another base, another model, missing MLPs."""


def _moe_plugin(clip: CLIP) -> MoEUpcycle:
    found = [p for p in clip.plugins.values() if isinstance(p, MoEUpcycle)]
    if not found:
        raise ValueError(f"the model carries no MoEUpcycle plugin (plugins: {list(clip.plugins)})")
    return found[0]


def canonical_json(value: Any) -> str:
    """``value`` as JSON with sorted keys: equal settings give equal text (fingerprints, stage checks)."""
    return json.dumps(value, sort_keys=True, default=str)


def _check_stage_base(clip: CLIP, meta: dict[str, Any], path: Path) -> None:
    """The stage must come from the same base weights (sha256) and the same model config as the MoE."""
    stage_base, own_base = meta.get("base") or {}, clip.base_weights or {}
    if not stage_base.get("sha256") or not own_base.get("sha256"):
        raise StageMismatchError(
            f"stage checkpoint {path} or the MoE model has no recorded pretrained base weights "
            f"(stage: {stage_base.get('path')}, MoE: {own_base.get('path')}); DMU upcycles a pretrained base CLIP"
        )
    if stage_base["sha256"] != own_base["sha256"]:
        raise StageMismatchError(
            f"stage checkpoint {path} was fine-tuned from base weights {stage_base.get('path')} "
            f"(sha256 {stage_base['sha256'][:12]}...), but the MoE is built on {own_base.get('path')} "
            f"(sha256 {own_base['sha256'][:12]}...)"
        )
    own_model = adapter_metadata(clip)["model"]
    if canonical_json(meta.get("model")) != canonical_json(own_model):
        raise StageMismatchError(
            f"stage checkpoint {path} is of model {(meta.get('model') or {}).get('name')!r}, "
            f"not the MoE's {own_model.get('name')!r} (configs differ)"
        )


def load_stage_experts(clip: CLIP, stages: Sequence[str | os.PathLike[str] | None]) -> None:
    """Make expert ``j`` of every MoE layer the MLP of stage ``j``'s adapter checkpoint.

    Args:
        clip: A CLIP with an attached :class:`MoEUpcycle` (experts are still copies of the base MLP).
        stages: One adapter file per expert (``clipadapt.save_adapter`` of an ``MLPFineTune`` model);
            None keeps the base MLP (stage 0).

    Raises:
        StageMismatchError: a stage was trained from other base weights or another model, or lacks the
            MLP of an upcycled block, or its shapes differ.
    """
    plugin = _moe_plugin(clip)
    if len(stages) != plugin.num_experts:
        raise ValueError(f"{len(stages)} stage checkpoints given for {plugin.num_experts} experts")
    for j, stage in enumerate(stages):
        if stage is None:
            continue
        path = Path(stage)
        meta, state = read_adapter(path)
        _check_stage_base(clip, meta, path)
        for name in plugin.module_names():
            expert = clip.get_submodule(name).experts[j]
            own = expert.state_dict()
            missing = [f"{name}.{k}" for k in own if f"{name}.{k}" not in state]
            if missing:
                raise StageMismatchError(
                    f"stage checkpoint {path} lacks {missing[:3]}{' ...' if len(missing) > 3 else ''}: "
                    "its MLPFineTune did not train every block that MoEUpcycle upcycles"
                )
            shapes = [f"{name}.{k}" for k, v in own.items() if state[f"{name}.{k}"].shape != v.shape]
            if shapes:
                raise StageMismatchError(f"stage checkpoint {path}: shapes differ for {shapes[:3]}")
            with torch.no_grad():
                expert.load_state_dict({k: state[f"{name}.{k}"] for k in own})


def refine_labels(
    previous: np.ndarray | None,
    image_features: np.ndarray,
    text_features: np.ndarray,
    image_clusters: int = 3,
    text_clusters: int = 3,
    seed: int = 0,
    batch_size: int = 1024,
    max_iter: int = 100,
    tol: float = 0.0,
    n_init: int | str = 3,
) -> np.ndarray:
    """One DMU re-clustering: ``previous * (I * T) + text_cluster * I + image_cluster``.

    k-means is scikit-learn's ``MiniBatchKMeans`` (as the original's ``cluster.ipynb``), on the
    L2-normalised embeddings of the whole training set, image and text separately.

    Args:
        previous: Labels [N] of the earlier stages (None at stage 0).
        image_features: [N, D] normalised image embeddings under the stage's model.
        text_features: [N, D] normalised text embeddings.
        image_clusters: I (3 in the paper).
        text_clusters: T (3 in the paper).
        seed: ``random_state`` of both k-means.
        batch_size: Mini-batch size of k-means, capped at N (the original: 1e6, i.e. the whole set).
        max_iter: Passes over the data (the original: 500; scikit-learn's default: 100).
        tol: Early stop on the centres' change (the original: 1e-5; scikit-learn's default: 0.0).
        n_init: Initialisations, or ``'auto'`` (the original; scikit-learn picks 3 for k-means++).

    Returns:
        Labels [N] (int64) in ``[0, (I*T)^(stage+1))``.
    """
    from sklearn.cluster import MiniBatchKMeans

    n = image_features.shape[0]
    if text_features.shape[0] != n or (previous is not None and previous.shape[0] != n):
        raise ValueError(
            f"refine_labels: {n} image, {text_features.shape[0]} text features and "
            f"{None if previous is None else previous.shape[0]} previous labels must agree"
        )
    if n < max(image_clusters, text_clusters):
        raise ValueError(f"refine_labels: {n} samples cannot form {max(image_clusters, text_clusters)} clusters")

    def kmeans(features: np.ndarray, k: int) -> np.ndarray:
        batch = min(int(batch_size), n)
        model = MiniBatchKMeans(
            n_clusters=k, random_state=seed, batch_size=batch, max_iter=max_iter, tol=tol, n_init=n_init
        )
        return model.fit_predict(np.asarray(features, dtype=np.float32)).astype(np.int64)

    fine = kmeans(text_features, text_clusters) * image_clusters + kmeans(image_features, image_clusters)
    base = np.zeros(n, dtype=np.int64) if previous is None else previous.astype(np.int64)
    return base * (image_clusters * text_clusters) + fine
