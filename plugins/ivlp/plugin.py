"""IVLP as a plugin: independent deep text and vision prompts (PromptSRC's prompting), optional PromptSRC losses."""

from __future__ import annotations

from typing import Any

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

from .promptsrc import PromptSRCConfig, PromptSRCTeacher, promptsrc_losses

OUTPUT_KEYS = ("images", "image_features", "text_features", "logits", "classnames", "logit_scale")


def _normal(*shape: int) -> nn.Parameter:
    return nn.Parameter(torch.empty(*shape).normal_(std=0.02))


@PLUGINS.register_module()
class IVLP(Plugin):
    """Independent vision-language prompting, as PromptSRC (Khattak et al., ICCV 2023,
    https://arxiv.org/abs/2307.06948) trains it; with ``promptsrc`` set, also PromptSRC's
    self-regulating losses.

    Text: ``n_ctx_text`` learned tokens replace token positions ``1..n_ctx_text`` of the class prompt
    ``"{ctx_init} {class}."`` after embedding (before the positional embedding); before blocks
    ``1..depth_text-1`` the same positions are replaced by fresh prompts ``deep_text[i-1]``. Vision:
    ``n_ctx_vision`` tokens ``vision_ctx`` are appended after the CLS and patch tokens (before
    ``ln_pre``, without positional embedding); before blocks ``1..depth_vision-1`` the last
    ``n_ctx_vision`` tokens are replaced by ``deep_vision[i-1]``. Blocks from the depth on carry the
    prompt tokens forward. Unlike MaPLe, the two sides are not coupled. Only the prompts train.

    Args:
        n_ctx_text: Learned text context tokens (2, the MaPLe repository's IVLP; PromptSRC uses 4).
        n_ctx_vision: Learned vision prompt tokens (2; PromptSRC: 4).
        depth_text: Text prompt depth (9, the MaPLe repository's default, whose shipped IVLP config uses
            12; PromptSRC: 9; >= 1, as the original asserts).
        depth_vision: Vision prompt depth (9; 0 disables the vision prompts).
        ctx_init: Words whose embeddings initialise the text context; its first ``n_ctx_text``
            tokens are learned and the rest stay as frozen text. None: N(0, 0.02), "X" placeholders.
        promptsrc: PromptSRC's losses in :meth:`losses`: None/False (off), True (defaults), or a
            dict of :class:`PromptSRCConfig` fields (``text_weight``, ``image_weight``, ``kl_weight``,
            ``templates``).
    """

    prefix = "ivlp"
    hook_towers = {"embed": ("text", "vision"), "block": ("text", "vision")}

    def __init__(
        self,
        n_ctx_text: int = 2,
        n_ctx_vision: int = 2,
        depth_text: int = 9,
        depth_vision: int = 9,
        ctx_init: str | None = "a photo of a",
        promptsrc: bool | dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        for name, value, least in (
            ("n_ctx_text", n_ctx_text, 1),
            ("n_ctx_vision", n_ctx_vision, 1),
            ("depth_text", depth_text, 1),
            ("depth_vision", depth_vision, 0),
        ):
            if value < least:
                raise ValueError(f"IVLP {name} must be >= {least}, got {value}")
        self.n_ctx_text, self.n_ctx_vision = n_ctx_text, n_ctx_vision
        self.depth_text, self.depth_vision = depth_text, depth_vision
        self.ctx_init = ctx_init.replace("_", " ").strip() if ctx_init else None
        self.text_template = (self.ctx_init or " ".join(["X"] * n_ctx_text)) + " {}."
        if depth_vision == 0:
            self.hook_towers = {"embed": ("text",), "block": ("text",)}
        self.promptsrc = PromptSRCConfig.build(promptsrc)
        self.teacher = PromptSRCTeacher(self.promptsrc) if self.promptsrc else None

    def attach(self, clip: CLIP) -> None:
        for tower, depth, layers in (
            ("text", self.depth_text, clip.text.transformer.layers),
            ("vision", self.depth_vision, clip.visual.transformer.layers),
        ):
            if depth > layers:
                raise PluginCompatibilityError(
                    f"IVLP depth_{tower}={depth} exceeds the {layers} blocks of the {tower} tower of {clip.cfg.name!r}"
                )
        text_width, vision_width = clip.text.width, clip.visual.width
        if self.ctx_init:
            self.ctx = nn.Parameter(context_from_words(clip, self.ctx_init, self.n_ctx_text))
        else:
            self.ctx = _normal(self.n_ctx_text, text_width)
        # [depth-1, n, width]: one stacked tensor per tower (no ParameterList, which DataParallel replicas lose)
        self.deep_text = _normal(self.depth_text - 1, self.n_ctx_text, text_width) if self.depth_text > 1 else None
        self.vision_ctx = _normal(self.n_ctx_vision, vision_width) if self.depth_vision > 0 else None
        deep = self.depth_vision > 1
        self.deep_vision = _normal(self.depth_vision - 1, self.n_ctx_vision, vision_width) if deep else None

    # ----------------------------------------------------------------------------------- hooks
    def embed_hook(self, x: torch.Tensor, context: TowerContext) -> torch.Tensor:
        if context.tower == "text":
            check_context_fits(context, self.n_ctx_text, "IVLP")
            return overwrite_span(x, self.ctx, start=1)
        return append_tokens(x, self.vision_ctx)

    def block_hook(self, index: int, x: torch.Tensor, context: TowerContext) -> torch.Tensor:
        if context.tower == "text":
            return overwrite_span(x, self.deep_text[index - 1], start=1) if 0 < index < self.depth_text else x
        return overwrite_last(x, self.deep_vision[index - 1]) if 0 < index < self.depth_vision else x

    # ---------------------------------------------------------------------------------- losses
    def losses(self, outputs: dict[str, Any]) -> dict[str, torch.Tensor]:
        """PromptSRC's ``loss_scl_text``, ``loss_scl_image`` and ``loss_scl_kl`` (when ``promptsrc`` is set)."""
        if self.promptsrc is None:
            return {}
        missing = [k for k in OUTPUT_KEYS if k not in outputs]
        if missing:
            raise KeyError(
                f"IVLP with promptsrc needs the task outputs {list(OUTPUT_KEYS)}; missing {missing} "
                "(PromptClassifier passes them in loss mode)"
            )
        clip = self.clip
        return promptsrc_losses(
            self.promptsrc,
            text_features=outputs["text_features"],
            frozen_text_features=self.teacher.text_features(clip, outputs["classnames"]),
            image_features=outputs["image_features"],
            frozen_image_features=self.teacher.image_features(clip, outputs["images"]),
            logits=outputs["logits"],
            logit_scale=outputs["logit_scale"],
        )
