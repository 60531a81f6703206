"""CoCoOp: Conditional Context Optimization (Zhou et al., CVPR 2022, https://arxiv.org/abs/2203.05557)."""

from .plugin import CoCoOp

__all__ = ["CoCoOp"]
