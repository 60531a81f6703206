"""VisionTower (ViT) and TextTower (causal transformer), with the plugin hook points.

Hook points, in order, for each tower:

* ``embed`` hooks, after the tokens are embedded: for vision after patches + CLS + positional
  embedding, before ``ln_pre`` (where MaPLe appends its vision prompts); for text after the token
  embedding and *before* the positional embedding, which is added to whatever the hooks return (CoOp
  and MaPLe substitute learned context for token embeddings, and the context gets positions);
* ``block`` hooks, before every block, with the block index.

Per-call conditioning: ``forward(..., condition={"image_features": f})`` puts named tensors into
this call's :class:`TowerContext`, where hooks read them (``context.conditioned(name, owner)``). Row
``i`` of each tensor conditions item ``i`` of the batch (image or text). The context is built for
each call, so the plugins hold no per-call state and encodings are reentrant; with no condition the
field is ``None`` and nothing else runs.

Plugins that add vision tokens append them after the patch tokens; the tower pools the CLS token (or
the mean of the patch tokens) and reports patch tokens from positions ``1 .. 1 + grid**2``, so
appended tokens never leak into the outputs. Token order carries no meaning in a ViT once the
positional embedding is added, so appending is equivalent to inserting after CLS (VPT).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import torch
from einops import rearrange, repeat
from torch import nn

from .config import TextConfig, VisionConfig
from .hooks import BlockHook, EmbedHook, TowerContext
from .transformer import QuickGELU, ResidualBlock, Transformer

__all__ = ["TextOutput", "TextTower", "TowerContext", "VisionOutput", "VisionTower"]


def _check_condition(condition: Mapping[str, torch.Tensor] | None, batch: int, tower: str) -> None:
    """Each condition tensor has one row per input of the call."""
    for name, value in (condition or {}).items():
        if not isinstance(value, torch.Tensor) or value.dim() == 0 or value.shape[0] != batch:
            shape = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
            raise ValueError(
                f"condition {name!r} of the {tower} tower must be a tensor with one row per input "
                f"({batch}), got {shape}"
            )


@dataclass
class VisionOutput:
    pooled: torch.Tensor  # [B, embed_dim]
    patch_tokens: torch.Tensor | None  # [B, grid**2, width] after ln_post, before proj; on request
    aux: dict[str, Any]


@dataclass
class TextOutput:
    pooled: torch.Tensor  # [B, embed_dim]
    tokens: torch.Tensor | None  # [B, L, width] after ln_final; on request
    eot_index: torch.Tensor  # [B]
    aux: dict[str, Any]


def _layers(
    width: int, layers: int, heads: int, mlp_ratio: float, causal: bool, quick_gelu: bool, eps: float, ls: float | None
) -> Transformer:
    act = QuickGELU if quick_gelu else nn.GELU
    norm = partial(nn.LayerNorm, eps=eps)
    return Transformer(
        [
            ResidualBlock(width, heads, mlp_ratio, causal=causal, act_layer=act, norm_layer=norm, ls_init_value=ls)
            for _ in range(layers)
        ]
    )


class _HookedTower(nn.Module):
    """Holds the hook lists that ``CLIP`` fills when plugins attach (plain lists: not submodules)."""

    def __init__(self) -> None:
        super().__init__()
        self.embed_hooks: list[EmbedHook] = []
        self.block_hooks: list[BlockHook] = []

    def _run_embed_hooks(self, x: torch.Tensor, context: TowerContext) -> torch.Tensor:
        for hook in self.embed_hooks:
            x = hook(x, context)
        return x


class VisionTower(_HookedTower):
    """ViT image tower; parameter names follow open_clip's ``VisionTransformer``.

    By default the tower takes only images of its configured size (``cfg.image_size``): a classifier
    fed another size is almost always a pipeline bug. Dense uses (detection backbones, region scoring
    on full images) set ``dynamic_size = True``: then any ``H x W`` that the patch size divides is
    accepted and the positional embedding is resized bicubically to the patch grid, as open_clip's
    ``resize_pos_embed`` does when loading a checkpoint at another resolution.
    """

    def __init__(self, cfg: VisionConfig, embed_dim: int, quick_gelu: bool = False) -> None:
        super().__init__()
        self.cfg = cfg
        self.dynamic_size = False
        width = cfg.width
        self.grid_size = cfg.grid_size
        self.conv1 = nn.Conv2d(3, width, kernel_size=cfg.patch_size, stride=cfg.patch_size, bias=False)
        scale = width**-0.5
        self.class_embedding = nn.Parameter(scale * torch.randn(width))
        self.positional_embedding = nn.Parameter(scale * torch.randn(self.grid_size**2 + 1, width))
        self.ln_pre = nn.Identity() if cfg.no_ln_pre else nn.LayerNorm(width, eps=cfg.norm_eps)
        self.transformer = _layers(
            width, cfg.layers, cfg.heads, cfg.mlp_ratio, False, quick_gelu, cfg.norm_eps, cfg.ls_init_value
        )
        self.ln_post = nn.LayerNorm(width, eps=cfg.norm_eps)
        self.proj = nn.Parameter(scale * torch.randn(width, embed_dim))

    @property
    def width(self) -> int:
        return self.cfg.width

    def patch_grid(self, image_size: Sequence[int]) -> tuple[int, int]:
        """The ``(h, w)`` patch grid of ``(H, W)`` images; raises if the tower cannot take that size."""
        height, width = int(image_size[0]), int(image_size[1])
        native = self.cfg.image_size
        if (height, width) == (native, native):
            return self.grid_size, self.grid_size
        if not self.dynamic_size:
            raise ValueError(
                f"images are {(height, width)} but the vision tower expects {native}x{native} "
                "(set `visual.dynamic_size = True` to run on other sizes with a resized positional embedding)"
            )
        patch = self.cfg.patch_size
        if height % patch or width % patch or height < patch or width < patch:
            raise ValueError(
                f"images are {(height, width)}: both sides must be positive multiples of the patch size {patch}"
            )
        return height // patch, width // patch

    def positional_embedding_for(self, grid: tuple[int, int]) -> torch.Tensor:
        """The positional embedding ``[1 + h*w, width]`` for a ``(h, w)`` patch grid (bicubic resize)."""
        if grid == (self.grid_size, self.grid_size):
            return self.positional_embedding
        cls, patches = self.positional_embedding[:1], self.positional_embedding[1:]
        patches = rearrange(patches, "(h w) c -> 1 c h w", h=self.grid_size).float()
        patches = nn.functional.interpolate(patches, size=grid, mode="bicubic", antialias=True, align_corners=False)
        return torch.cat([cls, rearrange(patches, "1 c h w -> (h w) c").to(cls.dtype)])

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """Patchify, prepend CLS, add positional embedding: [B, 3, H, W] -> [B, 1 + h*w, width]."""
        x = self.conv1(images)
        pos = self.positional_embedding_for(tuple(x.shape[-2:]))
        x = rearrange(x, "b c h w -> b (h w) c")
        cls = repeat(self.class_embedding, "c -> b 1 c", b=x.shape[0]).to(x.dtype)
        return torch.cat([cls, x], dim=1) + pos.to(x.dtype)

    def forward(
        self,
        images: torch.Tensor,
        output_tokens: bool = False,
        condition: Mapping[str, torch.Tensor] | None = None,
    ) -> VisionOutput:
        grid = self.patch_grid(images.shape[-2:])
        if condition is not None:
            _check_condition(condition, images.shape[0], "vision")
        context = TowerContext("vision", images.shape[0], num_patches=grid[0] * grid[1], condition=condition)
        x = self._run_embed_hooks(self.embed(images), context)
        x = self.transformer(self.ln_pre(x), self.block_hooks, context)  # [B, N, width]
        return self.head(x, context, output_tokens)

    def head(self, x: torch.Tensor, context: TowerContext, output_tokens: bool = False) -> VisionOutput:
        """Pool, normalise and project the last block's tokens (open_clip's ``_pool`` then ``proj``)."""
        patches = slice(1, 1 + context.num_patches)
        if self.cfg.final_ln_after_pool:
            pooled = x[:, 0] if self.cfg.pool_type == "tok" else x[:, patches].mean(dim=1)
            pooled, tokens = self.ln_post(pooled), x[:, patches]
        else:
            x = self.ln_post(x)
            pooled = x[:, 0] if self.cfg.pool_type == "tok" else x[:, patches].mean(dim=1)
            tokens = x[:, patches]
        return VisionOutput(pooled @ self.proj, tokens if output_tokens else None, context.aux)


class TextTower(_HookedTower):
    """Causal text tower with exact dynamic truncation.

    Under a causal mask, tokens after the end-of-text token cannot change the pooled feature, so the
    tower runs only up to the longest EOT position of the batch (``dynamic_truncation``).
    """

    def __init__(self, cfg: TextConfig, embed_dim: int, quick_gelu: bool = False) -> None:
        super().__init__()
        self.cfg = cfg
        self.context_length = cfg.context_length
        self.dynamic_truncation = cfg.causal
        self.token_embedding = nn.Embedding(cfg.vocab_size, cfg.width)
        self.positional_embedding = nn.Parameter(torch.empty(cfg.context_length, cfg.width))
        self.transformer = _layers(
            cfg.width, cfg.layers, cfg.heads, cfg.mlp_ratio, cfg.causal, quick_gelu, cfg.norm_eps, cfg.ls_init_value
        )
        self.ln_final = nn.LayerNorm(cfg.width, eps=cfg.norm_eps)
        if cfg.proj_bias:
            self.text_projection: nn.Module | nn.Parameter = nn.Linear(cfg.width, embed_dim)
        else:
            self.text_projection = nn.Parameter(torch.empty(cfg.width, embed_dim))
        self._init_parameters()

    def _init_parameters(self) -> None:
        # open_clip's TextTransformer.init_parameters
        width, layers = self.cfg.width, self.cfg.layers
        nn.init.normal_(self.token_embedding.weight, std=0.02)
        nn.init.normal_(self.positional_embedding, std=0.01)
        for block in self.transformer.resblocks:
            nn.init.normal_(block.attn.qkv.weight, std=width**-0.5)
            nn.init.normal_(block.attn.out_proj.weight, std=(width**-0.5) * ((2 * layers) ** -0.5))
            nn.init.normal_(block.mlp.c_fc.weight, std=(2 * width) ** -0.5)
            nn.init.normal_(block.mlp.c_proj.weight, std=(width**-0.5) * ((2 * layers) ** -0.5))
        weight = self.text_projection.weight if isinstance(self.text_projection, nn.Linear) else self.text_projection
        assert isinstance(weight, torch.Tensor)
        nn.init.normal_(weight, std=width**-0.5)

    @property
    def width(self) -> int:
        return self.cfg.width

    def eot_index(self, text: torch.Tensor) -> torch.Tensor:
        if self.cfg.pool_type == "argmax":
            return text.argmax(dim=-1)  # the EOT token has the largest id of CLIP's vocabulary
        return (text == self.cfg.eos_id).int().argmax(dim=-1)

    def forward(
        self, text: torch.Tensor, output_tokens: bool = False, condition: Mapping[str, torch.Tensor] | None = None
    ) -> TextOutput:
        if text.dim() != 2:
            raise ValueError(f"text must be token ids of shape [batch, length], got {tuple(text.shape)}")
        if text.shape[1] > self.positional_embedding.shape[0]:
            raise ValueError(
                f"text has {text.shape[1]} tokens but the tower has {self.positional_embedding.shape[0]} positions; "
                "tokenize with clipadapt.get_tokenizer(name, model=model)"
            )
        eot = self.eot_index(text)
        if self.dynamic_truncation and not output_tokens:
            text = text[:, : int(eot.max()) + 1]  # exact under the causal mask; one host sync
        if condition is not None:
            _check_condition(condition, text.shape[0], "text")
        context = TowerContext("text", text.shape[0], tokens=text, eot_index=eot, condition=condition)
        x = self._run_embed_hooks(self.token_embedding(text), context)  # prompt learners substitute tokens here
        x = x + self.positional_embedding[: x.shape[1]]
        x = self.ln_final(self.transformer(x, self.block_hooks, context))  # [B, L, width]
        pooled = x[torch.arange(x.shape[0], device=x.device), context.eot_index]
        if isinstance(self.text_projection, nn.Linear):
            pooled = self.text_projection(pooled)
        else:
            pooled = pooled @ self.text_projection
        return TextOutput(
            pooled, x if output_tokens else None, eot if context.eot_index is None else context.eot_index, context.aux
        )
