"""CLOC's Prompter: a box (or a text) as prompt tokens in front of the ViT tokens, one single-head layer."""

from __future__ import annotations

import math
from functools import partial

import torch
from torch import nn

from clipadapt.models import ResidualBlock

__all__ = ["Prompter", "sinusoidal_corners"]


def sinusoidal_corners(boxes: torch.Tensor, width: int, temperature: float = 10000.0) -> torch.Tensor:
    """Normalised boxes ``[K, 4]`` (x1, y1, x2, y2 in [0, 1]) -> two corner tokens ``[K, 2, width]``.

    Each corner ``(x, y)`` is the transformer's sine/cosine position encoding of ``2 pi x`` in the
    first half of the channels and of ``2 pi y`` in the second half (DETR's 2-D encoding).
    """
    if width % 4:
        raise ValueError(f"the Prompter's width must be divisible by 4 for the sinusoidal encoding, got {width}")
    quarter = width // 4
    freqs = temperature ** (-torch.arange(quarter, device=boxes.device, dtype=torch.float32) / quarter)  # [W/4]
    angles = 2 * math.pi * boxes.float().view(-1, 2, 2)[..., None] * freqs  # [K, corner, xy, W/4]
    encoded = torch.cat([angles.sin(), angles.cos()], dim=-1)  # [K, 2, 2, W/2]
    return encoded.flatten(2).to(boxes.dtype)  # [K, 2, W]


class Prompter(nn.Module):
    """Prompt tokens + ViT tokens -> one single-head transformer layer -> mean pool -> norm -> projection.

    Each prompt set (a box's two corner tokens, or one text token) runs with its image's tokens as
    one sequence, so outputs are independent of the other boxes (permutation-equivariant).

    Args:
        width: Token width of the ViT.
        embed_dim: Width of the joint image-text space.
        mlp_ratio: MLP width of the layer, as a multiple of ``width``.
    """

    def __init__(self, width: int, embed_dim: int, mlp_ratio: float = 4.0) -> None:
        super().__init__()
        self.width = width
        self.box_embed = nn.Linear(width, width)  # sinusoidal corners -> prompt tokens
        self.corner_embed = nn.Parameter(torch.zeros(2, width))  # top-left vs bottom-right
        self.text_embed = nn.Linear(embed_dim, width)  # a text feature as one prompt token (grounding)
        norm = partial(nn.LayerNorm, eps=1e-5)
        self.block = ResidualBlock(width, 1, mlp_ratio, causal=False, act_layer=nn.GELU, norm_layer=norm)
        self.norm = nn.LayerNorm(width)
        self.proj = nn.Parameter(torch.empty(width, embed_dim).normal_(std=width**-0.5))

    def box_prompts(self, boxes: torch.Tensor) -> torch.Tensor:
        """Normalised xyxy boxes ``[K, 4]`` -> prompt tokens ``[K, 2, width]``."""
        return self.box_embed(sinusoidal_corners(boxes, self.width)) + self.corner_embed

    def text_prompts(self, text_features: torch.Tensor) -> torch.Tensor:
        """Text features ``[K, embed_dim]`` -> prompt tokens ``[K, 1, width]``."""
        return self.text_embed(text_features)[:, None]

    def encode(self, prompts: torch.Tensor, tokens: torch.Tensor, image_index: torch.Tensor) -> torch.Tensor:
        """The pooled layer output ``[K, width]`` of ``[prompts_k, tokens[image_index[k]]]``.

        Args:
            prompts: ``[K, P, width]``.
            tokens: ViT tokens ``[B, N, width]``.
            image_index: ``[K]``: the image of each prompt set.
        """
        sequence = torch.cat([prompts.to(tokens.dtype), tokens[image_index]], dim=1)  # [K, P + N, width]
        return self.block(sequence).mean(dim=1)

    def project(self, pooled: torch.Tensor) -> torch.Tensor:
        """``[K, width]`` -> ``[K, embed_dim]`` in the joint space."""
        return self.norm(pooled) @ self.proj

    def forward(self, boxes: torch.Tensor, tokens: torch.Tensor, image_index: torch.Tensor) -> torch.Tensor:
        """Region embeddings ``[K, embed_dim]`` of normalised xyxy ``boxes [K, 4]`` in their images' tokens."""
        return self.project(self.encode(self.box_prompts(boxes), tokens, image_index))
