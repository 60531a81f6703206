"""What the base CLIP knows of plugins, and all of it: the hook context, the hook types, the protocol.

``clipadapt.models`` is pure torch and imports nothing above it (tasks, engine, the plugin contract,
the factory). Everything CLIP needs of a plugin is the :class:`ClipPlugin` protocol below, which
:class:`clipadapt.plugins.Plugin` implements; :class:`PluginCompatibilityError` lives here so that
CLIP can raise it without importing the contract.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch

__all__ = ["BlockHook", "ClipPlugin", "EmbedHook", "PluginCompatibilityError", "TowerContext", "hooks_of"]


class PluginCompatibilityError(ValueError):
    """A plugin cannot attach to this model (or beside an already attached plugin)."""


@dataclass
class TowerContext:
    """What a hook knows about the current forward pass.

    Attributes:
        tower: ``'vision'`` or ``'text'``.
        batch_size: Number of images or texts.
        tokens: Text token ids [B, L] as run (after truncation); None for vision.
        eot_index: Position of the end-of-text token per text [B]; hooks that move tokens update it.
        num_patches: Patch tokens of the vision tower (``h * w`` of the patch grid); 0 for text.
        aux: Auxiliary outputs that plugins record (router logits, ...); returned with the features.
        condition: Per-call data a task passed for this call only (``{"image_features": [B, D]}`` for
            CoCoOp's text prompts), row ``i`` for batch item ``i``; None when the call passed none.
    """

    tower: str
    batch_size: int
    tokens: torch.Tensor | None = None
    eot_index: torch.Tensor | None = None
    num_patches: int = 0
    aux: dict[str, Any] = field(default_factory=dict)
    condition: Mapping[str, torch.Tensor] | None = None

    def conditioned(self, name: str, owner: str) -> torch.Tensor:
        """The condition ``name`` of this call, for the plugin ``owner``; raises how to pass it when absent."""
        value = None if self.condition is None else self.condition.get(name)
        if value is None:
            method = "encode_text" if self.tower == "text" else "encode_image"
            raise ValueError(
                f"{owner} needs the per-call condition {name!r} in the {self.tower} tower, and this call passed "
                f"{sorted(self.condition) if self.condition else 'none'}: call clip.{method}(x, condition="
                f"{{{name!r}: tensor}}) with one row per {self.tower} input, or run the model through a task that "
                f"provides it (PromptClassifier provides 'image_features' to the text tower; for an adapter: "
                f"task = PromptClassifier(model_name, pretrained, plugins=...); load_adapter(path, model=task.clip))"
            )
        return value


# An embed hook receives (tokens [B, N, C], context) and returns the tokens.
EmbedHook = Callable[[torch.Tensor, TowerContext], torch.Tensor]
# A block hook receives (block index, tokens [B, N, C], context) and returns the tokens.
BlockHook = Callable[[int, torch.Tensor, TowerContext], torch.Tensor]


class ClipPlugin(Protocol):
    """What :class:`~clipadapt.models.CLIP` calls on an attached plugin (``clipadapt.plugins.Plugin`` is one).

    ``clip`` arguments are the calling :class:`~clipadapt.models.CLIP`; they are typed ``Any`` here so that
    this module, which ``clip.py`` imports, does not import ``clip.py`` back.
    """

    @property
    def text_template(self) -> str | None: ...

    @property
    def conditions(self) -> Mapping[str, tuple[str, ...]]: ...

    def plugin_prefix(self) -> str: ...

    def bind(self, clip: Any) -> None:
        """Remember (or, with None, forget) the CLIP this plugin is attached to."""

    def attach(self, clip: Any) -> None: ...

    def hooked_towers(self, kind: str) -> tuple[str, ...]: ...

    def embed_hook(self, x: torch.Tensor, context: TowerContext) -> torch.Tensor: ...

    def block_hook(self, index: int, x: torch.Tensor, context: TowerContext) -> torch.Tensor: ...


def hooks_of(plugins: Sequence[ClipPlugin], tower: str) -> tuple[list[EmbedHook], list[BlockHook]]:
    """The bound hook methods of ``plugins`` that act on ``tower``, in list order."""
    embed: list[EmbedHook] = []
    block: list[BlockHook] = []
    for plugin in plugins:
        if tower in plugin.hooked_towers("embed"):
            embed.append(plugin.embed_hook)
        if tower in plugin.hooked_towers("block"):
            block.append(plugin.block_hook)
    return embed, block
