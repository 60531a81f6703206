"""The region-text losses of FG-CLIP / FG-CLIP 2, as plain functions of feature tensors.

Every feature argument is L2-normalised. Definitions (``s`` = a learnable logit scale, already
exponentiated; ``r`` region features, ``t`` their phrase features):

- :func:`region_contrastive_loss`: symmetric cross-entropy of ``s * r @ t.T`` with the matching
  pairs on the diagonal, over every box of the batch; optionally some negatives are ignored (CLOC).
- :func:`hard_negative_loss`: per box, a (1 + k)-way cross-entropy of ``s * r . [t_pos, t_neg_1..k]``
  with target 0; rows may have different ``k`` (padding is masked).
- :func:`batch_hard_loss`: FG-CLIP 2's batch-wide cross-entropy, in both directions: each box against
  the batch's texts, and each box's phrase against the boxes (:func:`hard_batch_columns` picks
  FG-CLIP 2's columns: the hard boxes' phrases and all their negatives, duplicates kept).
- :func:`cmr_loss`: FG-CLIP 2's hinge ``relu(tau + s_neg - s_pos)``; :func:`cmr_margin` gives ``tau =
  mean(s_pos) - mean(s_neg)`` (no gradient, averaged over ranks, clamped to [0, 10]), which FG-CLIP 2
  applies at the next step.
- :func:`tic_loss`: FG-CLIP 2's textual intra-modal contrastive loss over the phrases.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from mmengine import dist

from .contrastive import clip_loss

__all__ = [
    "batch_hard_loss",
    "cmr_loss",
    "cmr_margin",
    "hard_batch_columns",
    "hard_negative_loss",
    "region_contrastive_loss",
    "tic_loss",
]


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
    regions: torch.Tensor,
    texts: torch.Tensor,
    targets: torch.Tensor,
    logit_scale: torch.Tensor,
    phrases: torch.Tensor | None = None,
) -> torch.Tensor:
    """Batch-wide cross-entropy: each region against ``texts``; with ``phrases``, averaged with the
    reverse direction, each region's phrase against the regions (FG-CLIP 2's
    ``hard_contrastive_total_loss``: ``(CE(r @ T.T) + CE(p @ r.T)) / 2``).

    Args:
        regions: ``[N, D]``.
        texts: ``[M, D]``: the columns (FG-CLIP 2: :func:`hard_batch_columns`).
        targets: ``[N]``: the row of ``texts`` that is each region's phrase.
        logit_scale: Scalar.
        phrases: ``[N, D]``: each region's phrase, for the phrase -> region direction; None: one direction.
    """
    forward = F.cross_entropy((logit_scale * regions @ texts.t()).float(), targets)
    if phrases is None:
        return forward
    labels = torch.arange(regions.shape[0], device=regions.device)
    return (forward + F.cross_entropy((logit_scale * phrases @ regions.t()).float(), labels)) / 2


def hard_batch_columns(
    candidates: torch.Tensor, valid: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """FG-CLIP 2's columns of the batch-wide cross-entropy: boxes with hard negatives only; the columns are
    their phrases, then every one of their negatives, box by box (duplicates kept).

    Args:
        candidates: ``[N, 1 + K, D]``: each box's phrase then its negatives.
        valid: ``[N, 1 + K]`` bool.

    Returns:
        ``rows`` ``[N]`` bool (the hard boxes, H of them), ``texts`` ``[H + n_neg, D]`` and ``targets``
        ``[H]`` (``arange``: the phrases come first).
    """
    rows = valid[:, 1:].any(dim=1)
    hard, hard_valid = candidates[rows], valid[rows]  # [H, 1+K, D], [H, 1+K]
    texts = torch.cat([hard[:, 0], hard[:, 1:][hard_valid[:, 1:]]])
    return rows, texts, torch.arange(hard.shape[0], device=candidates.device)


def cmr_margin(positive: torch.Tensor, negatives: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """``tau`` of the CMR hinge: mean positive minus mean valid negative score, over every rank's boxes,
    without gradient, clamped to [0, 10]. Zero when no negative is valid anywhere."""
    with torch.no_grad():
        pos, neg = positive.float()[valid.any(dim=1)], negatives.float()[valid]
        sums = torch.stack([pos.sum(), neg.sum(), pos.new_tensor(pos.numel()), pos.new_tensor(neg.numel())])
        if dist.get_world_size() > 1:
            dist.all_reduce(sums, op="sum")
        if sums[3] == 0:
            return sums.new_zeros(())
        return (sums[0] / sums[2] - sums[1] / sums[3]).clamp(0.0, 10.0)


def cmr_loss(
    positive: torch.Tensor, negatives: torch.Tensor, valid: torch.Tensor, tau: torch.Tensor | float | None = None
) -> torch.Tensor:
    """FG-CLIP 2's cross-modal rank hinge ``mean relu(tau + s_neg - s_pos)`` over the valid negatives.

    Each negative must trail its positive by the margin ``tau``: the given one (FG-CLIP 2 uses the
    previous step's :func:`cmr_margin`, 0 at the first step), or None for this batch's own.

    Args:
        positive: ``[N]`` scaled scores of each region with its phrase.
        negatives: ``[N, K]`` scaled scores with its hard negatives.
        valid: ``[N, K]`` bool, False on padding.
        tau: The margin; None: :func:`cmr_margin` of these scores.
    """
    if tau is None:
        tau = cmr_margin(positive, negatives, valid)
    if not valid.any():
        return negatives.sum() * 0.0
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
