"""MaPLe: Multi-modal Prompt Learning (Khattak et al., CVPR 2023, https://arxiv.org/abs/2210.03117)."""

from .plugin import MaPLe

__all__ = ["MaPLe"]
