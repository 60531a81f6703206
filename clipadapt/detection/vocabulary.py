"""Class-name text features of a frozen CLIP: the vocabulary of an open-vocabulary detector."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from clipadapt.models.clip import CLIP
from clipadapt.tasks.zero_shot import zero_shot_classifier

from .clip_models import tokenizer_for

__all__ = ["check_vocabulary", "vocabulary_features"]


def check_vocabulary(names: Sequence[str], where: str = "vocabulary") -> list[str]:
    """The names as a list of non-empty, distinct strings; raises naming what is wrong."""
    if isinstance(names, str):
        raise TypeError(f"{where} must be a sequence of class names, not the string {names!r}")
    names = [str(n) for n in names]
    if not names:
        raise ValueError(f"{where} is empty: an open-vocabulary detector needs at least one class name")
    blank = [i for i, n in enumerate(names) if not n.strip()]
    if blank:
        raise ValueError(f"{where} has empty class names at positions {blank}")
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"{where} names classes more than once: {duplicates}")
    return names


@torch.no_grad()
def vocabulary_features(clip: CLIP, names: Sequence[str], templates: str | Sequence[str] = "simple") -> torch.Tensor:
    """Normalised text features ``[C, D]`` of the class names, prompt-ensembled over the templates.

    An attached prompt learner (CoOp, MaPLe, ...) supplies its own template and learned context,
    exactly as in :class:`clipadapt.tasks.PromptClassifier`.
    """
    names = check_vocabulary(names)
    return zero_shot_classifier(clip, tokenizer_for(clip), names, templates)
