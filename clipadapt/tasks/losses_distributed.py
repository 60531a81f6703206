"""The contrastive loss of a large global batch, with each rank's logits ``local x global`` instead of ``global^2``.

:func:`clip_loss` over features gathered by :func:`gather_features` makes every rank build the whole
``N x N`` logits of the global batch ``N`` (and their softmax, twice): 64 MiB per copy at ``N = 4,096``,
4 GiB at ``N = 32,768``. Here each rank keeps only its own rows. Rank ``r``, holding pairs
``o_r .. o_r + B_r - 1`` of the global batch, computes

- the image-to-text cross-entropy of its ``B_r`` images against all ``N`` texts (logits ``[B_r, N]``),
- the text-to-image cross-entropy of its ``B_r`` texts against all ``N`` images (logits ``[B_r, N]``),

both summed over rows and divided by ``2 N``; the sum of these over ranks is exactly :func:`clip_loss`
of the global batch (open_clip's ``local_loss=True, gather_with_grad=True``). The features of other
ranks enter through a gather whose backward sums every rank's gradient for them and keeps the own rows,
so each rank ends with the gradient of the *global* loss with respect to its own features. The data
parallel wrapper (DDP, or the sharded one) then averages the ranks' parameter gradients; the loss is
therefore multiplied by the world size for backward, so that the average is the gradient of the global
loss, the same convention as :func:`gather_features`. Its *value* is the global loss on every rank
(one scalar all-reduce), so the logs equal those of one process.

``chunk_size`` bounds memory further: the rows are taken ``chunk_size`` at a time, each chunk under
activation checkpointing, so only one ``[chunk_size, N]`` block of logits lives at a time, in the
forward and the backward (at the cost of computing the logits twice).

Ranks may hold different batch sizes (padded for the collective, trimmed after).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as torch_dist
import torch.nn.functional as F
from mmengine import dist
from torch.utils.checkpoint import checkpoint

__all__ = ["gather_with_grad", "large_batch_clip_loss", "local_clip_loss_sum"]


class _GatherWithGrad(torch.autograd.Function):
    """All-gather of ``[B_rank, D]`` rows (sizes may differ); backward sums the ranks' gradients, keeps own rows."""

    @staticmethod
    def forward(ctx: Any, features: torch.Tensor, sizes: list[int], rank: int) -> torch.Tensor:
        ctx.sizes, ctx.rank = sizes, rank
        padded = features.new_zeros(max(sizes), *features.shape[1:])
        padded[: features.shape[0]] = features
        parts = [torch.empty_like(padded) for _ in sizes]
        torch_dist.all_gather(parts, padded.contiguous())
        return torch.cat([p[:n] for p, n in zip(parts, sizes)])  # [N, D]

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        grad = grad.contiguous()
        torch_dist.all_reduce(grad)  # every rank's loss depends on these rows: sum their gradients
        start = sum(ctx.sizes[: ctx.rank])
        return grad[start : start + ctx.sizes[ctx.rank]], None, None


def _sizes(features: torch.Tensor) -> list[int]:
    sizes = dist.all_gather(torch.tensor([features.shape[0]], device=features.device))
    return [int(s.item()) for s in sizes]


def gather_with_grad(features: torch.Tensor, sizes: list[int] | None = None) -> torch.Tensor:
    """``features [B_rank, D]`` of every rank in rank order, differentiable through every part.

    Backward: the gradient of the gathered tensor is summed over ranks and the rank's own rows are
    returned, so a loss summed over ranks gets its exact gradient. Without a process group this is
    ``features`` itself.
    """
    if dist.get_world_size() == 1:
        return features
    return _GatherWithGrad.apply(features, sizes or _sizes(features), dist.get_rank())


def _rows_loss(
    rows: torch.Tensor,
    columns: torch.Tensor,
    logit_scale: torch.Tensor,
    labels: torch.Tensor,
    ignore: torch.Tensor | None,
    label_smoothing: float,
) -> torch.Tensor:
    """Summed cross-entropy of ``rows [C, D]`` against ``columns [N, D]``; row ``k``'s match is ``labels[k]``."""
    logits = (logit_scale * rows @ columns.t()).float()  # [C, N]
    if ignore is not None:
        own = F.one_hot(labels, logits.shape[1]).bool()  # the matching pair is never ignored
        logits = logits.masked_fill(ignore & ~own, float("-inf"))
    return F.cross_entropy(logits, labels, label_smoothing=label_smoothing, reduction="sum")


