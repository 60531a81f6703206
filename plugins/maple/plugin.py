"""MaPLe as a plugin: coupled deep text and vision prompts on the shared block loop."""

from __future__ import annotations

import copy

import torch
from torch import nn

from clipadapt.models import CLIP, TowerContext
from clipadapt.plugins import Plugin, PluginCompatibilityError
from clipadapt.plugins.prompts import (
    append_tokens,
    check_context_fits,
    context_from_words,
    overwrite_last,
    overwrite_span,
)
from clipadapt.registry import PLUGINS


@PLUGINS.register_module()
class MaPLe(Plugin):
    """Multi-modal prompt learning with a text-to-vision coupling function.

    Text: ``n_ctx`` learned context tokens replace token positions ``1..n_ctx`` of the class prompt
    ``"{ctx_init} {class}."`` after embedding; before blocks ``1..depth-1`` the same positions are
    replaced by deep text prompts. Vision: ``proj(ctx)`` is appended after the CLS and patch tokens
    (before ``ln_pre``, without positional embedding); before blocks ``1..depth-1`` the last ``n_ctx``
    tokens are replaced by ``compound_prompt_projections[i](compound_prompts_text[i])``. Blocks from
    ``depth`` on carry the prompt tokens forward. Parameter names follow the original
    ``MultiModalPromptLearner`` (``prompt_learner.X`` there is ``plugins.maple.X`` here). Any tower
    widths work (the original hard-codes 512 -> 768).

    Args:
        n_ctx: Learned context tokens (2 in the paper).
        depth: Prompt depth J (9 for base-to-novel, 3 for cross-dataset).
        ctx_init: Words whose embeddings initialise the context; its first ``n_ctx`` tokens are
            learned and the rest stay as frozen text. None: random init, "X" placeholders.
    """

    prefix = "maple"
    hook_towers = {"embed": ("text", "vision"), "block": ("text", "vision")}

    def __init__(self, n_ctx: int = 2, depth: int = 9, ctx_init: str | None = "a photo of a") -> None:
        super().__init__()
        if n_ctx < 1:
            raise ValueError(f"MaPLe n_ctx must be >= 1, got {n_ctx}")
        if depth < 1:
            raise ValueError(f"MaPLe depth must be >= 1, got {depth}")
        self.n_ctx, self.depth = n_ctx, depth
        self.ctx_init = ctx_init.replace("_", " ") if ctx_init else None
        prefix_words = self.ctx_init or " ".join(["X"] * n_ctx)
        self.text_template = prefix_words + " {}."

    def attach(self, clip: CLIP) -> None:
        text_layers, vision_layers = clip.text.transformer.layers, clip.visual.transformer.layers
        if self.depth > min(text_layers, vision_layers):
            raise PluginCompatibilityError(
                f"MaPLe depth={self.depth} exceeds the towers of {clip.cfg.name!r} "
                f"({text_layers} text blocks, {vision_layers} vision blocks)"
            )
        text_width, vision_width = clip.text.width, clip.visual.width
        if self.ctx_init:
            ctx = context_from_words(clip, self.ctx_init, self.n_ctx)
        else:
            ctx = torch.empty(self.n_ctx, text_width).normal_(std=0.02)
        self.ctx = nn.Parameter(ctx)
        self.proj = nn.Linear(text_width, vision_width)
        self.compound_prompts_text = nn.ParameterList(
            [nn.Parameter(torch.empty(self.n_ctx, text_width).normal_(std=0.02)) for _ in range(self.depth - 1)]
        )
        single = nn.Linear(text_width, vision_width)
        self.compound_prompt_projections = nn.ModuleList([copy.deepcopy(single) for _ in range(self.depth - 1)])

    def embed_hook(self, x: torch.Tensor, context: TowerContext) -> torch.Tensor:
        if context.tower == "text":
            check_context_fits(context, self.n_ctx, "MaPLe")
            return overwrite_span(x, self.ctx, start=1)
        return append_tokens(x, self.proj(self.ctx))

    def block_hook(self, index: int, x: torch.Tensor, context: TowerContext) -> torch.Tensor:
        if not 0 < index < self.depth:
            return x  # block 0 got the shallow prompts; blocks >= depth carry them
        prompt = self.compound_prompts_text[index - 1]
        if context.tower == "text":
            return overwrite_span(x, prompt, start=1)
        return overwrite_last(x, self.compound_prompt_projections[index - 1](prompt))
