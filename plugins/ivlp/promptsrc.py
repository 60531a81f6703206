"""PromptSRC's self-regulating losses (Khattak et al., ICCV 2023, https://arxiv.org/abs/2307.06948).

The definitions follow ``trainers/promptsrc.py`` of ``muzairkhattak/PromptSRC`` (``CustomCLIP.forward``
and ``PromptSRC.forward_backward``):

* ``loss_scl_text = text_weight * L1(norm(prompted class text features), norm(mean_t frozen text
  features))``: the frozen features of each class are averaged over the 60 ``TEMPLATES`` *before*
  normalising (``fixed_embeddings``), unlike CLIP's zero-shot ensembling;
* ``loss_scl_image = image_weight * L1(norm(prompted image features), norm(frozen image features))``;
* ``loss_scl_kl = kl_weight * F.kl_div(log_softmax(logits), log_softmax(zero_shot_logits),
  reduction='sum', log_target=True) / logits.numel()``, i.e. KL(zero-shot || prompted) summed over the
  batch and divided by batch * classes, at temperature 1, with ``zero_shot_logits = logit_scale *
  norm(frozen image features) @ norm(frozen class text features).T``.

L1 is ``F.l1_loss(..., reduction='mean')`` (mean over every element).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any

import torch
import torch.nn.functional as F

from clipadapt import get_tokenizer
from clipadapt.models import CLIP

__all__ = ["TEMPLATES", "PromptSRCConfig", "PromptSRCTeacher", "promptsrc_losses"]

# PromptSRC's trainers/imagenet_templates.py IMAGENET_TEMPLATES: 60 of CLIP's 80 ImageNet templates, in
# this order ("a photo of a {}." first). open_clip's OPENAI_IMAGENET_TEMPLATES are the 80.
TEMPLATES: tuple[str, ...] = (
    "a photo of a {}.", "a bad photo of a {}.", "a photo of many {}.", "a sculpture of a {}.",
    "a photo of the hard to see {}.", "a low resolution photo of the {}.", "a rendering of a {}.", "graffiti of a {}.",
    "a bad photo of the {}.", "a cropped photo of the {}.", "a tattoo of a {}.", "the embroidered {}.",
    "a photo of a hard to see {}.", "a bright photo of a {}.", "a photo of a clean {}.", "a photo of a dirty {}.",
    "a dark photo of the {}.", "a drawing of a {}.", "a photo of my {}.", "the plastic {}.",
    "a photo of the cool {}.", "a close-up photo of a {}.", "a black and white photo of the {}.",
    "a painting of the {}.", "a painting of a {}.", "a pixelated photo of the {}.", "a sculpture of the {}.",
    "a bright photo of the {}.", "a cropped photo of a {}.", "a plastic {}.", "a photo of the dirty {}.",
    "a jpeg corrupted photo of a {}.", "a blurry photo of the {}.", "a photo of the {}.", "a good photo of the {}.",
    "a rendering of the {}.", "a {} in a video game.", "a photo of one {}.", "a doodle of a {}.",
    "a close-up photo of the {}.", "the origami {}.", "the {} in a video game.", "a sketch of a {}.",
    "a doodle of the {}.", "a origami {}.", "a low resolution photo of a {}.", "the toy {}.",
    "a rendition of the {}.", "a photo of the clean {}.", "a photo of a large {}.", "a rendition of a {}.",
    "a photo of a nice {}.", "a photo of a weird {}.", "a blurry photo of a {}.", "a cartoon {}.", "art of a {}.",
    "a sketch of the {}.", "a embroidered {}.", "a pixelated photo of a {}.", "itap of the {}.",
)  # fmt: skip


@dataclass(frozen=True)
class PromptSRCConfig:
    """Weights of PromptSRC's losses (its ``vit_b16_c2_ep20_batch4_4+4ctx.yaml`` values) and the templates.

    Args:
        text_weight: ``TEXT_LOSS_WEIGHT`` (25).
        image_weight: ``IMAGE_LOSS_WEIGHT`` (10).
        kl_weight: Weight of the logit KL term (1 in the original, not configurable there).
        templates: Templates of the frozen text features; each with one ``{}``.
    """

    text_weight: float = 25.0
    image_weight: float = 10.0
    kl_weight: float = 1.0
    templates: tuple[str, ...] = TEMPLATES

    def __post_init__(self) -> None:
        for name in ("text_weight", "image_weight", "kl_weight"):
            if getattr(self, name) < 0:
                raise ValueError(f"PromptSRC {name} must be >= 0, got {getattr(self, name)}")
        templates = (self.templates,) if isinstance(self.templates, str) else tuple(self.templates)
        bad = [t for t in templates if not isinstance(t, str) or t.count("{}") != 1]
        if not templates or bad:
            raise ValueError(f"PromptSRC templates must be strings with exactly one '{{}}', got {bad or templates}")
        object.__setattr__(self, "templates", templates)

    @classmethod
    def build(cls, cfg: bool | dict[str, Any] | PromptSRCConfig | None) -> PromptSRCConfig | None:
        """None/False: off; True: the defaults; a dict of this class's fields."""
        if cfg is None or cfg is False:
            return None
        if cfg is True:
            return cls()
        if isinstance(cfg, cls):
            return cfg
        if not isinstance(cfg, dict):
            raise TypeError(f"promptsrc must be None, a bool or a dict, got {type(cfg).__name__}")
        unknown = set(cfg) - {f.name for f in fields(cls)}
        if unknown:
            raise TypeError(f"unknown PromptSRC options {sorted(unknown)}; known: {[f.name for f in fields(cls)]}")
        return cls(**cfg)


