"""Prompt templates for zero-shot classification: strings with one ``{}`` for the class name."""

from __future__ import annotations

from collections.abc import Sequence

from open_clip.zero_shot_metadata import OPENAI_IMAGENET_TEMPLATES, SIMPLE_IMAGENET_TEMPLATES

__all__ = ["TEMPLATE_SETS", "resolve_templates"]

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
