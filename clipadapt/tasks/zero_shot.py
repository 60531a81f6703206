"""Zero-shot class text features, one module for every caller (open_clip's ``zero_shot_classifier``).

Templates are strings with one ``{}`` for the class name. An attached prompt plugin that fixes the token
layout (CoOp, MaPLe, IVLP: ``Plugin.text_template``) replaces the caller's templates, so that the class
features carry its learned context: :func:`zero_shot_classifier` asks the CLIP
(``clip.class_prompt_templates``) before it tokenizes. The prompt classifier, the region task, the
long-text evaluation and the open-vocabulary detector all build their class features here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from open_clip.zero_shot_metadata import OPENAI_IMAGENET_TEMPLATES, SIMPLE_IMAGENET_TEMPLATES

if TYPE_CHECKING:
    from clipadapt.models.clip import CLIP

__all__ = [
    "TEMPLATE_SETS",
    "class_prompts",
    "encode_class_prompts",
    "ensemble_class_features",
    "resolve_templates",
    "tokenize_class_prompts",
    "zero_shot_classifier",
]

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


def tokenize_class_prompts(tokenizer: Any, classnames: Sequence[str], templates: Sequence[str]) -> torch.Tensor:
    """Token ids of :func:`class_prompts`; a prompt longer than the context is an error, not a silent cut.

    The tokenizer would truncate it and move the end-of-text token, so the class feature would
    describe a different (cut) name, and prompt plugins would put context where the class was.
    """
    prompts = class_prompts(classnames, templates)
    limit = tokenizer.context_length
    for index, prompt in enumerate(prompts):
        length = len(tokenizer.encode(prompt)) + 2  # + start and end of text
        if length > limit:
            name = classnames[index // len(templates)]
            raise ValueError(
                f"class name {name!r} does not fit the text context: the prompt {prompt!r} is {length} tokens "
                f"with start and end of text, the model's context_length is {limit}; shorten the class name"
            )
    return tokenizer(prompts)


def encode_class_prompts(clip: CLIP, tokens: torch.Tensor, num_classes: int, batch_size: int = 256) -> torch.Tensor:
    """Normalised class features ``[C, D]`` from the tokens of :func:`tokenize_class_prompts`, in chunks."""
    tokens = tokens.to(clip.logit_scale.device)
    chunks = [
        clip.encode_text(tokens[i : i + batch_size], normalize=True) for i in range(0, tokens.shape[0], batch_size)
    ]
    return ensemble_class_features(torch.cat(chunks), num_classes)


def zero_shot_classifier(
    clip: CLIP, tokenizer: Any, classnames: Sequence[str], templates: str | Sequence[str], batch_size: int = 256
) -> torch.Tensor:
    """Normalised class features ``[C, D]``: every template's prompt per class, encoded, averaged, normalised.

    Args:
        clip: The CLIP, with its plugins; an attached prompt plugin's template replaces ``templates``.
        tokenizer: The CLIP's tokenizer (``clipadapt.get_tokenizer``).
        classnames: The class names (``_`` reads as a space).
        templates: A ``TEMPLATE_SETS`` name or strings with one ``{}``.
        batch_size: Prompts per text forward.
    """
    active = clip.class_prompt_templates(resolve_templates(templates))
    tokens = tokenize_class_prompts(tokenizer, classnames, active)
    return encode_class_prompts(clip, tokens, len(classnames), batch_size)
