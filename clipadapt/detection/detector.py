"""The open-vocabulary two-stage detector: a vocabulary that can change, and CLIP's score of every box."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

import torch
from mmdet.models.detectors import TwoStageDetector
from mmdet.models.layers import multiclass_nms
from mmdet.models.roi_heads import StandardRoIHead
from mmdet.registry import MODELS
from mmdet.structures.bbox import scale_boxes
from mmengine.structures import InstanceData

from .classifier import CLIPTextClassifier
from .region_scorer import CLIPRegionScorer

__all__ = ["CLIPEnsembleRoIHead", "OpenVocabRCNN"]


@MODELS.register_module()
class CLIPEnsembleRoIHead(StandardRoIHead):
    """``StandardRoIHead`` whose test-time class scores are ensembled with CLIP's score of each box.

    Before NMS, every decoded box gets the frozen CLIP's zero-shot probabilities
    (:class:`clipadapt.detection.CLIPRegionScorer`), combined with the detector's softmax per class
    by a geometric mean whose CLIP weight differs for base and novel classes; then MMDetection's
    ``multiclass_nms`` runs on the ensembled scores. Training is ``StandardRoIHead``'s.

    Args:
        region_scorer: :class:`CLIPRegionScorer` arguments; None = plain ``StandardRoIHead``.
        **kwargs: ``StandardRoIHead`` arguments. The box head must use ``reg_class_agnostic=True``
            (one box per proposal, the one CLIP scores).
    """

    def __init__(self, region_scorer: dict[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.region_scorer = CLIPRegionScorer(**region_scorer) if region_scorer is not None else None
        if self.region_scorer is not None and not self.bbox_head.reg_class_agnostic:
            raise ValueError("CLIPEnsembleRoIHead scores one box per proposal: set bbox_head.reg_class_agnostic=True")
        self._images: torch.Tensor | None = None

    @contextlib.contextmanager
    def scoring_images(self, images: torch.Tensor) -> Iterator[None]:
        """Make the batch's (normalised, padded) images available to the region scorer."""
        self._images = images
        try:
            yield
        finally:
            self._images = None

    def predict_bbox(
        self,
        x: tuple[torch.Tensor, ...],
        batch_img_metas: list[dict],
        rpn_results_list: list[InstanceData],
        rcnn_test_cfg: Any,
        rescale: bool = False,
    ) -> list[InstanceData]:
        if self.region_scorer is None or self._images is None or rcnn_test_cfg is None:
            return super().predict_bbox(x, batch_img_metas, rpn_results_list, rcnn_test_cfg, rescale)
        # Without a test config the box head returns every decoded box and the softmax of every class,
        # before NMS and in input-image pixels: what CLIP must see.
        raw = super().predict_bbox(x, batch_img_metas, rpn_results_list, None, rescale=False)
        boxes = [r.bboxes.reshape(-1, 4) for r in raw]
        clip_probs = self.region_scorer.class_probs(self._images, boxes).split([len(b) for b in boxes])
        results = []
        for res, bboxes, probs, meta in zip(raw, boxes, clip_probs, batch_img_metas, strict=True):
            scores = res.scores
            scores = torch.cat([self.region_scorer.ensemble(scores[:, :-1], probs), scores[:, -1:]], dim=1)
            if rescale and len(bboxes):
                bboxes = scale_boxes(bboxes, [1 / s for s in meta["scale_factor"]])
            det_bboxes, det_labels = multiclass_nms(
                bboxes, scores, rcnn_test_cfg.score_thr, rcnn_test_cfg.nms, rcnn_test_cfg.max_per_img
            )
            out = InstanceData()
            out.bboxes, out.scores, out.labels = det_bboxes[:, :-1], det_bboxes[:, -1], det_labels
            results.append(out)
        return results


@MODELS.register_module()
class OpenVocabRCNN(TwoStageDetector):
    """A two-stage detector with a CLIP-text classifier whose vocabulary can be replaced.

    ``roi_head.bbox_head.cls_predictor_cfg`` must be a :class:`CLIPTextClassifier`. With a
    :class:`CLIPEnsembleRoIHead` that has a region scorer, test-time scores are ensembled with CLIP's.
    :meth:`set_vocabulary` (called by :class:`OpenVocabularyHook` from the data set's metainfo)
    sets the class names of the classifier, the box head and the scorer together.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not isinstance(getattr(self.roi_head.bbox_head, "fc_cls", None), CLIPTextClassifier):
            raise ValueError(
                "OpenVocabRCNN needs roi_head.bbox_head.cls_predictor_cfg=dict(type='CLIPTextClassifier', ...)"
            )
        widths = getattr(self.backbone, "out_channels", None)
        expected = getattr(self.neck, "in_channels", None) if self.with_neck else None
        if widths is not None and expected is not None and list(expected) != list(widths):
            raise ValueError(
                f"neck.in_channels={list(expected)} do not fit the backbone, whose levels have widths {list(widths)}"
            )

    @property
    def vocabulary(self) -> list[str]:
        return list(self.roi_head.bbox_head.fc_cls.vocabulary)

    def set_vocabulary(self, classes: Sequence[str], novel_classes: Sequence[str] = ()) -> None:
        """Name the classes (label ``i`` is ``classes[i]``); ``novel_classes`` get the scorer's novel weight."""
        head = self.roi_head.bbox_head
        head.fc_cls.set_vocabulary(classes)
        head.num_classes = len(classes)
        scorer = getattr(self.roi_head, "region_scorer", None)
        if scorer is not None:
            scorer.set_vocabulary(classes, novel_classes)

    def predict(self, batch_inputs: torch.Tensor, batch_data_samples: list, rescale: bool = True) -> list:
        ensemble = isinstance(self.roi_head, CLIPEnsembleRoIHead)
        with self.roi_head.scoring_images(batch_inputs) if ensemble else contextlib.nullcontext():
            return super().predict(batch_inputs, batch_data_samples, rescale=rescale)
