"""CoCoOp as a plugin: CoOp's learned context shifted, for each image, by a meta-net of its features."""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from clipadapt import get_tokenizer
from clipadapt.models import CLIP, TowerContext
from clipadapt.plugins import Plugin, PluginCompatibilityError
from clipadapt.plugins.prompts import check_context_fits, context_from_words, overwrite_span
from clipadapt.registry import PLUGINS

__all__ = ["CoCoOp"]


@PLUGINS.register_module()
class CoCoOp(Plugin):
    """Conditional Context Optimization (Zhou et al., CVPR 2022, https://arxiv.org/abs/2203.05557).

    CoOp's ``n_ctx`` context tokens replace tokens ``1..n_ctx`` of the class prompt
    ``"{ctx_init} {class}."`` after the token embedding, as in CoOp. CoCoOp adds a light meta-net,
    ``Linear(vis_dim, vis_dim // 16) -> ReLU -> Linear(vis_dim // 16, text width)``, that maps each
    image's normalised projected feature (``vis_dim`` is CLIP's embedding size, the original's
    ``clip_model.visual.output_dim``) to one bias added to every context token. So each image has its
    own class prompts and the text tower runs once per (image, class).

    The image features arrive per call: the plugin declares ``conditions = {"text":
    ("image_features",)}`` and reads ``context.conditioned("image_features", ...)``, one row per text.
    :class:`~clipadapt.tasks.PromptClassifier` passes them; a task that cannot is refused at
    build time. Parameter names follow the original ``PromptLearner`` (``prompt_learner.ctx`` and
    ``prompt_learner.meta_net.linear1.weight`` there are ``plugins.cocoop.ctx`` and
    ``plugins.cocoop.meta_net.linear1.weight`` here).

    Args:
        n_ctx: Context tokens. With ``ctx_init`` it defaults to, and must equal, the number of tokens
            of ``ctx_init`` (4 for "a photo of a", the original's ``ctxv1`` configs).
        ctx_init: Words whose token embeddings initialise the context. None: N(0, 0.02) context and
            "X" placeholders in the template (the original's ``vit_b16_c4/c8/c16`` configs).
        meta_hidden: Hidden width of the meta-net; None is ``vis_dim // 16`` as in the original.
    """

    prefix = "cocoop"
    hook_towers = {"embed": ("text",)}
    conditions = {"text": ("image_features",)}

    def __init__(
        self, n_ctx: int | None = None, ctx_init: str | None = "a photo of a", meta_hidden: int | None = None
    ) -> None:
        super().__init__()
        if n_ctx is not None and n_ctx < 1:
            raise ValueError(f"CoCoOp n_ctx must be >= 1, got {n_ctx}")
        if meta_hidden is not None and meta_hidden < 1:
            raise ValueError(f"CoCoOp meta_hidden must be >= 1, got {meta_hidden}")
        self.n_ctx = n_ctx
        self.ctx_init = ctx_init.replace("_", " ").strip() if ctx_init else None
        self.meta_hidden = meta_hidden

    def attach(self, clip: CLIP) -> None:
        if self.ctx_init:
            tokens = int(get_tokenizer(model=clip)([self.ctx_init])[0].argmax()) - 1  # between SOT and EOT
            if self.n_ctx is not None and self.n_ctx != tokens:
                raise ValueError(
                    f"CoCoOp n_ctx={self.n_ctx} does not match the {tokens} tokens of ctx_init={self.ctx_init!r}; "
                    "leave n_ctx unset to take it from ctx_init"
                )
            self.n_ctx = tokens
            ctx = context_from_words(clip, self.ctx_init, tokens)  # [n_ctx, width]
        else:
            self.n_ctx = self.n_ctx or 4
            ctx = torch.empty(self.n_ctx, clip.text.width).normal_(std=0.02)
        self.text_template = f"{self.ctx_init or ' '.join(['X'] * self.n_ctx)} {{}}."
        vis_dim = clip.embed_dim  # the image features the meta-net reads are CLIP's projected ones
        hidden = self.meta_hidden or vis_dim // 16
        if hidden < 1:
            raise PluginCompatibilityError(
                f"CoCoOp's meta-net hidden width vis_dim // 16 is 0 for {clip.cfg.name!r} (embed_dim {vis_dim}); "
                "set meta_hidden"
            )
        self.ctx = nn.Parameter(ctx)
        self.meta_net = nn.Sequential(
            OrderedDict(
                [
                    ("linear1", nn.Linear(vis_dim, hidden)),
                    ("relu", nn.ReLU()),
                    ("linear2", nn.Linear(hidden, clip.text.width)),
                ]
            )
        )

    def conditioned_context(self, image_features: torch.Tensor) -> torch.Tensor:
        """The context of each row, ``ctx + meta_net(image_features)``: [N, D] -> [N, n_ctx, width]."""
        bias = self.meta_net(image_features.to(self.ctx.dtype))  # [N, width]
        return self.ctx.unsqueeze(0) + bias.unsqueeze(1)

    def embed_hook(self, x: torch.Tensor, context: TowerContext) -> torch.Tensor:
        image_features = context.conditioned("image_features", "CoCoOp")  # [B, D], row i for text i
        check_context_fits(context, self.n_ctx, "CoCoOp")
        return overwrite_span(x, self.conditioned_context(image_features), start=1)
