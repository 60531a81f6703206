"""CLOC (Chen et al., 2024, https://arxiv.org/abs/2410.02746): promptable region embeddings."""

from .losses import cloc_region_loss, duplicate_negatives, grounding_loss
from .plugin import CLOCPrompter
from .prompter import Prompter, sinusoidal_corners

__all__ = [
    "CLOCPrompter",
    "Prompter",
    "cloc_region_loss",
    "duplicate_negatives",
    "grounding_loss",
    "sinusoidal_corners",
]
