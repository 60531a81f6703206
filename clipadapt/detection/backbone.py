"""A clipadapt CLIP ViT as an MMDetection backbone, with ViTDet's simple feature pyramid."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from einops import rearrange
from mmdet.registry import MODELS
from mmengine.model import BaseModule
from torch import nn

from .clip_models import build_clip

__all__ = ["CLIPViT"]


def _pyramid_level(scale: float, width: int) -> nn.Module:
    """ViTDet's simple feature pyramid: one map of the last block, resampled by ``scale``."""
    if scale == 4.0:
        return nn.Sequential(
            nn.ConvTranspose2d(width, width, 2, stride=2),
            nn.GroupNorm(1, width),
            nn.GELU(),
            nn.ConvTranspose2d(width, width, 2, stride=2),
        )
    if scale == 2.0:
        return nn.ConvTranspose2d(width, width, 2, stride=2)
    if scale == 1.0:
        return nn.Identity()
    if scale == 0.5:
        return nn.MaxPool2d(2, stride=2)
    raise ValueError(f"pyramid scales must be among (4.0, 2.0, 1.0, 0.5), got {scale}")


@MODELS.register_module()
class CLIPViT(BaseModule):
    """The vision tower of a clipadapt CLIP, on images of any size, as a multi-scale backbone.

    The tower runs with its positional embedding resized to the image's patch grid (bicubic, as
    open_clip resizes checkpoints), and the patch tokens of its last block (after ``ln_post``) form one
    map at stride ``patch_size``; ViTDet's simple feature pyramid resamples it to the strides
    ``patch_size / scale`` (deconvolutions up, max-pooling down). Pair it with MMDetection's ``FPN``
    neck with ``in_channels=[width] * len(scales)``.

    Args:
        clip: ``dict(model_name, pretrained, adapter)`` (:mod:`clipadapt.detection.clip_models`); the
            backbone gets its own copy of the weights.
        scales: Resampling factors of the pyramid levels, finest first (among 4, 2, 1, 0.5).
        frozen: Keep the ViT frozen (no gradients, eval mode); the pyramid layers train either way.
        width: The token width the config expects (optional); checked against the checkpoint, so a
            neck sized for another model fails here with the two widths named.
        init_cfg: MMEngine init config of the pyramid layers.
    """

    def __init__(
        self,
        clip: dict[str, Any],
        scales: Sequence[float] = (2.0, 1.0, 0.5),
        frozen: bool = True,
        width: int | None = None,
        init_cfg: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(init_cfg=init_cfg)
        model = build_clip(clip)
        self.visual = model.visual
        self.visual.dynamic_size = True
        self.patch_size = self.visual.cfg.patch_size
        if width is not None and width != self.visual.width:
            raise ValueError(
                f"CLIPViT: the config says width={width}, but {clip.get('model_name')!r} "
                f"({clip.get('pretrained')}) has token width {self.visual.width}; set width={self.visual.width} "
                "and size the neck's in_channels to it"
            )
        self.frozen = frozen
        if frozen:
            self.visual.requires_grad_(False)
        self.scales = tuple(float(s) for s in scales)
        self.pyramid = nn.ModuleList(_pyramid_level(s, self.visual.width) for s in self.scales)
        self.out_channels = [self.visual.width] * len(self.scales)
        self.strides = [self.patch_size / s for s in self.scales]

    def train(self, mode: bool = True) -> CLIPViT:
        super().train(mode)
        if self.frozen:
            self.visual.eval()
        return self

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        height, width = images.shape[-2:]
        grid = (height // self.patch_size, width // self.patch_size)
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.frozen):
            tokens = self.visual(images, output_tokens=True).patch_tokens  # [B, h*w, width]
        feature_map = rearrange(tokens, "b (h w) c -> b c h w", h=grid[0], w=grid[1])
        return tuple(level(feature_map) for level in self.pyramid)
