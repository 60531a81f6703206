"""Unfreezing base parameters from a plugin's ``attach``: for methods that fine-tune CLIP itself.

``create_model`` freezes the base CLIP before the first plugin attaches. Prompt learners keep it
frozen; region-text methods (FG-CLIP trains the whole CLIP, CLOC trains everything end to end) need
to say which base parameters train. They take a ``trainable`` argument and call
:func:`unfreeze_base`, so the rule stays "trainable = ``requires_grad`` after ``create_model``" and
adapter checkpoints store exactly what trained.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..models.clip import CLIP

__all__ = ["TRAINABLE_GROUPS", "unfreeze_base"]

# Named groups of base parameters (name prefixes); "none" unfreezes nothing.
TRAINABLE_GROUPS: dict[str, tuple[str, ...]] = {
    "all": ("visual.", "text.", "logit_scale"),
    "vision": ("visual.",),
    "text": ("text.",),
    "none": (),
}


def unfreeze_base(clip: CLIP, trainable: str | Sequence[str], owner: str) -> list[str]:
    """Set ``requires_grad=True`` on the base parameters that ``trainable`` selects; returns their names.

    Args:
        clip: The CLIP being adapted.
        trainable: A group of :data:`TRAINABLE_GROUPS` or a list of parameter-name prefixes
            (``["visual.transformer.resblocks.11.", "visual.ln_post", "visual.proj"]``).
        owner: The plugin's name, for error messages.

    Raises:
        ValueError: an unknown group, or a prefix that matches no base parameter.
    """
    if isinstance(trainable, str):
        if trainable not in TRAINABLE_GROUPS:
            raise ValueError(
                f"{owner} trainable={trainable!r} is not one of {sorted(TRAINABLE_GROUPS)} or a list of "
                "parameter-name prefixes"
            )
        prefixes = TRAINABLE_GROUPS[trainable]
    else:
        prefixes = tuple(trainable)
    base = [(n, p) for n, p in clip.named_parameters() if not n.startswith("plugins.")]
    unmatched = [pre for pre in prefixes if not any(n.startswith(pre) for n, _ in base)]
    if unmatched:
        raise ValueError(f"{owner} trainable prefixes {unmatched} match no parameter of model {clip.cfg.name!r}")
    chosen = [n for n, p in base if n.startswith(prefixes)]
    for name, param in base:
        if name.startswith(prefixes):
            param.requires_grad_(True)
    return chosen
