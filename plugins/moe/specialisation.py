"""Do the experts specialise? Routing entropy, expert usage per data cluster, and distances between experts.

CLIP-MoE exists so that experts learn different things; a table of retrieval scores cannot say whether
they did. For each MoE layer of a trained model, over a data set whose samples carry cluster labels (the
DMU recipe uses its stage-0 k-means clusters of the base CLIP's embeddings, the same for every method):

- ``token_entropy``: the mean entropy of the router's softmax over the experts, divided by ``log E``;
  1 is a router with no preference, 0 one that is certain.
- ``usage``: the share of the top-k slots each expert receives; ``usage_entropy`` is its entropy over
  ``log E`` (1 = balanced load).
- ``cluster_usage``: that share within each cluster [C, E] (rows sum to one).
- ``nmi``: the mutual information between a token's cluster and its first (highest-weight) expert, over
  the entropy of the first expert: 0 when routing ignores the cluster, 1 when the cluster decides it.
  (Over all k slots it could not reach 1: a token's k experts differ.)
- ``expert_distance``: the mean over expert pairs of ``||w_i - w_j|| / mean_i ||w_i||`` (all of an
  expert's parameters, flattened): 0 for identical experts (plain upcycling before training).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import numpy as np
import torch

from .layer import ROUTER_AUX_KEY, RouterRecord, SparseMoE

__all__ = ["RoutingTally", "expert_distance", "layer_names", "specialisation", "task_specialisation"]


def layer_names(layers: Mapping[str, Mapping[int, SparseMoE]]) -> dict[str, list[str]]:
    """``{tower: ['vision.3', ...]}`` in block order: the order a tower records its routing in."""
    return {tower: [f"{tower}.{index}" for index in sorted(blocks)] for tower, blocks in layers.items()}


@torch.no_grad()
def expert_distance(layer: SparseMoE) -> float:
    """Mean pairwise ``||w_i - w_j|| / mean_i ||w_i||`` of the layer's experts (flattened parameters)."""
    flat = torch.stack([torch.cat([p.detach().float().reshape(-1) for p in e.parameters()]) for e in layer.experts])
    scale = flat.norm(dim=1).mean()
    pairs = torch.pdist(flat)  # the E (E - 1) / 2 pairwise distances
    return float(pairs.mean() / scale) if float(scale) > 0 else 0.0


class RoutingTally:
    """Accumulates the routing of MoE layers over batches whose samples carry cluster labels.

    Args:
        names: ``{tower: layer names in block order}`` (:func:`layer_names`).
        num_experts: E.
        num_clusters: C; labels are ``0 .. C-1``.
    """

    def __init__(self, names: Mapping[str, list[str]], num_experts: int, num_clusters: int) -> None:
        self.names = {tower: list(n) for tower, n in names.items()}
        self.num_experts, self.num_clusters = num_experts, num_clusters
        every = [n for tower in self.names.values() for n in tower]
        self.counts = {n: np.zeros((num_clusters, num_experts), dtype=np.int64) for n in every}  # all k slots
        self.first = {n: np.zeros((num_clusters, num_experts), dtype=np.int64) for n in every}  # first choices
        self.entropy = dict.fromkeys(every, 0.0)
        self.tokens = dict.fromkeys(every, 0)

    def add(self, tower: str, aux: Mapping[str, Any], labels: torch.Tensor) -> None:
        """One tower output's router records (``output.aux``), for a batch with cluster ``labels`` [B]."""
        records: list[RouterRecord] = list(aux.get(ROUTER_AUX_KEY) or [])
        names = self.names.get(tower, [])
        if len(records) != len(names):
            raise ValueError(f"{tower}: {len(records)} router records for the MoE layers {names}")
        for name, record in zip(names, records):
            probs = torch.softmax(record.logits.detach().float(), dim=-1)
            self.entropy[name] += float(-(probs * probs.clamp_min(1e-12).log()).sum())
            self.tokens[name] += probs.shape[0]
            cluster = labels.to(record.indices.device)[record.sample_index()]  # [T]
            pairs = cluster[:, None] * self.num_experts + record.indices  # [T, k]: (cluster, expert) of each slot
            self.counts[name] += self._joint(pairs.reshape(-1))
            self.first[name] += self._joint(pairs[:, 0])

    def _joint(self, pairs: torch.Tensor) -> np.ndarray:
        flat = torch.bincount(pairs, minlength=self.num_clusters * self.num_experts)
        return flat.reshape(self.num_clusters, self.num_experts).cpu().numpy()

    def summary(self) -> dict[str, dict[str, Any]]:
        """Per layer: ``token_entropy``, ``usage``, ``usage_entropy``, ``cluster_usage``, ``nmi``."""
        log_e = math.log(self.num_experts)
        out = {}
        for name, counts in self.counts.items():
            if not self.tokens[name]:
                raise ValueError(f"no token was routed through {name}")
            usage = counts.sum(axis=0) / counts.sum()
            first = self.first[name] / self.first[name].sum()  # [C, E]
            share = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
            out[name] = {
                "tokens": self.tokens[name],
                "token_entropy": self.entropy[name] / self.tokens[name] / log_e,
                "usage": usage.tolist(),
                "usage_entropy": _entropy(usage) / log_e,
                "cluster_usage": share.tolist(),
                "cluster_sizes": counts.sum(axis=1).tolist(),
                "nmi": _mutual_information(first) / max(_entropy(first.sum(axis=0)), 1e-12),
            }
        return out


