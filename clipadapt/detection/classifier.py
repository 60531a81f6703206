"""Class names as the classifier of an MMDetection box head: CLIP text features instead of a Linear."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from mmdet.registry import MODELS
from torch import nn

from .clip_models import frozen_clip, on_device
from .vocabulary import vocabulary_features

__all__ = ["CLIPTextClassifier"]


@MODELS.register_module()
class CLIPTextClassifier(nn.Module):
    """``cls_predictor_cfg`` of a ``BBoxHead``: region features scored against class-name text features.

    ``logits = temperature * cos(proj(x), [t_1 .. t_C, b])``: a linear projection of the head's features
    into CLIP's joint space, L2-normalised, against the L2-normalised CLIP text features ``t_c`` of the
    class names and a learned background embedding ``b`` (last column, as MMDetection's heads expect).
    Detic's ``ZeroShotClassifier`` does the same with a fixed zero background and features read from
    a file; here the features come from the CLIP itself, so the vocabulary is a list of names that
    :meth:`set_vocabulary` replaces at any time (train on base classes, test on base + novel) without
    touching the trained weights. Use it with ``reg_class_agnostic=True``: box regression must not
    depend on the number of classes.

    ``BBoxHead`` passes ``in_features`` and ``out_features`` (= ``num_classes + 1``).

    Args:
        in_features: Width of the head's region features.
        out_features: ``num_classes + 1`` of the head's config.
        clip: ``dict(model_name, pretrained, adapter)``; with a prompt learner's adapter, the class
            features use its learned prompts.
        vocabulary: Class names at build time; None leaves it to :class:`OpenVocabularyHook` (which
            reads the data set's ``metainfo['classes']``) or to :meth:`set_vocabulary`.
        templates: Prompt templates (a set name or strings with one ``{}``).
        temperature: Scale of the cosine logits (Detic: 50).
        learn_temperature: Train the temperature (as a log) too.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        clip: dict[str, Any],
        vocabulary: Sequence[str] | None = None,
        templates: str | Sequence[str] = "simple",
        temperature: float = 50.0,
        learn_temperature: bool = False,
    ) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.clip_cfg = dict(clip)
        self.templates = templates
        self.num_classes = out_features - 1
        embed_dim = frozen_clip(self.clip_cfg).cfg.embed_dim
        self.proj = nn.Linear(in_features, embed_dim)
        self.background = nn.Parameter(torch.randn(embed_dim) * embed_dim**-0.5)
        log_t = torch.tensor(float(temperature)).log()
        if learn_temperature:
            self.log_temperature = nn.Parameter(log_t)
        else:
            self.register_buffer("log_temperature", log_t)
        self.vocabulary: list[str] = []
        self.register_buffer("text_features", torch.zeros(0, embed_dim), persistent=False)
        if vocabulary is not None:
            if len(vocabulary) != self.num_classes:
                raise ValueError(
                    f"vocabulary has {len(vocabulary)} class names but the box head has num_classes="
                    f"{self.num_classes}; make them agree"
                )
            self.set_vocabulary(vocabulary)

    @property
    def temperature(self) -> torch.Tensor:
        return self.log_temperature.exp()

    def set_vocabulary(self, classes: Sequence[str]) -> None:
        """Replace the class names (label ``i`` is ``classes[i]``); the trained weights are untouched."""
        device = self.proj.weight.device
        clip = on_device(frozen_clip(self.clip_cfg), device)
        self.text_features = vocabulary_features(clip, classes, self.templates)
        self.vocabulary = list(classes)
        self.num_classes = len(self.vocabulary)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[N, in_features]`` region features -> ``[N, C + 1]`` logits, background last."""
        if not self.vocabulary:
            raise RuntimeError(
                "CLIPTextClassifier has no vocabulary: give vocabulary=[...], add OpenVocabularyHook to "
                "custom_hooks (it reads the data set's metainfo['classes']), or call set_vocabulary()"
            )
        region = F.normalize(self.proj(x), dim=-1)
        background = F.normalize(self.background, dim=0)[None]
        classes = torch.cat([self.text_features.to(region.dtype), background.to(region.dtype)])
        return self.temperature.to(region.dtype) * region @ classes.t()
