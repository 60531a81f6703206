"""CLOCPrompter: CLOC's promptable region embeddings and its region losses, as a plugin."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from clipadapt.models import CLIP
from clipadapt.models.dense import DenseVisionOutput
from clipadapt.plugins import Plugin, PluginCompatibilityError
from clipadapt.plugins.finetune import unfreeze_base
from clipadapt.registry import PLUGINS

from .losses import cloc_region_loss, grounding_loss
from .prompter import Prompter

__all__ = ["CLOCPrompter"]


def _normalised(boxes: Sequence[torch.Tensor], image_size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """All boxes ``[K, 4]`` divided by the image size, and the image index of each ``[K]``."""
    height, width = image_size
    flat = torch.cat(list(boxes)) if len(boxes) else torch.zeros(0, 4)
    scale = flat.new_tensor([width, height, width, height])
    index = torch.cat([torch.full((len(b),), i, dtype=torch.long, device=flat.device) for i, b in enumerate(boxes)])
    return flat / scale, index


@PLUGINS.register_module()
class CLOCPrompter(Plugin):
    """CLOC (Chen et al., 2024, https://arxiv.org/abs/2410.02746): region embeddings from box prompts.

    The :class:`~.prompter.Prompter` takes each box's corners as two sinusoidal prompt tokens,
    prepends them to the ViT tokens of the last block (before pooling and projection), runs one
    single-head transformer layer, mean-pools and projects into the joint space. Its norm and
    projection start as copies of the tower's ``ln_post`` and ``proj``.

    Losses, with :class:`~clipadapt.tasks.RegionTextAlignment` (set its ``region`` weight to 0:
    this plugin computes the region term): ``loss_cloc = lambda * InfoNCE`` over every region and
    region caption of the batch, ignoring negatives whose captions are more similar than
    ``duplicate_threshold`` (similarity without gradient); with ``grounding``, ``loss_grounding =
    lambda * L2``: the Prompter takes the caption's text feature as its prompt and a 2-layer GELU MLP
    predicts the normalised box.

    Args:
        loss_weight: CLOC's lambda (1).
        grounding: Add the grounding loss.
        duplicate_threshold: Caption similarity above which a negative is ignored (0.9).
        mlp_ratio: MLP width of the Prompter's layer.
        trainable: Base parameters that train (CLOC trains everything): ``'all'``, ``'vision'``,
            ``'text'``, ``'none'`` or name prefixes; the Prompter always trains.
    """

    prefix = "cloc"
    provides_region_loss = True

    def __init__(
        self,
        loss_weight: float = 1.0,
        grounding: bool = True,
        duplicate_threshold: float = 0.9,
        mlp_ratio: float = 4.0,
        trainable: str | Sequence[str] = "all",
    ) -> None:
        super().__init__()
        if loss_weight < 0:
            raise ValueError(f"CLOCPrompter loss_weight must be >= 0, got {loss_weight}")
        if not -1.0 <= duplicate_threshold <= 1.0:
            raise ValueError(
                f"CLOCPrompter duplicate_threshold is a cosine similarity in [-1, 1], got {duplicate_threshold}"
            )
        self.loss_weight = loss_weight
        self.grounding = bool(grounding)
        self.duplicate_threshold = duplicate_threshold
        self.mlp_ratio = mlp_ratio
        self.trainable = trainable if isinstance(trainable, str) else list(trainable)

    def attach(self, clip: CLIP) -> None:
        width = clip.visual.width
        if width % 4:
            raise PluginCompatibilityError(
                f"CLOCPrompter needs a ViT width divisible by 4, {clip.cfg.name!r} has {width}"
            )
        self.prompter = Prompter(width, clip.embed_dim, self.mlp_ratio)
        with torch.no_grad():
            self.prompter.norm.load_state_dict(clip.visual.ln_post.state_dict())
            self.prompter.proj.copy_(clip.visual.proj)
        self.box_head = (
            nn.Sequential(nn.Linear(width, width), nn.GELU(), nn.Linear(width, 4)) if self.grounding else None
        )
        unfreeze_base(clip, self.trainable, "CLOCPrompter")

    def region_features(self, clip: CLIP, vision: DenseVisionOutput, boxes: Sequence[torch.Tensor]) -> torch.Tensor:
        """Region embeddings ``[sum K_i, embed_dim]`` of per-image xyxy pixel boxes."""
        normalised, index = _normalised(boxes, vision.image_size)
        tokens = vision.tokens[:, : 1 + vision.num_patches]  # CLS + patches; plugin prompt tokens left out
        return self.prompter(normalised.to(tokens.device), tokens, index.to(tokens.device))

    def losses(self, outputs: dict[str, Any]) -> dict[str, torch.Tensor]:
        """``loss_cloc`` and (with ``grounding``) ``loss_grounding`` from a region task's outputs."""
        if outputs.get("task") != "region" or outputs.get("region_features") is None:
            return {}
        regions, texts = outputs["region_features"], outputs["phrase_features"]
        if regions.shape[0] == 0:
            zero = regions.sum() * 0.0
            return {"loss_cloc": zero, **({"loss_grounding": zero} if self.grounding else {})}
        scale = outputs["region_logit_scale"]
        losses = {"loss_cloc": self.loss_weight * cloc_region_loss(regions, texts, scale, self.duplicate_threshold)}
        if self.grounding:
            vision: DenseVisionOutput = outputs["vision"]
            target, index = _normalised(outputs["boxes"], vision.image_size)
            tokens = vision.tokens[:, : 1 + vision.num_patches]
            pooled = self.prompter.encode(self.prompter.text_prompts(texts), tokens, index.to(tokens.device))
            predicted = self.box_head(pooled).sigmoid()
            losses["loss_grounding"] = self.loss_weight * grounding_loss(predicted, target.to(predicted.device))
        return losses

    def extra_repr(self) -> str:
        return f"loss_weight={self.loss_weight}, grounding={self.grounding}, trainable={self.trainable!r}"
