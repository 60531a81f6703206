"""The region-text losses of FG-CLIP / FG-CLIP 2, as plain functions of feature tensors.

Every feature argument is L2-normalised. Definitions (``s`` = a learnable logit scale, already
exponentiated; ``r`` region features, ``t`` their phrase features):

- :func:`region_contrastive_loss`: symmetric cross-entropy of ``s * r @ t.T`` with the matching
  pairs on the diagonal, over every box of the batch; optionally some negatives are ignored (CLOC).
- :func:`hard_negative_loss`: per box, a (1 + k)-way cross-entropy of ``s * r . [t_pos, t_neg_1..k]``
  with target 0; rows may have different ``k`` (padding is masked).
- :func:`batch_hard_loss`: FG-CLIP 2's cross-entropy of each box against every positive and negative
  phrase of the batch.
- :func:`cmr_loss`: FG-CLIP 2's hinge ``relu(tau + s_neg - s_pos)`` with ``tau = mean(s_pos) -
  mean(s_neg)`` (no gradient, averaged over ranks, clamped to [0, 10]).
- :func:`tic_loss`: FG-CLIP 2's textual intra-modal contrastive loss over the phrases.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from mmengine import dist

from .contrastive import clip_loss

__all__ = ["batch_hard_loss", "cmr_loss", "hard_negative_loss", "region_contrastive_loss", "tic_loss"]


def region_contrastive_loss(
    regions: torch.Tensor, texts: torch.Tensor, logit_scale: torch.Tensor, ignore: torch.Tensor | None = None
) -> torch.Tensor:
    """Symmetric InfoNCE over ``N`` region-phrase pairs (row ``i`` of each is a pair): :func:`clip_loss`.

    Args:
        regions: ``[N, D]`` region features.
        texts: ``[N, D]`` phrase features.
        logit_scale: Scalar, multiplies the cosine similarities.
        ignore: Optional ``[N, N]`` bool, True where a *negative* pair is left out of both softmaxes
            (the diagonal is never ignored).
    """
    return clip_loss(regions, texts, logit_scale, ignore=ignore)


def hard_negative_loss(
    regions: torch.Tensor, candidates: torch.Tensor, valid: torch.Tensor, logit_scale: torch.Tensor
) -> torch.Tensor:
    """(1 + k)-way cross-entropy: each region against its phrase (column 0) and its hard negatives.

    Args:
        regions: ``[N, D]``.
        candidates: ``[N, 1 + K, D]``: the phrase, then up to ``K`` negatives (padding anywhere after 0).
        valid: ``[N, 1 + K]`` bool, False on padding; column 0 must be True.
        logit_scale: Scalar.

    Rows without any valid negative carry no signal and are left out; with none left the loss is 0.
    """
    logits = (logit_scale * torch.einsum("nd,nkd->nk", regions, candidates)).float()
    rows = valid[:, 1:].any(dim=1)
    if not rows.any():
        return logits.sum() * 0.0
    logits = logits.masked_fill(~valid, float("-inf"))[rows]
    return F.cross_entropy(logits, logits.new_zeros(logits.shape[0], dtype=torch.long))


def batch_hard_loss(
    regions: torch.Tensor, texts: torch.Tensor, targets: torch.Tensor, logit_scale: torch.Tensor
) -> torch.Tensor:
    """Cross-entropy of each region against every phrase of the batch, positives and negatives alike.

    Args:
        regions: ``[N, D]``.
        texts: ``[M, D]``: the distinct phrases of the batch (every box's phrase and negatives).
        targets: ``[N]``: the row of ``texts`` that is each region's phrase.
        logit_scale: Scalar.
    """
    logits = (logit_scale * regions @ texts.t()).float()
    return F.cross_entropy(logits, targets)


def cmr_loss(positive: torch.Tensor, negatives: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """FG-CLIP 2's cross-modal rank hinge ``mean relu(tau + s_neg - s_pos)`` over the valid negatives.

    ``tau`` is the batch's mean positive minus mean negative score (averaged over ranks, without
    gradient, clamped to [0, 10]): each negative must trail its positive by the current average margin.

    Args:
        positive: ``[N]`` scaled scores of each region with its phrase.
        negatives: ``[N, K]`` scaled scores with its hard negatives.
        valid: ``[N, K]`` bool, False on padding.
    """
    if not valid.any():
        return negatives.sum() * 0.0
    with torch.no_grad():
        pos, neg = positive.float(), negatives.float()[valid]
        sums = torch.stack([pos.sum(), neg.sum(), pos.new_tensor(pos.numel()), pos.new_tensor(neg.numel())])
        if dist.get_world_size() > 1:
            dist.all_reduce(sums, op="sum")
        tau = (sums[0] / sums[2] - sums[1] / sums[3]).clamp(0.0, 10.0)
    hinge = F.relu(tau + negatives.float() - positive.float()[:, None])
    return hinge[valid].mean()


def tic_loss(texts: torch.Tensor, topk: int = 10, duplicate_threshold: float = 0.95) -> torch.Tensor:
    """Textual intra-modal contrastive loss (FG-CLIP 2): push each phrase away from its nearest phrases.

    ``S = t @ t.T``; the diagonal and entries above ``duplicate_threshold`` (near-duplicate phrases)
    are set to 0; ``L = mean_i log sum_j exp(v_ij)`` over the ``topk`` largest ``v_i`` of each row
    (fewer when the batch has fewer other phrases). No temperature, as in FG-CLIP 2.

    Args:
        texts: ``[N, D]`` phrase features.
        topk: Neighbours per phrase (10).
        duplicate_threshold: Similarity above which a pair counts as the same phrase (0.95).
    """
    n = texts.shape[0]
    if n < 2:
        return texts.sum() * 0.0
    sim = (texts @ texts.t()).float()
    drop = torch.eye(n, dtype=torch.bool, device=sim.device) | (sim > duplicate_threshold)
    sim = sim.masked_fill(drop, 0.0)
    values = sim.topk(min(topk, n - 1), dim=1).values
    return torch.logsumexp(values, dim=1).mean()