def _entropy(p: np.ndarray) -> float:
    p = p[p > 0]
    return float(-(p * np.log(p)).sum())


def _mutual_information(joint: np.ndarray) -> float:
    rows, cols = joint.sum(axis=1, keepdims=True), joint.sum(axis=0, keepdims=True)
    nz = joint > 0
    return float((joint[nz] * np.log(joint[nz] / (rows @ cols)[nz])).sum())


@torch.no_grad()
def specialisation(
    layers: Mapping[str, Mapping[int, SparseMoE]],
    batches: Iterable[tuple[Mapping[str, Any], torch.Tensor]],
    num_clusters: int,
) -> dict[str, dict[str, Any]]:
    """The statistics of the module docstring for every MoE layer.

    Args:
        layers: The MoE plugin's ``layers`` (``{tower: {block: SparseMoE}}``).
        batches: ``({tower: tower output}, cluster labels [B])`` per batch: the outputs of
            ``clip.forward_image`` / ``clip.forward_text`` with the plugin attached (their ``aux`` holds
            the routing).
        num_clusters: C.

    Returns:
        ``{layer name: statistics}``, each with ``expert_distance`` too.
    """
    num_experts = {layer.num_experts for blocks in layers.values() for layer in blocks.values()}
    if len(num_experts) != 1:
        raise ValueError(f"the MoE layers differ in their number of experts: {sorted(num_experts)}")
    tally = RoutingTally(layer_names(layers), num_experts.pop(), num_clusters)
    for outputs, labels in batches:
        for tower, output in outputs.items():
            tally.add(tower, output.aux, labels)
    stats = tally.summary()
    for tower, blocks in layers.items():
        for index, layer in blocks.items():
            stats[f"{tower}.{index}"]["expert_distance"] = expert_distance(layer)
    return stats


@torch.no_grad()
def task_specialisation(
    task: Any, loader: Iterable[Any], labels: torch.Tensor, num_clusters: int, desc: str = "routing"
) -> dict[str, dict[str, Any]]:
    """:func:`specialisation` of an image-text task (``ImageTextContrastive``) with an MoE plugin attached.

    Args:
        task: The task; its CLIP carries exactly one plugin with MoE ``layers``.
        loader: Batches of images and captions, in the order of ``labels`` (not shuffled).
        labels: The cluster of each sample of the loader [N].
        num_clusters: C.
        desc: The progress bar's label.
    """
    from tqdm import tqdm

    moe = [p for p in task.clip.plugins.values() if hasattr(p, "layers")]
    if len(moe) != 1:
        raise ValueError(f"expected one MoE plugin, the model carries {list(task.clip.plugins)}")
    task.eval()

    def batches() -> Iterator[tuple[dict[str, Any], torch.Tensor]]:
        offset = 0
        for batch in tqdm(loader, desc=desc, leave=False, dynamic_ncols=True):
            data = task.data_preprocessor(batch, False)
            images = data["inputs"]
            text = task.tokenize(list(data["data_samples"]["caption"]))
            outputs = {"vision": task.clip.forward_image(images), "text": task.clip.forward_text(text)}
            yield outputs, labels[offset : offset + images.shape[0]]
            offset += images.shape[0]
        if offset != labels.shape[0]:
            raise ValueError(f"the loader gave {offset} samples for {labels.shape[0]} cluster labels")

    return specialisation(moe[0].layers, batches(), num_clusters)
