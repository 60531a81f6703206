"""RegionAlign: FG-CLIP / FG-CLIP 2 region features (value-path dense map + RoIAlign) as a plugin."""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch import nn

from clipadapt.models import CLIP
from clipadapt.models.dense import DenseVisionOutput, roi_region_features
from clipadapt.plugins import Plugin, PluginCompatibilityError
from clipadapt.plugins.finetune import unfreeze_base
from clipadapt.registry import PLUGINS

__all__ = ["RegionAlign"]


@PLUGINS.register_module()
class RegionAlign(Plugin):
    """Region features of FG-CLIP and FG-CLIP 2 (Xie et al., 2025; code 360CVGroup/FG-CLIP).

    The patch tokens of the last block, optionally with that block re-run without query-key
    attention (``value_path``), go through the final norm and projection on the patch grid and are
    pooled per box by one batched RoIAlign (:func:`clipadapt.models.dense.roi_region_features`).
    With ``dense_head`` the norm and projection of the dense branch are a trainable copy of the
    tower's (FG-CLIP 2's ``dense_feature_head``), so region training does not move the global head.

    The plugin changes no token: global features are the base CLIP's until its parameters train. The
    losses live in :class:`~clipadapt.tasks.RegionTextAlignment`, which asks this plugin for
    region features.

    Args:
        value_path: Dense tokens from the last block without query-key attention (FG-CLIP, CLIPSelf).
        dense_head: A trainable copy of ``ln_post`` and ``proj`` for the dense branch (FG-CLIP 2).
        trainable: Base parameters that train: ``'all'`` (FG-CLIP trains the whole CLIP),
            ``'vision'``, ``'text'``, ``'none'``, or a list of parameter-name prefixes.
    """

    prefix = "region_align"

    def __init__(
        self, value_path: bool = True, dense_head: bool = False, trainable: str | Sequence[str] = "all"
    ) -> None:
        super().__init__()
        self.value_path = bool(value_path)
        self.use_dense_head = bool(dense_head)
        self.trainable = trainable if isinstance(trainable, str) else list(trainable)
        self.dense_norm: nn.Module | None = None
        self.dense_proj: nn.Parameter | None = None

    def attach(self, clip: CLIP) -> None:
        if self.use_dense_head:
            # Copies start equal to the tower's head, so the untrained plugin gives the base features.
            self.dense_norm = copy.deepcopy(clip.visual.ln_post).requires_grad_(True)
            self.dense_proj = nn.Parameter(clip.visual.proj.detach().clone())
        chosen = unfreeze_base(clip, self.trainable, "RegionAlign")
        if not chosen and not self.use_dense_head:
            raise PluginCompatibilityError(
                "RegionAlign with trainable='none' and dense_head=False trains nothing; "
                "choose base parameters to train or set dense_head=True"
            )

    def region_features(self, clip: CLIP, vision: DenseVisionOutput, boxes: Sequence[torch.Tensor]) -> torch.Tensor:
        """Pooled region features ``[sum K_i, embed_dim]`` for per-image xyxy pixel boxes."""
        return roi_region_features(
            clip, vision, boxes, value_path=self.value_path, norm=self.dense_norm, proj=self.dense_proj
        )

    def extra_repr(self) -> str:
        return f"value_path={self.value_path}, dense_head={self.use_dense_head}, trainable={self.trainable!r}"
