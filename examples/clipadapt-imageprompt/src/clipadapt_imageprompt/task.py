"""``PatchConditionedClassifier``: ``PromptClassifier`` that also passes each image's mean patch token."""

from __future__ import annotations

import torch

from clipadapt.models.towers import VisionOutput
from clipadapt.registry import MODELS
from clipadapt.tasks import PromptClassifier

__all__ = ["PatchConditionedClassifier"]


# --8<-- [start:task]
@MODELS.register_module()
class PatchConditionedClassifier(PromptClassifier):
    """Prompt classification whose text tower also receives ``patch_mean`` per image.

    Two steps of :class:`~clipadapt.tasks.PromptClassifier`'s forward change; everything else
    (per-image class features in bounded calls, logits, loss, predictions) is inherited.
    """

    provides_conditions = {"text": ("image_features", "patch_mean")}

    def encode_images(self, inputs: torch.Tensor) -> VisionOutput:
        return self.clip.forward_image(inputs, output_tokens=True)  # patch tokens [B, h*w, width] too

    def text_conditions(self, image_output: VisionOutput, image_features: torch.Tensor) -> dict[str, torch.Tensor]:
        conditions = super().text_conditions(image_output, image_features)
        conditions["patch_mean"] = image_output.patch_tokens.mean(dim=1)  # [B, vision width]
        return conditions


# --8<-- [end:task]
