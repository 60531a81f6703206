"""Open-vocabulary detection with MMDetection 3.x: clipadapt's CLIP as classifier, backbone and box scorer.

Load it from an MMDetection config (nothing in MMDetection is modified)::

    default_scope = "mmdet"
    custom_imports = dict(imports=["clipadapt.detection"], allow_failed_imports=False)

It registers, into MMDetection's registries:

- ``CLIPTextClassifier``: a box head's ``cls_predictor_cfg``; class names -> CLIP text features;
- ``CLIPViT``: a CLIP vision tower with ViTDet's simple feature pyramid, frozen or trainable;
- ``CLIPEnsembleRoIHead``: ``StandardRoIHead`` + CLIP's zero-shot score of every box, ensembled with
  separate weights for base and novel classes;
- ``OpenVocabRCNN``: a ``TwoStageDetector`` whose vocabulary can be replaced;
- ``OpenVocabularyHook``: sets the vocabulary from each phase's data set metainfo.

These need ``mmdet==3.3.0`` and a full ``mmcv==2.1.0``: ``python tools/install_mmdet.py`` builds, caches
and installs them (``make test`` runs it); see docs/mmdetection.md. :class:`CLIPRegionScorer` and
:func:`vocabulary_features` need neither.
"""

from __future__ import annotations

import importlib.util
from typing import Any

from .region_scorer import CLIPRegionScorer
from .vocabulary import vocabulary_features

_MMDET_NAMES = (
    "CLIPEnsembleRoIHead",
    "CLIPTextClassifier",
    "CLIPViT",
    "OpenVocabRCNN",
    "OpenVocabularyHook",
    "dataset_vocabulary",
)

if importlib.util.find_spec("mmdet") is not None:  # register into MMDetection's registries
    from .backbone import CLIPViT
    from .classifier import CLIPTextClassifier
    from .detector import CLIPEnsembleRoIHead, OpenVocabRCNN
    from .hooks import OpenVocabularyHook, dataset_vocabulary
else:

    def __getattr__(name: str) -> Any:
        if name in _MMDET_NAMES:
            raise ImportError(
                f"clipadapt.detection.{name} needs MMDetection 3.3.0 with a full mmcv 2.1.0: run "
                "`python tools/install_mmdet.py` (builds, caches and installs them), see docs/mmdetection.md"
            )
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "CLIPEnsembleRoIHead",
    "CLIPRegionScorer",
    "CLIPTextClassifier",
    "CLIPViT",
    "OpenVocabRCNN",
    "OpenVocabularyHook",
    "dataset_vocabulary",
    "vocabulary_features",
]
