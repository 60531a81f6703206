"""``LoRAQKV``: a low-rank update of some of the q, k and v slices of a fused QKV projection."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

__all__ = ["SLOTS", "LoRAQKV"]

# The order of the slices in the fused projection's output: [q; k; v], each `width` rows.
SLOTS: tuple[str, ...] = ("q", "k", "v")


# --8<-- [start:init]
class LoRAQKV(nn.Module):
    """``qkv(x)`` plus ``alpha / rank * B_t A_t x`` on each target slice ``t`` of ``q``, ``k``, ``v``.

    clipadapt's attention computes q, k and v with one ``nn.Linear(width, 3 * width)``. LoRA adapts
    the projections separately, so each target slice gets its own factors: ``A_t`` [rank, width]
    (Kaiming-uniform, like ``nn.Linear``) and ``B_t`` [width, rank] (zeros). With ``B = 0`` the module
    returns exactly what the wrapped projection returns, so an untrained LoRA is the base CLIP.

    The wrapped ``base`` stays a child module under its own name (``<name>.base.weight``) and keeps
    ``requires_grad=False``; only ``lora_a`` and ``lora_b`` train.

    Args:
        base: The fused projection to adapt, ``nn.Linear(width, 3 * width)``.
        rank: Rank ``r`` of each update.
        alpha: Scale numerator: the update is multiplied by ``alpha / rank``.
        targets: Which slices get an update, a subset of ``("q", "k", "v")``.
        dropout: Dropout on the input of the low-rank path only (LoRA's ``lora_dropout``).
    """

    def __init__(self, base: nn.Linear, rank: int, alpha: float, targets: Sequence[str], dropout: float = 0.0) -> None:
        super().__init__()
        if base.out_features != 3 * base.in_features:
            raise ValueError(
                f"LoRAQKV wraps a fused projection Linear(width, 3 * width), got "
                f"Linear({base.in_features}, {base.out_features})"
            )
        unknown = [t for t in targets if t not in SLOTS]
        if unknown or not targets or len(set(targets)) != len(targets):
            raise ValueError(f"LoRA targets must be distinct names from {SLOTS}, got {list(targets)}")
        self.base = base
        self.rank = rank
        self.scale = alpha / rank
        self.targets = tuple(targets)
        width, factory = base.in_features, {"device": base.weight.device, "dtype": base.weight.dtype}
        # Slot index of each target; a buffer so that it follows .to(device), left out of the state dict.
        self.register_buffer("slots", torch.tensor([SLOTS.index(t) for t in self.targets]), persistent=False)
        self.lora_a = nn.Parameter(torch.empty(len(self.targets) * rank, width, **factory))  # [T * r, C]
        self.lora_b = nn.Parameter(torch.zeros(len(self.targets), width, rank, **factory))  # [T, C, r]
        nn.init.kaiming_uniform_(self.lora_a, a=math.sqrt(5))
        self.dropout = nn.Dropout(dropout)

    # --8<-- [end:init]

    # --8<-- [start:forward]
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: [..., C] -> [..., 3C]
        out = rearrange(self.base(x), "... (s c) -> ... s c", s=len(SLOTS))  # [..., 3, C]
        low = rearrange(F.linear(self.dropout(x), self.lora_a), "... (t r) -> ... t r", r=self.rank)  # [..., T, r]
        delta = torch.einsum("...tr,tcr->...tc", low, self.lora_b)  # [..., T, C]
        out = out.index_add(-2, self.slots, delta.to(out.dtype), alpha=self.scale)
        return rearrange(out, "... s c -> ... (s c)")

    # --8<-- [end:forward]

    # --8<-- [start:weight]
    def delta_weight(self) -> torch.Tensor:
        """The update of the projection's weight, ``[3C, C]``: ``scale * B_t A_t`` on target rows, 0 elsewhere."""
        width = self.base.in_features
        a = rearrange(self.lora_a, "(t r) c -> t r c", r=self.rank)
        per_target = torch.einsum("tor,tri->toi", self.lora_b, a)  # [T, C, C]
        full = self.lora_a.new_zeros(len(SLOTS), width, width).index_add(0, self.slots, per_target, alpha=self.scale)
        return rearrange(full, "s o i -> (s o) i")

    @property
    def weight(self) -> torch.Tensor:
        """The effective weight ``W + delta``, for code that reads ``attn.qkv.weight`` directly.

        ``FusedAttention.value_path`` (dense features for region methods) slices the v rows of
        ``qkv.weight``; with this property it sees the adapted projection. Dropout is not applied.
        """
        return self.base.weight + self.delta_weight()

    @property
    def bias(self) -> torch.Tensor | None:
        return self.base.bias

    # --8<-- [end:weight]

    def extra_repr(self) -> str:
        return f"rank={self.rank}, scale={self.scale:g}, targets={','.join(self.targets)}"
