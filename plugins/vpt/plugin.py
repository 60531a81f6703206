"""VPT: learned tokens appended to the ViT's sequence, shallow (once) or deep (before every block)."""

from __future__ import annotations

import math

import torch
from einops import repeat
from torch import nn

from clipadapt.models import CLIP, TowerContext
from clipadapt.plugins import Plugin, PluginCompatibilityError
from clipadapt.registry import PLUGINS


@PLUGINS.register_module()
class VPT(Plugin):
    """Visual Prompt Tuning on the image tower.

    ``num_tokens`` prompt tokens are appended after the CLS and patch tokens, before ``ln_pre`` (as
    MaPLe places its vision prompts in CLIP). With ``depth`` > 1 (VPT-deep), the prompt tokens are
    replaced by fresh learned ones before blocks ``1 .. depth-1``; later blocks carry them forward.
    The prompts carry no positional embedding. Only the prompts train.

    Args:
        num_tokens: Prompt tokens per layer.
        depth: Layers that receive their own prompts (1 = VPT-shallow).
        dropout: Dropout on the prompts during training (VPT uses 0.1 on some tasks).
    """

    prefix = "vpt"
    hook_towers = {"embed": ("vision",), "block": ("vision",)}

    def __init__(self, num_tokens: int = 8, depth: int = 1, dropout: float = 0.0) -> None:
        super().__init__()
        if num_tokens < 1:
            raise ValueError(f"VPT num_tokens must be >= 1, got {num_tokens}")
        if depth < 1:
            raise ValueError(f"VPT depth must be >= 1, got {depth}")
        self.num_tokens = num_tokens
        self.depth = depth
        self.dropout = nn.Dropout(dropout)
        self.prompts: nn.Parameter | None = None

    def attach(self, clip: CLIP) -> None:
        layers = clip.visual.transformer.layers
        if self.depth > layers:
            raise PluginCompatibilityError(
                f"VPT depth={self.depth} exceeds the {layers} blocks of the image tower of {clip.cfg.name!r}"
            )
        width, patch = clip.visual.width, clip.cfg.vision.patch_size
        bound = math.sqrt(6.0 / float(3 * patch * patch + width))  # VPT's Xavier-uniform initialisation
        self.prompts = nn.Parameter(torch.empty(self.depth, self.num_tokens, width).uniform_(-bound, bound))

    def _prompt(self, layer: int, batch: int, dtype: torch.dtype) -> torch.Tensor:
        return repeat(self.dropout(self.prompts[layer]), "n c -> b n c", b=batch).to(dtype)

    def embed_hook(self, x: torch.Tensor, context: TowerContext) -> torch.Tensor:
        return torch.cat([x, self._prompt(0, x.shape[0], x.dtype)], dim=1)

    def block_hook(self, index: int, x: torch.Tensor, context: TowerContext) -> torch.Tensor:
        if 0 < index < self.depth:
            return torch.cat([x[:, : -self.num_tokens], self._prompt(index, x.shape[0], x.dtype)], dim=1)
        return x
