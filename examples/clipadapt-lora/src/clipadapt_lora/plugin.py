"""The ``LoRA`` plugin: wraps the fused QKV projection of chosen blocks through ``Plugin.replace_module``."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from clipadapt.models import CLIP
from clipadapt.plugins import Plugin, PluginCompatibilityError
from clipadapt.registry import PLUGINS

from .layer import SLOTS, LoRAQKV

__all__ = ["LoRA"]

# --8<-- [start:towers]
# Plugin tower names (as in ``Plugin.hook_towers``) -> the CLIP attribute that holds the tower.
TOWERS: dict[str, str] = {"vision": "visual", "text": "text"}
# --8<-- [end:towers]


# --8<-- [start:class]
@PLUGINS.register_module()
class LoRA(Plugin):
    """Low-rank adaptation of the attention projections of CLIP's towers.

    LoRA (Hu et al., 2021, https://arxiv.org/abs/2106.09685) freezes a weight ``W`` and learns
    ``W + alpha / r * B A`` with ``A`` [r, in] and ``B`` [out, r], ``B`` starting at zero. CLIP-LoRA
    (Zanella and Ben Ayed, 2024, https://arxiv.org/abs/2405.18541) applies it to the q, k and v
    projections of both encoders for few-shot classification. Here every chosen block's
    ``attn.qkv`` is replaced by a :class:`LoRAQKV` that wraps it; the plugin uses no token hook.

    Args:
        rank: Rank ``r`` of every update.
        alpha: The update is scaled by ``alpha / rank``; None means ``alpha = rank`` (scale 1).
        dropout: Dropout on the low-rank path's input.
        targets: Projections to adapt, a subset of ``("q", "k", "v")``.
        towers: Towers to adapt, a subset of ``("vision", "text")``.
        blocks: Block indices to adapt in every chosen tower (negative ones count from the end,
            ``[-1]`` is the last block); None adapts every block.
    """

    prefix = "lora"
    # --8<-- [end:class]

    # --8<-- [start:init]
    def __init__(
        self,
        rank: int = 2,
        alpha: float | None = None,
        dropout: float = 0.0,
        targets: Sequence[str] = ("q", "k", "v"),
        towers: Sequence[str] = ("vision", "text"),
        blocks: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        if rank < 1:
            raise ValueError(f"LoRA rank must be >= 1, got {rank}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"LoRA dropout must be in [0, 1), got {dropout}")
        for key, values, known in (("targets", targets, SLOTS), ("towers", towers, tuple(TOWERS))):
            if isinstance(values, str) or not values or len(set(values)) != len(values) or set(values) - set(known):
                raise ValueError(f"LoRA {key} must be distinct names from {known}, got {values!r}")
        if blocks is not None and (not blocks or len(set(blocks)) != len(blocks)):
            raise ValueError(f"LoRA blocks must be None or distinct block indices, got {blocks}")
        self.rank = rank
        self.alpha = float(rank if alpha is None else alpha)
        self.dropout = dropout
        self.targets = tuple(targets)
        self.towers = tuple(towers)
        self.blocks = None if blocks is None else tuple(int(b) for b in blocks)
        self.wrapped: list[str] = []  # names of the replaced projections, in attach order

    # --8<-- [end:init]

    # --8<-- [start:attach]
    def attach(self, clip: CLIP) -> None:
        for tower in self.towers:
            layers = getattr(clip, TOWERS[tower]).transformer.layers
            for index in self._block_indices(layers, tower, clip.cfg.name):
                name = f"{TOWERS[tower]}.transformer.resblocks.{index}.attn.qkv"
                base = clip.get_submodule(name)
                if not isinstance(base, nn.Linear):
                    owner = clip.changed_modules.get(name)
                    why = f"plugin {owner!r} replaced it" if owner else f"it is a {type(base).__name__}"
                    raise PluginCompatibilityError(f"LoRA wraps nn.Linear projections; cannot wrap {name!r}: {why}")
                self.replace_module(clip, name, LoRAQKV(base, self.rank, self.alpha, self.targets, self.dropout))
                self.wrapped.append(name)

    # --8<-- [end:attach]

    # --8<-- [start:blocks]
    def _block_indices(self, layers: int, tower: str, model: str) -> list[int]:
        if self.blocks is None:
            return list(range(layers))
        out_of_range = [b for b in self.blocks if not -layers <= b < layers]
        if out_of_range:
            raise PluginCompatibilityError(
                f"LoRA blocks {out_of_range} do not exist in the {tower} tower of {model!r} ({layers} blocks)"
            )
        indices = sorted({b % layers for b in self.blocks})
        if len(indices) != len(self.blocks):
            raise PluginCompatibilityError(
                f"LoRA blocks {list(self.blocks)} name the same block twice in the {tower} tower ({layers} blocks)"
            )
        return indices

    # --8<-- [end:blocks]
