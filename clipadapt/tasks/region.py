"""Region-text alignment: images, boxes, region phrases and hard negatives (FG-CLIP / FG-CLIP 2)."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from clipadapt.models.dense import DenseVisionOutput, RegionPooler, forward_dense, roi_region_features
from clipadapt.registry import MODELS

from .base import ClipTask
from .contrastive import clip_loss, gather_features
from .region_losses import (
    batch_hard_loss,
    cmr_loss,
    cmr_margin,
    hard_batch_columns,
    hard_negative_loss,
    region_contrastive_loss,
    tic_loss,
)
from .region_texts import per_image, region_texts
from .zero_shot import resolve_templates, zero_shot_classifier

__all__ = ["DEFAULT_LOSS_WEIGHTS", "FGCLIP_V1_LOSS_WEIGHTS", "RegionTextAlignment"]

# FG-CLIP 2's weights: global ITC on short and long captions, 0.2 region ITC, 0.1 TIC, and 0.5 x its
# hard-negative total (0.6 batch-wide CE + 3 x the (1+k)-way CE + 0.4 CMR hinge).
DEFAULT_LOSS_WEIGHTS: dict[str, float] = {
    "global": 1.0,
    "long": 1.0,
    "region": 0.2,
    "hard_negative": 1.5,
    "hard_batch": 0.3,
    "cmr": 0.2,
    "tic": 0.1,
}
# FG-CLIP v1's (360CVGroup/FG-CLIP at b7b3342, fgclip.py): 0.1 region ITC, 0.5 x the 11-way CE, nothing else.
FGCLIP_V1_LOSS_WEIGHTS: dict[str, float] = {
    "region": 0.1,
    "hard_negative": 0.5,
    "hard_batch": 0.0,
    "cmr": 0.0,
    "tic": 0.0,
}
HARD_BATCH_COLUMNS = ("hard", "all")
CMR_MARGINS = ("previous", "current")
_REGION_TERMS = ("region", "hard_negative", "hard_batch", "cmr", "tic")
_NEGATIVE_TERMS = ("hard_negative", "hard_batch", "cmr")


@MODELS.register_module()
class RegionTextAlignment(ClipTask):
    """Region-text alignment of FG-CLIP and FG-CLIP 2 (Xie et al., 2025; code 360CVGroup/FG-CLIP) on clipadapt's CLIP.

    Region features come from the attached plugin that implements
    :class:`~clipadapt.models.dense.RegionPooler` (``RegionAlign``, ``CLOCPrompter``), else from RoIAlign
    on the value-path dense map (:func:`~clipadapt.models.dense.roi_region_features`). Phrases and
    hard negatives are encoded once per distinct string of the batch.

    Loss terms (``loss_weights``; a weight of 0 switches a term off and skips its computation):
    ``global`` / ``long``: CLIP's InfoNCE on short / long captions (gathered across ranks);
    ``region``: symmetric InfoNCE over every box of the (local) batch, as FG-CLIP;
    ``hard_negative``: the (1+k)-way cross-entropy against attribute-swapped phrases;
    ``hard_batch``: FG-CLIP 2's batch-wide cross-entropy in both directions (region -> texts, phrase ->
    regions); ``cmr``: FG-CLIP 2's rank hinge; ``tic``: FG-CLIP 2's textual intra-modal loss. Region and
    hard-negative terms have their own learnable logit scales (initialised at ln 100, clamped to
    ``max_logit_scale`` unless it is None). FG-CLIP v1's weights are :data:`FGCLIP_V1_LOSS_WEIGHTS`.

    Modes: ``loss`` -> ``{'loss_global', 'loss_long', 'loss_region', ..., **plugin losses}``;
    ``predict`` -> one dict per image for :class:`~clipadapt.evaluation.RegionMetric` and
    :class:`~clipadapt.evaluation.RetrievalRecall`; ``tensor`` -> normalised region features ``[K, D]``.

    Args:
        model_name: See :class:`ClipTask`.
        pretrained: See :class:`ClipTask`.
        plugins: See :class:`ClipTask`.
        loss_weights: Overrides of :data:`DEFAULT_LOSS_WEIGHTS` (FG-CLIP 2's).
        tic_topk: Neighbours per phrase in the TIC loss.
        tic_duplicate_threshold: TIC ignores phrase pairs more similar than this.
        init_logit_scale: Initial log of the region and hard-negative logit scales.
        max_logit_scale: Upper bound of every logit scale (after ``exp``); None: no clamp (FG-CLIP's).
        hard_batch_columns: Columns of the batch-wide CE: ``'hard'`` (FG-CLIP 2: the boxes with hard
            negatives, against their phrases and all their negatives, duplicates kept) or ``'all'``
            (every box against every distinct phrase and negative of the batch).
        cmr_margin: ``'previous'`` (FG-CLIP 2: the margin measured at the previous training step, 0 at
            the first; not checkpointed) or ``'current'`` (this batch's).
        classnames: Category names for region classification; usually set by ``ClassNamesHook``.
        templates: Prompt templates of the category names (a ``TEMPLATE_SETS`` name or strings).
        text_batch_size: Texts per text-tower call when building category features.
        data_preprocessor: See :class:`ClipTask`.
        grad_checkpointing: See :class:`ClipTask`.
        init_cfg: See :class:`ClipTask`.
    """

    def __init__(
        self,
        model_name: str | dict[str, Any],
        pretrained: str | None = None,
        plugins: Sequence[dict[str, Any]] | None = None,
        loss_weights: dict[str, float] | None = None,
        tic_topk: int = 10,
        tic_duplicate_threshold: float = 0.95,
        init_logit_scale: float = math.log(100.0),
        max_logit_scale: float | None = 100.0,
        classnames: Sequence[str] | None = None,
        templates: str | Sequence[str] = "simple",
        text_batch_size: int = 256,
        data_preprocessor: dict[str, Any] | nn.Module | None = None,
        grad_checkpointing: bool = False,
        init_cfg: dict[str, Any] | None = None,
        hard_batch_columns: str = "hard",
        cmr_margin: str = "previous",
    ) -> None:
        super().__init__(model_name, pretrained, plugins, data_preprocessor, grad_checkpointing, init_cfg)
        if hard_batch_columns not in HARD_BATCH_COLUMNS or cmr_margin not in CMR_MARGINS:
            raise ValueError(
                f"hard_batch_columns must be one of {HARD_BATCH_COLUMNS} and cmr_margin one of {CMR_MARGINS}; "
                f"got {hard_batch_columns!r}, {cmr_margin!r}"
            )
        self.hard_batch_columns, self.cmr_margin = hard_batch_columns, cmr_margin
        self._cmr_tau = 0.0  # the previous training step's CMR margin (FG-CLIP 2's self.thresholds)
        unknown = sorted(set(loss_weights or {}) - set(DEFAULT_LOSS_WEIGHTS))
        if unknown:
            raise ValueError(f"unknown loss_weights {unknown}; known: {sorted(DEFAULT_LOSS_WEIGHTS)}")
        self.loss_weights = {**DEFAULT_LOSS_WEIGHTS, **(loss_weights or {})}
        negative = {k: v for k, v in self.loss_weights.items() if v < 0}
        if negative:
            raise ValueError(f"loss_weights must be >= 0, got {negative}")
        if tic_topk < 1 or (max_logit_scale is not None and max_logit_scale <= 1) or text_batch_size < 1:
            raise ValueError(
                f"need tic_topk >= 1, max_logit_scale > 1, text_batch_size >= 1; got {tic_topk}, "
                f"{max_logit_scale}, {text_batch_size}"
            )
        self._find_pooler()  # fail at build time when several plugins pool regions
        if getattr(self.pooler, "provides_region_loss", False) and self.loss_weights["region"] > 0:
            raise ValueError(
                f"plugin {type(self.pooler).__name__} computes its own region loss; set loss_weights=dict(region=0)"
            )
        self.tic_topk, self.tic_duplicate_threshold = tic_topk, tic_duplicate_threshold
        self.max_logit_scale = max_logit_scale
        self.region_logit_scale = nn.Parameter(torch.tensor(float(init_logit_scale)))
        self.hard_logit_scale = nn.Parameter(torch.tensor(float(init_logit_scale)))
        self.templates = resolve_templates(templates)
        self.text_batch_size = text_batch_size
        self.classnames: list[str] = []
        self._class_cache: torch.Tensor | None = None
        if classnames is not None:
            self.set_classnames(classnames)

    @property
    def pooler(self) -> RegionPooler | None:
        """The attached plugin that pools regions, if any (looked up, not stored: it is a module of the CLIP)."""
        return self._find_pooler()

    def _find_pooler(self) -> RegionPooler | None:
        poolers = [p for p in self.clip.plugins.values() if isinstance(p, RegionPooler)]
        if len(poolers) > 1:
            raise ValueError(f"several attached plugins pool regions: {[type(p).__name__ for p in poolers]}")
        return poolers[0] if poolers else None

    # ------------------------------------------------------------------------------ categories
    def set_classnames(self, classnames: Sequence[str]) -> None:
        """The categories of region classification (label ``i`` is ``classnames[i]``)."""
        names = [str(n) for n in classnames]
        if not names:
            raise ValueError("set_classnames needs at least one category name")
        if names != self.classnames:
            self.classnames, self._class_cache = names, None

    def class_text_features(self) -> torch.Tensor:
        """Normalised category features ``[C, D]`` (template ensemble; a prompt plugin's template when one is
        attached), cached until the next ``train()``."""
        if not self.classnames:
            raise RuntimeError("RegionTextAlignment has no category names: pass classnames= or use ClassNamesHook")
        if self._class_cache is None or self._class_cache.device != self.device:
            # A prompt plugin's template (CoOp's learned context) wins over the task's, as in PromptClassifier.
            with torch.no_grad():
                self._class_cache = zero_shot_classifier(
                    self.clip, self.tokenizer, self.classnames, self.templates, self.text_batch_size
                )
        return self._class_cache

    def train(self, mode: bool = True) -> RegionTextAlignment:
        if mode:
            self._class_cache = None
        return super().train(mode)

    # -------------------------------------------------------------------------------- features
    def encode_texts(self, texts: Sequence[str]) -> torch.Tensor:
        """Normalised text features ``[len(texts), D]``, in chunks of ``text_batch_size``."""
        if not texts:
            return self.clip.logit_scale.new_zeros(0, self.clip.embed_dim)
        chunks = [
            self.clip.encode_text(self.tokenize(texts[i : i + self.text_batch_size]), normalize=True)
            for i in range(0, len(texts), self.text_batch_size)
        ]
        return torch.cat(chunks)

    def region_features(self, vision: DenseVisionOutput, boxes: list[torch.Tensor]) -> torch.Tensor:
        """Normalised region features ``[sum K_i, D]``: the plugin pooler's, else value-path RoIAlign."""
        if self.pooler is not None:
            features = self.pooler.region_features(self.clip, vision, boxes)
        else:
            features = roi_region_features(self.clip, vision, boxes, value_path=True)
        return F.normalize(features, dim=-1)

    def _boxes(self, samples: dict[str, Any], num_images: int) -> list[torch.Tensor]:
        boxes = per_image(samples, "boxes", num_images)
        return [torch.as_tensor(b, dtype=torch.float32, device=self.device).reshape(-1, 4) for b in boxes]

    def _captions(self, samples: dict[str, Any], key: str, num_images: int) -> list[str] | None:
        captions = samples.get(key)
        if captions is None:
            return None
        captions = [captions] if isinstance(captions, str) else list(captions)
        if len(captions) != num_images:
            raise ValueError(f"{num_images} images but {len(captions)} entries in data_samples[{key!r}]")
        return captions

    def _clamp_scales(self) -> None:
        if self.max_logit_scale is None:
            return
        with torch.no_grad():
            for scale in (self.clip.logit_scale, self.region_logit_scale, self.hard_logit_scale):
                scale.clamp_(0, math.log(self.max_logit_scale))

    # --------------------------------------------------------------------------------- forward
    def forward(
        self, inputs: torch.Tensor, data_samples: dict[str, Any] | None = None, mode: str = "tensor"
    ) -> torch.Tensor | dict[str, torch.Tensor] | list[dict[str, Any]]:
        """``inputs``: normalised images ``[B, 3, H, W]``; ``data_samples`` as :func:`region_collate` makes them."""
        if mode not in ("loss", "predict", "tensor"):
            raise ValueError(f"mode must be 'loss', 'predict' or 'tensor', got {mode!r}")
        samples = data_samples or {}
        boxes = self._boxes(samples, inputs.shape[0])
        if mode == "loss":
            return self._loss(inputs, samples, boxes)
        with torch.no_grad() if mode == "predict" else contextlib.nullcontext():
            vision = forward_dense(self.clip, inputs)
            regions = self.region_features(vision, boxes)
        if mode == "tensor":
            return regions
        return self._predict(vision, regions, samples, boxes)

    def _loss(self, inputs: torch.Tensor, samples: dict[str, Any], boxes: list[torch.Tensor]) -> dict[str, Any]:
        w = self.loss_weights
        if self.training:
            self._clamp_scales()
        num_images = inputs.shape[0]
        vision = forward_dense(self.clip, inputs)
        image_features = F.normalize(vision.pooled, dim=-1)
        logit_scale = self.clip.logit_scale.exp()
        losses: dict[str, torch.Tensor] = {}
        text_features = None
        for key, name, weight in (("caption", "global", w["global"]), ("long_caption", "long", w["long"])):
            if weight == 0:
                continue
            captions = self._captions(samples, key, num_images)
            if captions is None:
                raise KeyError(
                    f"loss term {name!r} needs data_samples[{key!r}]; the data has none: set "
                    f"loss_weights=dict({name}=0) to train without it"
                )
            features = self.encode_texts(captions)
            text_features = features if key == "caption" else text_features
            loss = clip_loss(gather_features(image_features), gather_features(features), logit_scale)
            losses[f"loss_{name}"] = weight * loss

        needs_regions = any(w[k] > 0 for k in _REGION_TERMS) or getattr(self.pooler, "provides_region_loss", False)
        regions = phrase_features = None
        if needs_regions:
            negatives = any(w[k] > 0 for k in _NEGATIVE_TERMS)
            texts, phrase_idx, cand_idx, valid = region_texts(samples, boxes, negatives, self.device)
            vocab_features = self.encode_texts(texts)  # [M, D]
            regions = self.region_features(vision, boxes)  # [K, D]
            phrase_features = vocab_features[phrase_idx] if texts else regions.detach() * 0
            losses.update(self._region_losses(regions, phrase_features, vocab_features, phrase_idx, cand_idx, valid))
        outputs = dict(
            task="region",
            images=inputs,
            vision=vision,
            image_features=image_features,
            text_features=text_features,
            region_features=regions,
            phrase_features=phrase_features,
            boxes=boxes,
            box_image_index=torch.cat([torch.full((len(b),), i, device=self.device) for i, b in enumerate(boxes)]),
            image_size=vision.image_size,
            logit_scale=logit_scale,
            region_logit_scale=self.region_logit_scale.exp(),
            data_samples=samples,
        )
        return self.add_plugin_losses(losses, outputs)

    def _region_losses(
        self,
        regions: torch.Tensor,
        phrases: torch.Tensor,
        vocab: torch.Tensor,
        phrase_idx: torch.Tensor,
        cand_idx: torch.Tensor,
        valid: torch.Tensor,
    ) -> dict[str, torch.Tensor]:
        w = self.loss_weights
        if regions.shape[0] == 0:  # no box in the batch: zero terms that keep the graph connected
            zero = regions.sum() * 0.0
            if w["cmr"] > 0 and self.training:  # every rank joins the margin's all-reduce
                empty = regions.new_zeros(0, 1)
                self._cmr_tau = float(cmr_margin(empty[:, 0], empty, empty.bool()))
            return {f"loss_{k}": zero for k in _REGION_TERMS if w[k] > 0}
        region_scale, hard_scale = self.region_logit_scale.exp(), self.hard_logit_scale.exp()
        losses = {}
        if w["region"] > 0:
            losses["loss_region"] = w["region"] * region_contrastive_loss(regions, phrases, region_scale)
        candidates = vocab[cand_idx]  # [K, 1+k, D]
        if w["hard_negative"] > 0:
            losses["loss_hard_negative"] = w["hard_negative"] * hard_negative_loss(
                regions, candidates, valid, hard_scale
            )
        if w["hard_batch"] > 0:
            if self.hard_batch_columns == "hard":
                rows, texts, targets = hard_batch_columns(candidates, valid)
                if rows.any():
                    loss = batch_hard_loss(regions[rows], texts, targets, hard_scale, phrases[rows])
                else:  # no box with negatives: a zero that keeps the graph connected
                    loss = regions.sum() * 0.0
            else:
                loss = batch_hard_loss(regions, vocab, phrase_idx, hard_scale, phrases)
            losses["loss_hard_batch"] = w["hard_batch"] * loss
        if w["cmr"] > 0:
            scores = hard_scale * torch.einsum("nd,nkd->nk", regions, candidates)
            positive, negatives, neg_valid = scores[:, 0], scores[:, 1:], valid[:, 1:]
            tau = cmr_margin(positive, negatives, neg_valid)
            previous = self.cmr_margin == "previous"
            losses["loss_cmr"] = w["cmr"] * cmr_loss(positive, negatives, neg_valid, self._cmr_tau if previous else tau)
            if self.training:
                self._cmr_tau = float(tau)
        if w["tic"] > 0:
            losses["loss_tic"] = w["tic"] * tic_loss(phrases, self.tic_topk, self.tic_duplicate_threshold)
        return losses

    # --------------------------------------------------------------------------------- predict
    def _predict(
        self, vision: DenseVisionOutput, regions: torch.Tensor, samples: dict[str, Any], boxes: list[torch.Tensor]
    ) -> list[dict[str, Any]]:
        num_images = len(boxes)
        with torch.no_grad():
            image_features = F.normalize(vision.pooled, dim=-1).float().cpu()
            classes = self.class_text_features().float().cpu() if self.classnames else None
            texts = phrase_idx = cand_idx = valid = vocab = None
            if "phrases" in samples:
                texts, phrase_idx, cand_idx, valid = region_texts(
                    samples, boxes, "hard_negatives" in samples, self.device
                )
                vocab = self.encode_texts(texts).float().cpu()
            captions = {
                key: self.encode_texts(c).float().cpu()
                for key in ("caption", "long_caption")
                if (c := self._captions(samples, key, num_images)) is not None
            }
        regions = regions.float().cpu()
        labels = per_image(samples, "box_labels", num_images, default=lambda: None)
        results, start = [], 0
        for i, b in enumerate(boxes):
            rows = slice(start, start + b.shape[0])
            start += b.shape[0]
            out: dict[str, Any] = {"image_feature": image_features[i], "region_features": regions[rows]}
            if classes is not None:
                out["region_scores"] = regions[rows] @ classes.t()  # [K_i, C]
                out["image_scores"] = image_features[i] @ classes.t()  # [C]
            if labels[i] is not None:
                out["box_labels"] = torch.as_tensor(labels[i], dtype=torch.long).cpu().view(-1)
            if vocab is not None:
                assert phrase_idx is not None and cand_idx is not None and valid is not None  # set with vocab
                out["phrase_features"] = vocab[phrase_idx[rows].cpu()]
                scores = torch.einsum("kd,kjd->kj", regions[rows], vocab[cand_idx[rows].cpu()])
                out["hard_scores"] = scores.masked_fill(~valid[rows].cpu(), float("-inf"))  # [K_i, 1+k], col 0 = pos
            if "caption" in captions:
                out["text_feature"] = captions["caption"][i]
            if "long_caption" in captions:
                out["long_text_feature"] = captions["long_caption"][i]
            for key in ("index", "img_path"):
                if key in samples:
                    value = samples[key][i]
                    out[key] = value.item() if isinstance(value, torch.Tensor) else value
            results.append(out)
        return results
