"""The MMEngine models: each owns a CLIP and its plugins, and has ``loss`` / ``predict`` / ``tensor`` modes.

- :class:`PromptClassifier`: class names -> prompts -> text features; image features -> logits.
- :class:`ImageTextContrastive`: CLIP's symmetric InfoNCE, gathered across ranks, short and long captions.
- :class:`RegionTextAlignment`: FG-CLIP / FG-CLIP 2 region-text losses over boxes, phrases and hard negatives.
- :class:`ClipDataPreprocessor`: uint8 images -> normalised floats on the model's device.
"""

from .base import ClipTask
from .contrastive import ImageTextContrastive, clip_loss, gather_features
from .preprocessor import ClipDataPreprocessor
from .prompt_classifier import PromptClassifier
from .region import DEFAULT_LOSS_WEIGHTS, RegionTextAlignment
from .zero_shot import TEMPLATE_SETS, resolve_templates, zero_shot_classifier

__all__ = [
    "DEFAULT_LOSS_WEIGHTS",
    "TEMPLATE_SETS",
    "ClipDataPreprocessor",
    "ClipTask",
    "ImageTextContrastive",
    "PromptClassifier",
    "RegionTextAlignment",
    "clip_loss",
    "gather_features",
    "resolve_templates",
    "zero_shot_classifier",
]
