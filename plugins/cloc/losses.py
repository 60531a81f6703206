"""CLOC's region losses: region-caption InfoNCE without near-duplicate negatives, and box grounding."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from clipadapt.tasks.region_losses import region_contrastive_loss

__all__ = ["cloc_region_loss", "duplicate_negatives", "grounding_loss"]


def duplicate_negatives(texts: torch.Tensor, threshold: float = 0.9) -> torch.Tensor:
    """``[N, N]`` bool: pairs whose captions are more similar than ``threshold`` (computed without gradient).

    Two regions described alike ("a red circle" twice in a batch) are not negatives of each other;
    CLOC leaves such pairs out of the contrastive softmax.
    """
    with torch.no_grad():
        return (texts @ texts.t()).float() > threshold


def cloc_region_loss(
    regions: torch.Tensor, texts: torch.Tensor, logit_scale: torch.Tensor, threshold: float = 0.9
) -> torch.Tensor:
    """Symmetric InfoNCE over every region and region caption of the batch, ignoring near-duplicate negatives.

    Args:
        regions: ``[N, D]`` normalised region embeddings.
        texts: ``[N, D]`` normalised caption embeddings (row ``i`` describes region ``i``).
        logit_scale: Scalar.
        threshold: Caption similarity above which a negative is ignored (0.9).
    """
    return region_contrastive_loss(regions, texts, logit_scale, ignore=duplicate_negatives(texts, threshold))


def grounding_loss(predicted: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """L2 between predicted and true normalised xyxy boxes ``[N, 4]``: mean over boxes of the summed squares."""
    if predicted.shape[0] == 0:
        return predicted.sum() * 0.0
    return F.mse_loss(predicted.float(), target.float(), reduction="none").sum(dim=1).mean()
