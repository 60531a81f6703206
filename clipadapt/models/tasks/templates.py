"""Prompt templates for zero-shot classification: strings with one ``{}`` for the class name."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from open_clip.zero_shot_metadata import OPENAI_IMAGENET_TEMPLATES, SIMPLE_IMAGENET_TEMPLATES

__all__ = ["TEMPLATE_SETS", "class_prompts", "ensemble_class_features", "resolve_templates"]

# open_clip keeps its templates as lambdas; configs hold strings, so they are rendered once here.
TEMPLATE_SETS: dict[str, tuple[str, ...]] = {
    "simple": ("a photo of a {}.",),
    "openai_imagenet": tuple(t("{}") for t in OPENAI_IMAGENET_TEMPLATES),
    "simple_imagenet": tuple(t("{}") for t in SIMPLE_IMAGENET_TEMPLATES),
    # The synthetic world's captions say "a red circle"; these read like them.
    "synthetic": ("a {}.", "a photo of a {}.", "an image of a {}.", "a picture of a {}.", "a {} on a background."),
}


def resolve_templates(templates: str | Sequence[str]) -> tuple[str, ...]:
    """A template set name (``TEMPLATE_SETS``) or a list of strings, each with exactly one ``{}``."""
    if isinstance(templates, str):
        if templates in TEMPLATE_SETS:
            return TEMPLATE_SETS[templates]
        if "{}" not in templates:
            raise ValueError(
                f"unknown template set {templates!r}; known: {sorted(TEMPLATE_SETS)}, or strings with '{{}}'"
            )
        templates = (templates,)
    templates = tuple(templates)
    if not templates:
        raise ValueError("at least one prompt template is needed")
    bad = [t for t in templates if not isinstance(t, str) or t.count("{}") != 1]
    if bad:
        raise ValueError(f"each template must be a string with exactly one '{{}}' for the class name, got {bad}")
    return templates


def class_prompts(classnames: Sequence[str], templates: Sequence[str]) -> list[str]:
    """Every prompt, class-major: ``[c0 t0, c0 t1, ..., c1 t0, ...]`` (``_`` in a name reads as a space)."""
    return [t.format(name.replace("_", " ")) for name in classnames for t in templates]


def ensemble_class_features(text_features: torch.Tensor, num_classes: int) -> torch.Tensor:
    """CLIP's prompt ensemble: normalised features of :func:`class_prompts` ``[C*T, D]`` -> ``[C, D]``.

    The features of each class's templates are averaged and normalised again.
    """
    return F.normalize(text_features.view(num_classes, -1, text_features.shape[-1]).mean(dim=1), dim=-1)
