"""Data sets in real formats, their transforms, and the synthetic world that writes those formats.

- :class:`FewShotDataset`: image folders + CoOp split JSON (k-shot, base/novel).
- :class:`ImageTextDataset`: open_clip-style image-text CSV, optional long captions.
- :class:`RegionDataset`: COCO-style region JSON (boxes, phrases, hard negatives); ``region_collate``.
- transforms (``LoadImage``, ``RandomResizedCrop``, ``Resize``, ``CenterCrop``,
  ``RandomHorizontalFlip``) on ``torchvision.transforms.v2``, registered in ``TRANSFORMS``.
- :class:`SyntheticStreamDataset`: image-caption pairs drawn on the fly from a synthetic world (pretraining).
- :class:`ClusterBatchSampler`: batches drawn from one pseudo-label cluster each (CLIP-MoE's DMU).
- :mod:`clipadapt.datasets.synthetic`: the procedural world (``ensure_synthetic_world``).
"""

from .base import BaseClipDataset
from .few_shot import FewShotDataset, few_shot_sample, subsample_classes
from .image_text import ImageTextDataset
from .regions import RegionDataset, region_collate
from .samplers import ClusterBatchSampler, load_labels
from .stream import SyntheticStreamDataset
from .synthetic import WorldConfig, ensure_synthetic_world, generate_synthetic_world
from .transforms import (
    CenterCrop,
    LoadImage,
    RandomHorizontalFlip,
    RandomResizedCrop,
    Resize,
    SanitizeBoxes,
    V2Transform,
    build_pipeline,
    sanitize_boxes,
    to_boxes,
)

__all__ = [
    "BaseClipDataset",
    "CenterCrop",
    "ClusterBatchSampler",
    "FewShotDataset",
    "ImageTextDataset",
    "LoadImage",
    "RandomHorizontalFlip",
    "RandomResizedCrop",
    "RegionDataset",
    "Resize",
    "SanitizeBoxes",
    "SyntheticStreamDataset",
    "V2Transform",
    "WorldConfig",
    "build_pipeline",
    "ensure_synthetic_world",
    "few_shot_sample",
    "generate_synthetic_world",
    "load_labels",
    "region_collate",
    "sanitize_boxes",
    "subsample_classes",
    "to_boxes",
]
