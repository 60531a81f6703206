"""``PatchPrompt``: deep text prompts shifted, for each image, by a map of its mean patch token."""

from __future__ import annotations

import torch
from torch import nn

from clipadapt.models import CLIP, TowerContext
from clipadapt.plugins import Plugin, PluginCompatibilityError
from clipadapt.plugins.prompts import check_context_fits, context_from_words, overwrite_span
from clipadapt.registry import PLUGINS

__all__ = ["PatchPrompt"]


# --8<-- [start:class]
@PLUGINS.register_module()
class PatchPrompt(Plugin):
    """Learned text context, and deep text prompts that depend on the image.

    After the token embedding, ``n_ctx`` learned context tokens replace tokens ``1..n_ctx`` of the class
    prompt ``"{ctx_init} {class}."`` (as CoOp). Before text blocks ``1..depth-1`` the same positions are
    replaced by deep prompts plus ``shift(patch_mean)``: one bias per image, from the mean of its
    patch tokens (vision width, before the projection). ``shift`` starts at zero, so an untrained
    plugin gives the same logits for every image's prompts.

    The mean patch token arrives per call: ``conditions`` declares it, the hook reads it from the
    context, and :class:`~clipadapt_imageprompt.PatchConditionedClassifier` provides it.

    Args:
        n_ctx: Learned context tokens; the first ``n_ctx`` tokens of ``ctx_init``.
        depth: Text blocks ``1..depth-1`` receive the conditioned deep prompts.
        ctx_init: Words that initialise the context and fill the template.
    """

    prefix = "patchprompt"
    hook_towers = {"embed": ("text",), "block": ("text",)}
    conditions = {"text": ("patch_mean",)}
    # --8<-- [end:class]

    def __init__(self, n_ctx: int = 4, depth: int = 2, ctx_init: str = "a photo of a") -> None:
        super().__init__()
        if n_ctx < 1 or depth < 1:
            raise ValueError(f"PatchPrompt n_ctx and depth must be >= 1, got n_ctx={n_ctx}, depth={depth}")
        self.n_ctx, self.depth, self.ctx_init = n_ctx, depth, ctx_init
        self.text_template = ctx_init + " {}."

    # --8<-- [start:attach]
    def attach(self, clip: CLIP) -> None:
        if self.depth > clip.text.transformer.layers:
            raise PluginCompatibilityError(
                f"PatchPrompt depth={self.depth} exceeds the {clip.text.transformer.layers} text blocks of "
                f"{clip.cfg.name!r}"
            )
        width = clip.text.width
        self.ctx = nn.Parameter(context_from_words(clip, self.ctx_init, self.n_ctx))  # [n_ctx, width]
        self.deep = nn.ParameterList(
            [nn.Parameter(torch.empty(self.n_ctx, width).normal_(std=0.02)) for _ in range(self.depth - 1)]
        )
        self.shift = nn.Linear(clip.visual.width, width)
        nn.init.zeros_(self.shift.weight)
        nn.init.zeros_(self.shift.bias)

    # --8<-- [end:attach]

    # --8<-- [start:hooks]
    def embed_hook(self, x: torch.Tensor, context: TowerContext) -> torch.Tensor:
        check_context_fits(context, self.n_ctx, "PatchPrompt")
        return overwrite_span(x, self.ctx, start=1)

    def block_hook(self, index: int, x: torch.Tensor, context: TowerContext) -> torch.Tensor:
        if not 0 < index < self.depth:
            return x
        patch_mean = context.conditioned("patch_mean", "PatchPrompt")  # [B, vision width], row i for text i
        prompts = self.deep[index - 1].unsqueeze(0) + self.shift(patch_mean.to(x.dtype)).unsqueeze(1)
        return overwrite_span(x, prompts, start=1)  # [B, n_ctx, width] at tokens 1..n_ctx

    # --8<-- [end:hooks]
