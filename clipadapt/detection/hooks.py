"""The detector's vocabulary follows the data set of the running phase: base classes to train, all to test."""

from __future__ import annotations

import json
from typing import Any

from mmdet.registry import HOOKS

from clipadapt.engine.hooks import PhaseClassesHook
from clipadapt.wrappers import unwrap_model

from .vocabulary import check_vocabulary

__all__ = ["OpenVocabularyHook", "dataset_vocabulary"]


def _annotation_categories(dataset: Any) -> list[str] | None:
    ann_file = getattr(dataset, "ann_file", None)
    if not ann_file:
        return None
    try:
        with open(ann_file) as f:
            return [c["name"] for c in json.load(f).get("categories", [])]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def dataset_vocabulary(dataset: Any, phase: str) -> tuple[list[str], list[str]]:
    """``(classes, novel_classes)`` of a data set's metainfo, checked; raises naming what is missing.

    ``classes`` is required; ``base_classes``/``novel_classes`` (OV-COCO's keys) are optional but must
    be class names of ``classes``; every class must be a category of the annotation file.
    """
    meta = getattr(dataset, "metainfo", None) or {}
    where = f"{phase}_dataloader.dataset ({type(dataset).__name__})"
    if not meta.get("classes"):
        raise ValueError(
            f"{where} has no 'classes' in its metainfo: an open-vocabulary detector takes its vocabulary from "
            f"there; set metainfo=dict(classes=(...)) in the {phase} data set's config"
        )
    classes = check_vocabulary(meta["classes"], f"{where} metainfo['classes']")
    for key in ("base_classes", "novel_classes"):
        missing = sorted(set(meta.get(key) or ()) - set(classes))
        if missing:
            raise ValueError(f"{where} metainfo['{key}'] names {missing}, which are missing from metainfo['classes']")
    categories = _annotation_categories(dataset)
    if categories is not None:
        missing = [c for c in classes if c not in categories]
        if missing:
            raise ValueError(
                f"{where}: classes {missing} of metainfo['classes'] are not categories of {dataset.ann_file} "
                f"(its categories: {categories})"
            )
    return classes, list(meta.get("novel_classes") or ())


@HOOKS.register_module()
class OpenVocabularyHook(PhaseClassesHook):
    """Sets :class:`clipadapt.detection.OpenVocabRCNN`'s vocabulary from each phase's data set.

    Before training, the training set's ``metainfo['classes']`` (the base classes); before validation
    and testing, that phase's classes and ``novel_classes``; after a validation run inside training,
    the training vocabulary again (:class:`~clipadapt.engine.hooks.PhaseClassesHook`). So one trained
    detector is evaluated on any vocabulary: change the test set's ``metainfo`` (or its annotation file),
    not the model.
    """

    def __init__(self) -> None:
        super().__init__()
        self._vocabularies: dict[str, tuple[list[str], list[str]]] = {}  # per phase, read once

    def apply(self, runner: Any, phase: str) -> None:
        if phase not in self._vocabularies:
            self._vocabularies[phase] = dataset_vocabulary(self.dataset(runner, phase), phase)
        model = unwrap_model(runner.model)
        if not hasattr(model, "set_vocabulary"):
            raise TypeError(f"OpenVocabularyHook needs a model with set_vocabulary(), got {type(model).__name__}")
        classes, novel = self._vocabularies[phase]
        model.set_vocabulary(classes, novel)
        runner.logger.info(f"{phase} vocabulary: {len(classes)} classes {classes}, novel {novel}")
