"""CLIP's opinion of each detected box, and its geometric-mean ensemble with the detector's scores.

A detector trained on base categories ranks novel objects poorly: its classifier has only ever seen
base objects as positives. ViLD and F-VLM add CLIP's own zero-shot score of every box and combine the
two per class by a weighted geometric mean, with a larger CLIP weight for the novel classes::

    p_c = p_det_c ** (1 - w_c) * p_clip_c ** w_c,    w_c = novel_weight if c is novel else base_weight

(F-VLM's defaults: 0.35 for base, 0.65 for novel). The background probability stays the detector's.

Two ways to get a box's CLIP feature, both one batched call for all boxes of a batch:

- ``mode="dense"`` (default): the frozen CLIP's dense patch features pooled per box
  (:func:`clipadapt.models.dense.encode_regions`, FG-CLIP's value path), or the region pooler of an
  attached region plugin (CLOC) when the CLIP comes from such an adapter. One vision forward per
  image, whatever the number of boxes.
- ``mode="crop"``: ViLD's crops. Every box is cut out of the image and resized to the CLIP's input size
  by one ``torchvision.ops.roi_align`` call on the pixels, then encoded as an image. Costs one CLIP
  forward per box, and is the stronger choice for CLIPs whose dense features are poor (small ones).

This module does not import MMDetection; :class:`clipadapt.detection.CLIPEnsembleRoIHead` uses it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import roi_align

from clipadapt.models.clip import CLIP
from clipadapt.models.dense import boxes_to_rois, encode_regions

from .clip_models import frozen_clip, on_device
from .vocabulary import check_vocabulary, vocabulary_features

__all__ = ["CLIPRegionScorer"]

MODES = ("dense", "crop")


class CLIPRegionScorer(nn.Module):
    """Zero-shot class probabilities of boxes from a frozen CLIP, and the base/novel score ensemble.

    Args:
        clip: ``dict(model_name, pretrained, adapter)`` (:mod:`clipadapt.detection.clip_models`).
        mode: ``"dense"`` (pooled patch features) or ``"crop"`` (crops encoded as images).
        templates: Prompt templates (a set name or strings with one ``{}``).
        image_size: Side the images are resized to before the dense forward; None = the CLIP's own
            input size. Larger sizes resize the positional embedding (``VisionTower.dynamic_size``).
        value_path: Dense mode: pool FG-CLIP's value-path features of the last block.
        temperature: Scale of the cosine logits before the softmax over the vocabulary; None = the
            CLIP's ``logit_scale``.
        base_weight: CLIP's weight in the geometric mean for base classes.
        novel_weight: CLIP's weight for novel classes.
        batch_size: Crops encoded per forward in crop mode.
    """

    clip: CLIP  # the shared frozen CLIP, kept out of the module tree (see __init__)
    text_features: torch.Tensor  # buffer [C, D]
    weights: torch.Tensor  # buffer [C]

    def __init__(
        self,
        clip: dict[str, Any],
        mode: str = "dense",
        templates: str | Sequence[str] = "simple",
        image_size: int | None = None,
        value_path: bool = True,
        temperature: float | None = None,
        base_weight: float = 0.35,
        novel_weight: float = 0.65,
        batch_size: int = 256,
    ) -> None:
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"region scorer mode must be one of {MODES}, got {mode!r}")
        for name, value in (("base_weight", base_weight), ("novel_weight", novel_weight)):
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {value}")
        self.clip_cfg = dict(clip)
        self.mode = mode
        self.templates = templates
        self.image_size = image_size
        self.value_path = value_path
        self.base_weight = base_weight
        self.novel_weight = novel_weight
        self.batch_size = batch_size
        model = frozen_clip(self.clip_cfg)
        # Held outside the module tree (no state_dict entries, no parameters for the optimizer or DDP), and
        # resolved once: cache:// paths are not looked up again on every batch.
        self.__dict__["clip"] = model
        if image_size is not None and image_size != model.visual.cfg.image_size:
            model.visual.dynamic_size = True  # dense mode runs the CLIP at image_size
        self.temperature = float(model.logit_scale.exp()) if temperature is None else float(temperature)
        self.vocabulary: list[str] = []
        self.register_buffer("text_features", torch.zeros(0, model.cfg.embed_dim), persistent=False)
        self.register_buffer("weights", torch.zeros(0), persistent=False)

    def set_vocabulary(self, classes: Sequence[str], novel_classes: Sequence[str] = ()) -> None:
        """Class names in label order; the names in ``novel_classes`` get ``novel_weight``."""
        classes = check_vocabulary(classes)
        unknown = sorted(set(novel_classes) - set(classes))
        if unknown:
            raise ValueError(f"novel classes {unknown} are not in the vocabulary {classes}")
        device = self.text_features.device
        self.vocabulary = classes
        self.text_features = vocabulary_features(on_device(self.clip, device), classes, self.templates)
        novel = set(novel_classes)
        self.weights = torch.tensor(
            [self.novel_weight if c in novel else self.base_weight for c in classes], device=device
        )

    @torch.no_grad()
    def region_features(self, images: torch.Tensor, boxes: Sequence[torch.Tensor]) -> torch.Tensor:
        """Normalised CLIP features ``[sum K_i, D]`` of boxes ``[K_i, 4]`` (xyxy pixels of ``images``)."""
        clip = on_device(self.clip, images.device)
        native = clip.visual.cfg.image_size
        if self.mode == "crop":
            rois = boxes_to_rois(list(boxes), images.dtype, images.device)
            features = [
                clip.encode_image(
                    roi_align(images, rois[i : i + self.batch_size], native, 1.0, sampling_ratio=-1, aligned=True),
                    normalize=True,
                )
                for i in range(0, rois.shape[0], self.batch_size)
            ]
            return torch.cat(features) if features else images.new_zeros(0, clip.cfg.embed_dim)
        size = self.image_size or native
        height, width = images.shape[-2:]
        if (height, width) != (size, size):
            images = F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False)
            scale = images.new_tensor([size / width, size / height, size / width, size / height])
            boxes = [b * scale for b in boxes]
        return encode_regions(clip, images, list(boxes), value_path=self.value_path, normalize=True)

    def class_probs(self, images: torch.Tensor, boxes: Sequence[torch.Tensor]) -> torch.Tensor:
        """CLIP's softmax over the vocabulary for every box: ``[sum K_i, C]``."""
        if not self.vocabulary:
            raise RuntimeError("the region scorer has no vocabulary: call set_vocabulary(classes, novel_classes)")
        features = self.region_features(images, boxes)
        logits = self.temperature * features @ self.text_features.to(features.dtype).t()
        return logits.float().softmax(dim=-1)

    def ensemble(self, detector_probs: torch.Tensor, clip_probs: torch.Tensor) -> torch.Tensor:
        """Per-class geometric mean ``p_det ** (1 - w) * p_clip ** w`` of foreground probabilities ``[K, C]``."""
        if detector_probs.shape != clip_probs.shape:
            raise ValueError(
                f"detector scores {tuple(detector_probs.shape)} and CLIP scores {tuple(clip_probs.shape)} differ: "
                "the detector and the region scorer must share one vocabulary"
            )
        w = self.weights.to(detector_probs.dtype)
        tiny = torch.finfo(detector_probs.dtype).tiny
        return detector_probs.clamp_min(tiny) ** (1 - w) * clip_probs.to(detector_probs.dtype).clamp_min(tiny) ** w
