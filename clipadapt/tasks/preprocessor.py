"""The data preprocessor of every task: uint8 images -> normalised floats on the model's device."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from mmengine.model import BaseDataPreprocessor
from open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD

from clipadapt.registry import MODELS

__all__ = ["ClipDataPreprocessor"]

_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16, "float64": torch.float64}


@MODELS.register_module()
class ClipDataPreprocessor(BaseDataPreprocessor):
    """Normalise a batch of uint8 images with CLIP's mean and std, on the model's device.

    Datasets keep images as uint8 ``[3, H, W]`` (a quarter of the float size through the data
    loader); this casts and normalises them where the model runs. ``data_samples`` pass through,
    with tensors moved to the device.

    Args:
        mean: Per-channel mean in [0, 1] units (OpenAI's by default; open_clip's ``image_mean``).
        std: Per-channel std in [0, 1] units.
        dtype: Cast the images to this dtype (``'bfloat16'``, ...); ``None`` keeps float32. Under
            autocast leave it ``None``: autocast casts where it pays.
        non_blocking: Copy host -> device without blocking.
    """

    def __init__(
        self,
        mean: Sequence[float] = OPENAI_DATASET_MEAN,
        std: Sequence[float] = OPENAI_DATASET_STD,
        dtype: str | torch.dtype | None = None,
        non_blocking: bool = False,
    ) -> None:
        super().__init__(non_blocking=non_blocking)
        if len(mean) != 3 or len(std) != 3:
            raise ValueError(f"mean and std need 3 values (RGB), got {list(mean)} and {list(std)}")
        if any(s <= 0 for s in std):
            raise ValueError(f"std must be positive, got {list(std)}")
        if isinstance(dtype, str):
            if dtype not in _DTYPES:
                raise ValueError(f"dtype must be one of {sorted(_DTYPES)}, got {dtype!r}")
            dtype = _DTYPES[dtype]
        self.dtype = dtype
        # In uint8 units: (x / 255 - mean) / std == (x - 255 mean) / (255 std).
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1) * 255, False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1) * 255, False)

    def forward(self, data: dict, training: bool = False) -> dict[str, Any]:
        """``{'inputs': uint8 [B, 3, H, W] (or a list of [3, H, W]), 'data_samples': ...}`` -> float inputs."""
        data = self.cast_data(data)  # moves every tensor (images and data_samples) to the device
        inputs = data["inputs"]
        if isinstance(inputs, (list, tuple)):
            shapes = {tuple(x.shape) for x in inputs}
            if len(shapes) != 1:
                raise ValueError(
                    f"images of one batch differ in size {sorted(shapes)}; resize them in the pipeline "
                    "(dict(type='Resize', size=...), dict(type='CenterCrop', size=...))"
                )
            inputs = torch.stack(list(inputs))
        if inputs.dim() != 4 or inputs.shape[1] != 3:
            raise ValueError(f"inputs must be images [B, 3, H, W], got {tuple(inputs.shape)}")
        if inputs.dtype != torch.uint8:
            raise TypeError(f"inputs must be uint8 images (0..255) as the datasets produce them, got {inputs.dtype}")
        images = (inputs.float() - self.mean) / self.std
        if self.dtype is not None:
            images = images.to(self.dtype)
        return {"inputs": images, "data_samples": data.get("data_samples")}
