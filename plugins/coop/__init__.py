"""CoOp: Context Optimization (Zhou et al., IJCV 2022, https://arxiv.org/abs/2109.01134)."""

from .plugin import CoOp

__all__ = ["CoOp"]
