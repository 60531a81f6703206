"""FusedAttention: one QKV GEMM and ``F.scaled_dot_product_attention``.

The text tower passes ``causal=True`` and SDPA's ``is_causal`` builds no mask tensor. Extra tokens
(prompts) need no special path: the sequence length is whatever the block receives.
"""

from __future__ import annotations

import math
import os
from typing import Final

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

__all__ = ["FusedAttention", "reference_attention", "use_fused_attn"]


def use_fused_attn() -> bool:
    """Whether new attention modules use SDPA; ``CLIPADAPT_FUSED_ATTN=0`` selects the reference path."""
    return os.environ.get("CLIPADAPT_FUSED_ATTN", "1") != "0"


def reference_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool) -> torch.Tensor:
    """Plain softmax attention, the definition SDPA must match. Tensors are [B, H, N, D]."""
    scores = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(q.shape[-1]))  # [B, H, N, N]
    if causal:
        n = q.shape[-2]
        future = torch.ones(n, n, dtype=torch.bool, device=q.device).triu(1)
        scores = scores.masked_fill(future, float("-inf"))
    return scores.softmax(dim=-1) @ v


class FusedAttention(nn.Module):
    """Multi-head self-attention with a fused QKV projection.

    Args:
        dim: Token width.
        num_heads: Number of heads; ``dim`` must divide evenly.
        causal: Each token attends only to itself and earlier tokens (text tower).
        qkv_bias: Bias on the QKV projection (CLIP has one).
    """

    fused_attn: Final[bool]
    causal: Final[bool]

    def __init__(
        self,
        dim: int,
        num_heads: int,
        *,
        causal: bool = False,
        qkv_bias: bool = True,
        device: torch.device | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"attention width {dim} is not divisible by {num_heads} heads")
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.causal = causal
        self.fused_attn = use_fused_attn()
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias, device=device, dtype=dtype)
        self.out_proj = nn.Linear(dim, dim, device=device, dtype=dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: [B, N, C]
        q, k, v = rearrange(self.qkv(x), "b n (three h d) -> three b h n d", three=3, h=self.num_heads)
        if self.fused_attn:
            out = F.scaled_dot_product_attention(q, k, v, is_causal=self.causal)
        else:
            out = reference_attention(q, k, v, self.causal)
        return self.out_proj(rearrange(out, "b h n d -> b n (h d)"))

    def value_path(self, x: torch.Tensor) -> torch.Tensor:
        """The block's attention with query-key interaction removed: ``out_proj(v)``.

        Used for dense features (FG-CLIP, CLIPSelf): every token keeps its own value.
        """
        width = x.shape[-1]
        v = F.linear(x, self.qkv.weight[2 * width :], None if self.qkv.bias is None else self.qkv.bias[2 * width :])
        return self.out_proj(v)

    def extra_repr(self) -> str:
        return f"heads={self.num_heads}, causal={self.causal}, fused={self.fused_attn}"
