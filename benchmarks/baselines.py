"""The baselines written the way the original code computes them, on open_clip's model.

- :func:`text_context_plugin`: a CoOp-style learned text context as a third party writes it against the
  public hook API (the clipadapt side of the CoOp row);
- :class:`OriginalMaPLe`: MaPLe's ``CustomCLIP`` computation on open_clip (the baseline of the MaPLe row
  and of the MaPLe parity check of ``tools/gpu_check.py``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from .inputs import PROMPT_TEMPLATE


def text_context_plugin(ctx_init: Any) -> Any:
    """A CoOp-style text context as a third party would write it: token positions 1..n_ctx replaced.

    The text embed hook sees token embeddings before the positional embedding is added, as CoOp's
    prompt learner does; ``overwrite_span`` is the building block clipadapt's prompt plugins share.
    """
    import torch
    from torch import nn

    from clipadapt.plugins import Plugin
    from clipadapt.plugins.prompts import overwrite_span

    class BenchTextContext(Plugin):
        prefix = "bench_ctx"
        hook_towers = {"embed": ("text",)}
        text_template = PROMPT_TEMPLATE

        def __init__(self, init: torch.Tensor) -> None:
            super().__init__()
            self.ctx = nn.Parameter(init.clone())

        def embed_hook(self, x: torch.Tensor, context: Any) -> torch.Tensor:
            return overwrite_span(x, self.ctx, 1)

    return BenchTextContext(ctx_init)


class OriginalMaPLe:
    """MaPLe computed the way the original code does it, on open_clip's model (the baseline).

    ``CustomCLIP`` of ``trainers/maple.py``: every class prompt is the full ``context_length`` tokens
    (SOS prefix, learned context, frozen suffix), deep prompts are written into the token sequence
    before blocks ``1..J-1`` of ``nn.MultiheadAttention`` blocks under the float causal mask; vision
    prompts are appended after CLS and patches before ``ln_pre``. The prompt parameters are copies of
    clipadapt's, so both sides start from the same values and must give the same loss and gradients.
    """

    def __init__(self, model: Any, learner: Any, tokens: Any) -> None:
        import copy

        import torch

        self.model = model
        self.n_ctx, self.depth = learner.n_ctx, learner.depth
        self.ctx = torch.nn.Parameter(learner.ctx.detach().clone())
        self.proj = copy.deepcopy(learner.proj)
        self.deep_text = [torch.nn.Parameter(p.detach().clone()) for p in learner.compound_prompts_text]
        self.deep_proj = copy.deepcopy(learner.compound_prompt_projections)
        with torch.no_grad():
            embedding = model.token_embedding(tokens)
        self.prefix, self.suffix = embedding[:, :1], embedding[:, 1 + self.n_ctx :]
        self.eot = tokens.argmax(dim=-1)

    def parameters(self) -> Iterator[Any]:
        yield self.ctx
        yield from self.proj.parameters()
        yield from self.deep_text
        yield from self.deep_proj.parameters()

    def __call__(self, images: Any) -> tuple[Any, Any]:
        import torch

        deep_vision = [proj(p) for proj, p in zip(self.deep_proj, self.deep_text)]
        model, visual, n = self.model, self.model.visual, self.n_ctx
        # Image encoder (VisionTransformer_MaPLe.forward).
        x = visual.conv1(images).flatten(2).transpose(1, 2)
        cls = visual.class_embedding.to(x.dtype).expand(x.shape[0], 1, -1)
        x = torch.cat([cls, x], dim=1) + visual.positional_embedding.to(x.dtype)
        x = torch.cat([x, self.proj(self.ctx).expand(x.shape[0], -1, -1).to(x.dtype)], dim=1)
        x = visual.ln_pre(x)
        for i, block in enumerate(visual.transformer.resblocks):
            if 0 < i < self.depth:
                x = torch.cat([x[:, :-n], deep_vision[i - 1].expand(x.shape[0], -1, -1).to(x.dtype)], dim=1)
            x = block(x)
        image_features = visual.ln_post(x[:, 0]) @ visual.proj
        # Text encoder (TextEncoder.forward) over all class prompts at full length.
        count = self.prefix.shape[0]
        x = torch.cat([self.prefix, self.ctx.expand(count, -1, -1), self.suffix], dim=1)
        x = x + model.positional_embedding.to(x.dtype)
        for i, block in enumerate(model.transformer.resblocks):
            if 0 < i < self.depth:
                x = torch.cat([x[:, :1], self.deep_text[i - 1].expand(count, -1, -1).to(x.dtype), x[:, 1 + n :]], 1)
            x = block(x, attn_mask=model.attn_mask)
        x = model.ln_final(x)
        text_features = x[torch.arange(count, device=x.device), self.eot] @ model.text_projection
        return image_features, text_features
