"""CoCoOp computed as the original code computes it (``trainers/cocoop.py`` of KaiyangZhou/CoOp), on open_clip.

Written from the original's semantics, not copied: ``PromptLearner`` builds, for every image, the
full-length class prompts ``[SOS, ctx + meta_net(f), suffix]`` (suffix = the frozen embeddings of
"{class}." and the padding, all ``context_length`` tokens); ``TextEncoder`` adds the positional
embedding, runs the causal transformer over the whole sequence, applies ``ln_final`` and pools at the
``argmax`` of the token ids; ``CustomCLIP`` normalises the image features *before* the meta-net reads
them and computes one logit row per image, ``logit_scale.exp() * f_i @ t_i.T``.
"""

from __future__ import annotations

import copy
from typing import Any

import torch


class OriginalCoCoOp:
    """The reference: open_clip's ``CLIP`` plus copies of our plugin's ``ctx`` and ``meta_net``."""

    def __init__(self, model: Any, plugin: Any, tokens: torch.Tensor) -> None:
        self.model = model
        self.ctx = torch.nn.Parameter(plugin.ctx.detach().clone())
        self.meta_net = copy.deepcopy(plugin.meta_net)
        n_ctx = self.ctx.shape[0]
        with torch.no_grad():
            embedding = model.token_embedding(tokens)  # [n_cls, 77, width]
        self.prefix, self.suffix = embedding[:, :1], embedding[:, 1 + n_ctx :]
        self.tokens = tokens

    def text_features(self, prompts: torch.Tensor) -> torch.Tensor:
        model = self.model
        x = prompts + model.positional_embedding
        for block in model.transformer.resblocks:
            x = block(x, attn_mask=model.attn_mask)
        x = model.ln_final(x)
        return x[torch.arange(x.shape[0]), self.tokens.argmax(dim=-1)] @ model.text_projection

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        image_features = self.model.encode_image(images)
        image_features = image_features / image_features.norm(dim=-1, keepdim=True)
        ctx_shifted = self.ctx.unsqueeze(0) + self.meta_net(image_features).unsqueeze(1)  # [B, n_ctx, width]
        n_cls = self.prefix.shape[0]
        logits = []
        for ctx_i, feature_i in zip(ctx_shifted, image_features):
            prompts = torch.cat([self.prefix, ctx_i.unsqueeze(0).expand(n_cls, -1, -1), self.suffix], dim=1)
            text = self.text_features(prompts)
            text = text / text.norm(dim=-1, keepdim=True)
            logits.append(self.model.logit_scale.exp() * feature_i @ text.t())
        return torch.stack(logits)
