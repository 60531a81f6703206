"""CoOp as a plugin: learned text context substituted for placeholder tokens of the class prompts."""

from __future__ import annotations

import torch
from einops import repeat
from torch import nn

from clipadapt import get_tokenizer
from clipadapt.models import CLIP, TowerContext
from clipadapt.plugins import Plugin
from clipadapt.plugins.prompts import check_context_fits, context_from_words, overwrite_span
from clipadapt.registry import PLUGINS

POSITIONS = ("end", "middle", "front")


def _template(n_ctx: int, position: str, ctx_init: str | None) -> str:
    """The class prompt template: placeholders "X" where the context goes, ``{}`` for the class name."""
    if position == "end":
        return f"{ctx_init or ' '.join(['X'] * n_ctx)} {{}}."
    if position == "front":
        return "{} " + " ".join(["X"] * n_ctx) + "."
    half = n_ctx // 2  # CoOp: ctx[:n//2] before the class name, ctx[n//2:] after it
    return " ".join([*(["X"] * half), "{}", *(["X"] * (n_ctx - half))]) + "."


@PLUGINS.register_module()
class CoOp(Plugin):
    """Context Optimization: learned context tokens in the text tower only (Zhou et al., IJCV 2022,
    https://arxiv.org/abs/2109.01134).

    The plugin asks the task for class prompts with ``n_ctx`` placeholder words "X" where the context
    goes (``text_template``): ``"X X X X {}."`` (``end``), ``"{} X X X X."`` (``front``),
    ``"X X {} X X."`` (``middle``: ``n_ctx // 2`` before the name). In the text embed hook, before
    the positional embedding, the placeholders' token embeddings are replaced by the context in order,
    so the context gets positions like any token, as in the original. For ``end``, the context replaces
    tokens ``1..n_ctx`` of every text, as the original builds ``[SOS, ctx, class, ., EOS]``. Only
    ``ctx`` trains; its name follows the original (``prompt_learner.ctx`` there is ``plugins.coop.ctx``).

    Args:
        n_ctx: Context tokens (CoOp's default 16). With ``ctx_init`` it defaults to, and must equal,
            the number of tokens of ``ctx_init``.
        ctx_init: Words whose token embeddings initialise the context (``"a photo of a"``, CoOp's
            ``ctxv1`` configs). None: N(0, 0.02) initialisation.
        class_token_position: ``'end'``, ``'middle'`` or ``'front'``.
        csc: Class-specific context: one context per class, ``ctx`` of shape [num_classes, n_ctx,
            width]. The text batch must then be the class prompts of all classes, in label order.
        num_classes: Number of classes; required with ``csc``.
    """

    prefix = "coop"
    hook_towers = {"embed": ("text",)}

    def __init__(
        self,
        n_ctx: int | None = None,
        ctx_init: str | None = None,
        class_token_position: str = "end",
        csc: bool = False,
        num_classes: int | None = None,
    ) -> None:
        super().__init__()
        if n_ctx is not None and n_ctx < 1:
            raise ValueError(f"CoOp n_ctx must be >= 1, got {n_ctx}")
        if class_token_position not in POSITIONS:
            raise ValueError(f"CoOp class_token_position must be one of {POSITIONS}, got {class_token_position!r}")
        if csc and (num_classes is None or num_classes < 1):
            raise ValueError(f"CoOp with class-specific context (csc=True) needs num_classes >= 1, got {num_classes}")
        self.n_ctx = n_ctx
        self.ctx_init = ctx_init.replace("_", " ").strip() if ctx_init else None
        self.class_token_position = class_token_position
        self.csc = csc
        self.num_classes = num_classes if csc else None
        self.placeholder_id = -1  # token id of "X", set at attach

    def attach(self, clip: CLIP) -> None:
        tokenizer = get_tokenizer(model=clip)
        width = clip.text.width
        if self.ctx_init:
            tokens = int(tokenizer([self.ctx_init])[0].argmax()) - 1  # tokens between SOT and EOT
            if self.n_ctx is not None and self.n_ctx != tokens:
                raise ValueError(
                    f"CoOp n_ctx={self.n_ctx} does not match the {tokens} tokens of ctx_init={self.ctx_init!r}; "
                    "leave n_ctx unset to take it from ctx_init"
                )
            self.n_ctx = tokens
            ctx = context_from_words(clip, self.ctx_init, tokens)  # [n_ctx, width]
            if self.csc:
                ctx = repeat(ctx, "n c -> k n c", k=self.num_classes).clone()
        else:
            self.n_ctx = self.n_ctx or 16
            shape = (self.num_classes, self.n_ctx, width) if self.csc else (self.n_ctx, width)
            ctx = torch.empty(shape).normal_(std=0.02)
        self.ctx = nn.Parameter(ctx)
        self.text_template = _template(self.n_ctx, self.class_token_position, self.ctx_init)
        placeholder = tokenizer(["X"])[0]
        self.placeholder_id = int(placeholder[1])
        if self.class_token_position != "end":  # the template must tokenize to n_ctx placeholders
            count = int((tokenizer([self.text_template.format("")])[0] == self.placeholder_id).sum())
            if count != self.n_ctx:
                raise ValueError(
                    f"CoOp template {self.text_template!r} has {count} placeholder tokens, not {self.n_ctx}"
                )

    def _context(self, batch: int, dtype: torch.dtype) -> torch.Tensor:
        """The context for each text: [B, n_ctx, width]."""
        if self.csc:
            if batch != self.num_classes:
                raise ValueError(
                    f"CoOp with class-specific context (csc=True) needs the class prompts of all {self.num_classes} "
                    f"classes, in label order, as one text batch; got {batch} texts"
                )
            return self.ctx.to(dtype)
        return repeat(self.ctx, "n c -> b n c", b=batch).to(dtype)

    def embed_hook(self, x: torch.Tensor, context: TowerContext) -> torch.Tensor:
        ctx = self._context(x.shape[0], x.dtype)  # [B, n_ctx, C]
        if self.class_token_position == "end":
            check_context_fits(context, self.n_ctx, "CoOp")
            return overwrite_span(x, ctx, start=1)
        is_placeholder = context.tokens == self.placeholder_id  # [B, L]
        counts = is_placeholder.sum(dim=1)
        bad = (counts != self.n_ctx).nonzero().flatten().tolist()
        if bad:
            raise ValueError(
                f"CoOp (class_token_position={self.class_token_position!r}) expects exactly {self.n_ctx} placeholder "
                f"tokens 'X' per text (template {self.text_template!r}); text row(s) {bad[:8]} have "
                f"{counts[bad[:8]].tolist()}. A class name containing the word 'x' cannot be told from the "
                "placeholders: rename it, or use class_token_position='end'"
            )
        positions = is_placeholder.nonzero()[:, 1].view(x.shape[0], self.n_ctx)  # [B, n_ctx], ascending per row
        index = repeat(positions, "b n -> b n c", c=x.shape[-1])
        return x.scatter(1, index, ctx)
