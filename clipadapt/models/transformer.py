"""The pre-norm residual block and the block loop with its token hook points."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from .attention import FusedAttention
from .hooks import BlockHook, TowerContext

__all__ = ["MLP", "LayerScale", "QuickGELU", "ResidualBlock", "Transformer"]


class QuickGELU(nn.Module):
    """OpenAI CLIP's activation, ``x * sigmoid(1.702 x)``; its checkpoints need it."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(1.702 * x)


class LayerScale(nn.Module):
    """Per-channel residual scale (open_clip's ``ls_init_value``); parameter named ``gamma`` as there."""

    def __init__(self, dim: int, init_value: float) -> None:
        super().__init__()
        self.gamma = nn.Parameter(init_value * torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma


class MLP(nn.Module):
    """``c_fc -> act -> c_proj``, the names of OpenAI's checkpoints."""

    def __init__(self, dim: int, hidden: int, act_layer: Callable[[], nn.Module]) -> None:
        super().__init__()
        self.c_fc = nn.Linear(dim, hidden)
        self.gelu = act_layer()
        self.c_proj = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.c_proj(self.gelu(self.c_fc(x)))


class ResidualBlock(nn.Module):
    """``x + attn(ln_1(x))`` then ``x + mlp(ln_2(x))``, with optional layer scale.

    ``mlp`` is a plain attribute: plugins (MoE upcycling) replace it through the plugin contract.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        mlp_ratio: float,
        *,
        causal: bool,
        act_layer: Callable[[], nn.Module],
        norm_layer: Callable[[int], nn.Module],
        ls_init_value: float | None = None,
    ) -> None:
        super().__init__()
        self.ln_1 = norm_layer(dim)
        self.attn = FusedAttention(dim, num_heads, causal=causal)
        self.ls_1 = LayerScale(dim, ls_init_value) if ls_init_value is not None else nn.Identity()
        self.ln_2 = norm_layer(dim)
        self.mlp = MLP(dim, int(dim * mlp_ratio), act_layer)
        self.ls_2 = LayerScale(dim, ls_init_value) if ls_init_value is not None else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.ls_1(self.attn(self.ln_1(x)))
        return x + self.ls_2(self.mlp(self.ln_2(x)))


class Transformer(nn.Module):
    """A stack of residual blocks; before each block, the registered plugins may rewrite the tokens.

    Hooks are plain Python calls inside the loop, so ``torch.compile`` traces them without a graph
    break. Activation checkpointing is a switch (``grad_checkpointing``).
    """

    def __init__(self, blocks: Sequence[ResidualBlock]) -> None:
        super().__init__()
        # A ModuleList (registered, indexed like open_clip's); typed as what it holds, which ModuleList cannot say.
        self.resblocks: Sequence[ResidualBlock] = nn.ModuleList(blocks)  # type: ignore[assignment]
        self.grad_checkpointing = False

    @property
    def layers(self) -> int:
        return len(self.resblocks)

    def forward(
        self, x: torch.Tensor, block_hooks: Sequence[BlockHook] = (), context: TowerContext | None = None
    ) -> torch.Tensor:
        for index, block in enumerate(self.resblocks):
            for hook in block_hooks:
                assert context is not None, "block hooks run inside a tower, which passes its context"
                x = hook(index, x, context)
            if self.grad_checkpointing and torch.is_grad_enabled():
                x = checkpoint(block, x, use_reentrant=False)
            else:
                x = block(x)
        return x