def promptsrc_losses(
    cfg: PromptSRCConfig,
    text_features: torch.Tensor,
    frozen_text_features: torch.Tensor,
    image_features: torch.Tensor,
    frozen_image_features: torch.Tensor,
    logits: torch.Tensor,
    logit_scale: torch.Tensor | float,
) -> dict[str, torch.Tensor]:
    """The three weighted terms from features (normalised here) and the prompted logits [B, C].

    ``frozen_text_features`` [C, D] are the template means of the frozen text features (not yet
    normalised); ``frozen_image_features`` [B, D]; ``logit_scale`` is exp'd.
    """
    text = F.normalize(text_features.float(), dim=-1)
    frozen_text = F.normalize(frozen_text_features.float(), dim=-1)
    image = F.normalize(image_features.float(), dim=-1)
    frozen_image = F.normalize(frozen_image_features.float(), dim=-1)
    zero_shot_logits = torch.as_tensor(logit_scale).detach().float() * frozen_image @ frozen_text.t()  # [B, C]
    logits = logits.float()
    kl = (
        F.kl_div(F.log_softmax(logits, dim=1), F.log_softmax(zero_shot_logits, dim=1), reduction="sum", log_target=True)
        / logits.numel()
    )
    return {
        "loss_scl_text": cfg.text_weight * F.l1_loss(text, frozen_text, reduction="mean"),
        "loss_scl_image": cfg.image_weight * F.l1_loss(image, frozen_image, reduction="mean"),
        "loss_scl_kl": cfg.kl_weight * kl,
    }


class PromptSRCTeacher:
    """Frozen CLIP features: the base model run with every plugin hook disabled, without gradients.

    Text features (template means, not normalised) are cached per class-name list.
    """

    def __init__(self, cfg: PromptSRCConfig) -> None:
        self.cfg = cfg
        self._text_cache: dict[tuple[str, ...], torch.Tensor] = {}

    def text_features(self, clip: CLIP, classnames: Sequence[str]) -> torch.Tensor:
        """Frozen class text features averaged over the templates: [C, D], fp32, not normalised."""
        key = tuple(str(name) for name in classnames)
        device = clip.logit_scale.device
        cached = self._text_cache.get(key)
        if cached is None:
            tokenizer = get_tokenizer(model=clip)
            names = [name.replace("_", " ") for name in key]
            total = None
            with clip.plugins_disabled(), torch.no_grad(), torch.autocast(device.type, enabled=False):
                for template in self.cfg.templates:  # one text-tower call per template, as PromptSRC
                    features = clip.encode_text(tokenizer([template.format(n) for n in names]).to(device)).float()
                    total = features if total is None else total + features
            cached = self._text_cache[key] = total / len(self.cfg.templates)
        return cached.to(device)

    def image_features(self, clip: CLIP, images: torch.Tensor) -> torch.Tensor:
        """Frozen image features [B, D], not normalised."""
        with clip.plugins_disabled(), torch.no_grad():
            return clip.encode_image(images)
