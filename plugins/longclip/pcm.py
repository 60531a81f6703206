"""Primary component matching (PCM), Long-CLIP's loss: long captions against the full image features, short
captions against the image features reduced to their top principal components over the batch.

As the original (``model_longclip.py``: ``CLIP.PCA`` and ``CLIP.forward``), with ``I``, ``Tl``, ``Ts`` the
normalised image, long-caption and short-caption features of one device's batch::

    mu = I.mean(0); Xc = (I - mu).float(); _, _, Vt = svd(Xc)
    Ic = Xc @ Vt[:k].T @ Vt[:k] + mu              # per device, not re-normalised, gradients flow
    L_long  = (CE(s I Tl_all^T) + CE(s Tl I_all^T)) / 2      # label smoothing 0.1
    L_short = (CE(s Ic Ts_all^T) + CE(s Ts Ic_all^T)) / 2

Here the features of every rank are gathered (only the local part carries gradients) and each rank
computes the loss over the whole gathered batch, as :class:`ImageTextContrastive` does: the same loss
value, and the same gradients once DDP averages them.
"""

from __future__ import annotations

import torch

from clipadapt.tasks.contrastive import clip_loss, gather_features

__all__ = ["contrastive_ce", "min_batch_for", "pcm_losses", "principal_component_reduction"]


def min_batch_for(components: int) -> int:
    """Smallest per-device batch whose PCA reduction can change anything: ``k + 2``.

    The centred batch of ``B`` features has rank at most ``B - 1``; with ``B - 1 <= k`` the top ``k``
    components span all of it and the reduction is the identity (Long-CLIP issue #68).
    """
    return components + 2


def principal_component_reduction(features: torch.Tensor, components: int) -> torch.Tensor:
    """``features [B, D]`` projected onto their top ``components`` principal directions over the batch, plus the mean.

    The SVD runs in float32 (float64 stays) on the centred features; the result is not re-normalised, and
    gradients flow through the SVD (the sign ambiguity of the singular vectors cancels in ``V V^T``).
    """
    if features.dim() != 2:
        raise ValueError(f"features must be [batch, dim], got shape {tuple(features.shape)}")
    dtype = torch.promote_types(features.dtype, torch.float32)  # fp16 / bf16 -> fp32, fp64 stays
    mean = features.mean(dim=0, keepdim=True)  # [1, D]
    centred = (features - mean).to(dtype)
    _, _, vh = torch.linalg.svd(centred, full_matrices=False)  # vh [min(B, D), D]
    top = vh[:components]  # [k, D]
    return centred @ top.t() @ top + mean.to(dtype)


def contrastive_ce(
    rows: torch.Tensor, cols: torch.Tensor, logit_scale: torch.Tensor, label_smoothing: float
) -> torch.Tensor:
    """Symmetric cross-entropy of matching pairs (row ``i`` of each input is one pair), with label smoothing."""
    return clip_loss(rows, cols, logit_scale, label_smoothing=label_smoothing)


def pcm_losses(
    image: torch.Tensor,
    long_text: torch.Tensor,
    short_text: torch.Tensor | None,
    logit_scale: torch.Tensor,
    components: int = 32,
    label_smoothing: float = 0.1,
) -> dict[str, torch.Tensor]:
    """Long-CLIP's two loss terms from one device's normalised features ``[B, D]``.

    Args:
        image: Image features, normalised.
        long_text: Long-caption features, normalised.
        short_text: Short-caption features, normalised; None leaves the short term out.
        logit_scale: ``logit_scale.exp()``.
        components: Principal components kept for the short term (Long-CLIP: 32).
        label_smoothing: Of both cross-entropies (Long-CLIP: 0.1).

    Returns:
        ``{'loss_long': ..., 'loss_short': ...}`` (``loss_short`` only with ``short_text``).
    """
    all_image = gather_features(image)
    losses = {"loss_long": contrastive_ce(all_image, gather_features(long_text), logit_scale, label_smoothing)}
    if short_text is not None:
        reduced = gather_features(principal_component_reduction(image, components))  # PCA per device, then gather
        losses["loss_short"] = contrastive_ce(reduced, gather_features(short_text), logit_scale, label_smoothing)
    return losses