def _direction(
    rows: torch.Tensor,
    columns: torch.Tensor,
    logit_scale: torch.Tensor,
    offset: int,
    ignore: torch.Tensor | None,
    label_smoothing: float,
    chunk_size: int | None,
) -> torch.Tensor:
    labels = torch.arange(offset, offset + rows.shape[0], device=rows.device)
    step = chunk_size or rows.shape[0]
    total = rows.new_zeros((), dtype=torch.float32)
    for start in range(0, rows.shape[0], max(step, 1)):
        part = slice(start, start + step)
        mask = ignore[part] if ignore is not None else None
        args = (rows[part], columns, logit_scale, labels[part], mask, label_smoothing)
        if chunk_size and torch.is_grad_enabled():  # recompute this block of logits in backward
            total = total + checkpoint(_rows_loss, *args, use_reentrant=False)
        else:
            total = total + _rows_loss(*args)
    return total


def local_clip_loss_sum(
    image_features: torch.Tensor,
    text_features: torch.Tensor,
    all_image_features: torch.Tensor,
    all_text_features: torch.Tensor,
    offset: int,
    logit_scale: torch.Tensor,
    ignore: torch.Tensor | None = None,
    label_smoothing: float = 0.0,
    chunk_size: int | None = None,
) -> torch.Tensor:
    """One rank's share of :func:`clip_loss`, *summed* over its rows (both directions); no communication.

    Divided by ``2 N`` and summed over ranks, it is :func:`clip_loss` of the global batch.

    Args:
        image_features: ``[B, D]``, this rank's pairs, rows ``offset .. offset + B - 1`` of the global batch.
        text_features: ``[B, D]``.
        all_image_features: ``[N, D]``, every rank's (this rank's rows included).
        all_text_features: ``[N, D]``.
        offset: Index of this rank's first pair in the global batch.
        logit_scale: Scalar, multiplies the cosine similarities.
        ignore: Optional ``[N, N]`` bool of the global batch, True where a negative (image ``i``, text
            ``j``) is left out of both softmaxes, as in :func:`clip_loss`.
        label_smoothing: Of both cross-entropies.
        chunk_size: Rows per block of logits, recomputed in backward; None: all rows at once.
    """
    local = slice(offset, offset + image_features.shape[0])
    image_ignore = ignore[local] if ignore is not None else None  # [B, N]: own images x all texts
    text_ignore = ignore[:, local].t() if ignore is not None else None  # [B, N]: own texts x all images
    loss = _direction(image_features, all_text_features, logit_scale, offset, image_ignore, label_smoothing, chunk_size)
    return loss + _direction(
        text_features, all_image_features, logit_scale, offset, text_ignore, label_smoothing, chunk_size
    )


def large_batch_clip_loss(
    image_features: torch.Tensor,
    text_features: torch.Tensor,
    logit_scale: torch.Tensor,
    ignore: torch.Tensor | None = None,
    label_smoothing: float = 0.0,
    chunk_size: int | None = None,
) -> torch.Tensor:
    """:func:`clip_loss` of the batch gathered over ranks, with logits ``[B_rank, N]`` on each rank.

    Takes each rank's *own* features (not gathered ones). Returns the global loss (the same value on
    every rank); its gradient, once the data-parallel wrapper has averaged the ranks', is the gradient
    of the global loss (see the module docstring). Without a process group it is :func:`clip_loss`.

    Args:
        image_features: ``[B_rank, D]``, normalised.
        text_features: ``[B_rank, D]``, normalised.
        logit_scale: Scalar.
        ignore: Optional ``[N, N]`` bool over the *global* batch (see :func:`clip_loss`).
        label_smoothing: Of both cross-entropies.
        chunk_size: Bound the logits to ``[chunk_size, N]`` blocks, recomputed in backward.
    """
    if chunk_size is not None and chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive number of rows or None, got {chunk_size}")
    world = dist.get_world_size()
    sizes = _sizes(image_features) if world > 1 else [image_features.shape[0]]
    rank = dist.get_rank() if world > 1 else 0
    offset, total = sum(sizes[:rank]), sum(sizes)
    if ignore is not None and tuple(ignore.shape) != (total, total):
        raise ValueError(f"ignore must be [N, N] over the global batch of {total}, got {tuple(ignore.shape)}")
    all_images = gather_with_grad(image_features, sizes)
    all_texts = gather_with_grad(text_features, sizes)
    share = local_clip_loss_sum(
        image_features, text_features, all_images, all_texts, offset, logit_scale, ignore, label_smoothing, chunk_size
    ) / (2 * total)
    if world == 1:
        return share
    value = share.detach().clone()
    torch_dist.all_reduce(value)  # the global loss, for the logs
    return world * share + (value - world * share.detach())
