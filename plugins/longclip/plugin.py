"""Long-CLIP as a plugin: knowledge-preserved stretching of the text positions and primary component matching."""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from mmengine import dist
from open_clip.tokenizer import SimpleTokenizer
from torch import nn
from torch.nn.utils import parametrize

from clipadapt import get_tokenizer
from clipadapt.models import CLIP
from clipadapt.plugins import Plugin, PluginCompatibilityError
from clipadapt.plugins.finetune import unfreeze_base
from clipadapt.registry import PLUGINS

from .pcm import min_batch_for, pcm_losses
from .stretch import FrozenPrefix, stretch_positions, stretched_length

SHORT_CAPTIONS = ("given", "first_sentence")
ON_INVALID = ("error", "skip")


def first_sentence(caption: str) -> str:
    """Long-CLIP's short caption (``train/sharegpt4v.py``): newlines become spaces, then the caption up to
    its first ``". "``."""
    return caption.replace("\n", " ").split(". ")[0]


@PLUGINS.register_module()
class LongCLIP(Plugin):
    """Long-CLIP: Unlocking the Long-Text Capability of CLIP (Zhang et al., ECCV 2024,
    https://arxiv.org/abs/2403.15378).

    ``attach`` stretches the text positional embedding with knowledge-preserved stretching (77 -> 248
    for OpenAI CLIP: the first ``keep`` rows kept, the rest interpolated at ``ratio``, the last rows
    extrapolated; :func:`stretch_positions`) and sets the context length; the tokenizer of
    ``clipadapt.get_tokenizer(model=model)`` follows. Rows below ``keep`` stay frozen and the rest train,
    as the original's frozen table plus trainable copy (:class:`FrozenPrefix`). Before any training the
    model gives the base model's features, bit for bit, for every text of at most ``keep`` tokens.

    ``losses`` is the whole Long-CLIP objective, primary component matching: long captions against the
    image features, short captions against the image features reduced to their top ``pcm_components``
    principal components over the per-device batch, both with label smoothing, over the batch
    gathered from every rank. It needs :class:`ImageTextContrastive` with ``contrastive_loss=False``
    (the task then adds no InfoNCE of its own) and a data set with long captions.

    Args:
        keep: Leading positions kept unchanged and frozen (Long-CLIP: 20).
        ratio: Stretch of the positions from ``keep`` on (Long-CLIP: 4).
        context_length: Positions after stretching; default ``keep + ratio * (S - keep)`` (248 from 77).
        trainable: Base parameters that train besides the stretched positions (see train_positions): a
            group of :data:`clipadapt.plugins.finetune.TRAINABLE_GROUPS` (``'all'``, as the original;
            ``'text'``; ``'vision'``; ``'none'``) or a list of parameter-name prefixes.
        logit_scale: Reset the logit scale to this value (100: its log is ``ln 100 = 4.60517``); None
            keeps the base model's. The task's ``max_logit_scale`` decides whether it is clamped
            (Long-CLIP never clamps: ``max_logit_scale=None``).
        log_logit_scale: Reset the *log* of the logit scale to this value instead (the original sets
            4.6052, its rounded ``ln 100``); give one of ``logit_scale`` and ``log_logit_scale``.
        train_positions: The stretched positions from ``keep`` on train (Long-CLIP); False freezes
            them (CLIP-MoE reads 248 tokens with the stretch frozen).
        pcm: Add the primary-component-matching objective (``losses``); False leaves the objective to
            the task (the stretch alone, as CLIP-MoE composes it).
        pcm_components: Principal components of the short-caption term (Long-CLIP: 32).
        label_smoothing: Of both cross-entropies (Long-CLIP: 0.1).
        long_weight: Weight of the long-caption term.
        short_weight: Weight of the short-caption term.
        short_caption: ``'given'``: the data set's captions (``data_samples['caption']``);
            ``'first_sentence'``: the long caption with newlines replaced by spaces, up to its first ``". "``
            (the original's ``train/sharegpt4v.py``).
        on_invalid_batch: ``'error'`` or ``'skip'`` (with a warning) when a device's batch is too small
            for the PCA (at most ``pcm_components + 1`` samples: the reduction would change nothing;
            the short term is left out) or a feature is not finite (the whole step contributes zero).
    """

    prefix = "longclip"
    exportable = True

    def __init__(
        self,
        keep: int = 20,
        ratio: float = 4.0,
        context_length: int | None = None,
        trainable: str | Sequence[str] = "all",
        logit_scale: float | None = 100.0,
        pcm_components: int = 32,
        label_smoothing: float = 0.1,
        long_weight: float = 1.0,
        short_weight: float = 1.0,
        short_caption: str = "given",
        on_invalid_batch: str = "error",
        log_logit_scale: float | None = None,
        train_positions: bool = True,
        pcm: bool = True,
    ) -> None:
        super().__init__()
        if logit_scale is not None and log_logit_scale is not None:
            raise ValueError("LongCLIP: give logit_scale or log_logit_scale, not both (set logit_scale=None)")
        if keep < 0:
            raise ValueError(f"LongCLIP keep must be >= 0, got {keep}")
        if ratio < 1:
            raise ValueError(f"LongCLIP ratio must be >= 1, got {ratio}")
        if pcm_components < 1:
            raise ValueError(f"LongCLIP pcm_components must be >= 1, got {pcm_components}")
        if not 0 <= label_smoothing < 1:
            raise ValueError(f"LongCLIP label_smoothing must be in [0, 1), got {label_smoothing}")
        if long_weight < 0 or short_weight < 0:
            raise ValueError(f"LongCLIP loss weights must be >= 0, got long={long_weight}, short={short_weight}")
        if logit_scale is not None and logit_scale <= 0:
            raise ValueError(f"LongCLIP logit_scale must be > 0 (it is stored as its log), got {logit_scale}")
        if short_caption not in SHORT_CAPTIONS:
            raise ValueError(f"LongCLIP short_caption must be one of {SHORT_CAPTIONS}, got {short_caption!r}")
        if on_invalid_batch not in ON_INVALID:
            raise ValueError(f"LongCLIP on_invalid_batch must be one of {ON_INVALID}, got {on_invalid_batch!r}")
        self.keep = keep
        self.ratio = ratio
        self.context_length = context_length
        self.trainable = trainable if isinstance(trainable, str) else list(trainable)
        self.logit_scale = logit_scale
        self.pcm_components = pcm_components
        self.label_smoothing = label_smoothing
        self.long_weight = long_weight
        self.short_weight = short_weight
        self.short_caption = short_caption
        self.on_invalid_batch = on_invalid_batch
        self.log_logit_scale = log_logit_scale
        self.train_positions, self.pcm = train_positions, pcm
        self.source_length = 0  # positions before stretching, set at attach
        self.skipped_batches = 0
        self._tokenizer: SimpleTokenizer | None = None

    # ------------------------------------------------------------------------------ architecture
    def attach(self, clip: CLIP) -> None:
        text = clip.text
        if (
            parametrize.is_parametrized(text, "positional_embedding")
            or text.context_length != clip.cfg.text.context_length
        ):
            raise PluginCompatibilityError(
                f"LongCLIP: the text positions of model {clip.cfg.name!r} were already changed by another plugin "
                f"(context length {text.context_length}, config {clip.cfg.text.context_length})"
            )
        base = text.positional_embedding  # [S, D]
        source = base.shape[0]
        if not 0 <= self.keep <= source - 1:
            raise PluginCompatibilityError(
                f"LongCLIP keep={self.keep} must be below the {source} text positions of model {clip.cfg.name!r}"
            )
        length = self.context_length or stretched_length(source, self.keep, self.ratio)
        stretched = stretch_positions(base, self.keep, self.ratio, length)  # [N, D]
        unfreeze_base(clip, self.trainable, "LongCLIP")
        # One [N, D] table as the text tower reads it: frozen rows [:keep] and trainable rows [keep:].
        text.positional_embedding = nn.Parameter(stretched, requires_grad=self.train_positions)
        parametrize.register_parametrization(
            text, "positional_embedding", FrozenPrefix(stretched[: self.keep]), unsafe=True
        )
        text.context_length = length
        if self.logit_scale is not None or self.log_logit_scale is not None:
            value = math.log(self.logit_scale) if self.logit_scale is not None else self.log_logit_scale
            with torch.no_grad():
                clip.logit_scale.fill_(value)
        self.source_length = source
        self.context_length = length

    # ------------------------------------------------------------------------------------ losses
    def losses(self, outputs: dict[str, Any]) -> dict[str, torch.Tensor]:
        """Primary component matching on an :class:`ImageTextContrastive` step; nothing for other tasks."""
        if outputs.get("task") != "contrastive" or not self.pcm:
            return {}  # e.g. zero-shot classification with the stretched model: positions only
        if outputs.get("contrastive_loss", True):
            raise ValueError(
                "LongCLIP computes the whole Long-CLIP objective (long and short terms); the task adds its own "
                "InfoNCE too. Set model.contrastive_loss=False in the ImageTextContrastive config"
            )
        image, long_text = outputs["image_features"], outputs.get("long_text_features")
        if long_text is None:
            raise KeyError(
                "LongCLIP needs long captions: data_samples['long_caption'] (ImageTextDataset(long_caption_key=...))"
            )
        short_text = self._short_features(outputs)
        scale = outputs["logit_scale"]
        problem = self._invalid_batch(image, long_text, short_text)
        if problem is not None:
            return self._skip(problem, image, long_text, short_text, scale)
        losses = pcm_losses(image, long_text, short_text, scale, self.pcm_components, self.label_smoothing)
        return {
            "loss_long": self.long_weight * losses["loss_long"],
            "loss_short": self.short_weight * losses["loss_short"],
        }

    def _short_features(self, outputs: dict[str, Any]) -> torch.Tensor:
        if self.short_caption == "given":
            return outputs["text_features"]
        long_captions = (outputs.get("data_samples") or {}).get("long_caption")
        if long_captions is None:
            raise KeyError("LongCLIP short_caption='first_sentence' needs data_samples['long_caption']")
        if self._tokenizer is None:
            self._tokenizer = get_tokenizer(model=self.clip)
        tokens = self._tokenizer([first_sentence(c) for c in long_captions]).to(self.clip.logit_scale.device)
        return F.normalize(self.clip.encode_text(tokens), dim=-1)

    def _invalid_batch(self, image: torch.Tensor, long_text: torch.Tensor, short_text: torch.Tensor) -> str | None:
        """Why this step's PCM cannot run ('small', 'non_finite'), agreed by every rank; None when it can."""
        small = image.shape[0] < min_batch_for(self.pcm_components)
        finite = bool(
            torch.isfinite(image).all() and torch.isfinite(long_text).all() and torch.isfinite(short_text).all()
        )
        flags = torch.tensor([float(not finite), float(small)], device=image.device)
        if dist.get_world_size() > 1:  # every rank must take the same branch: the losses gather
            dist.all_reduce(flags, op="max")
        if flags[0] > 0:
            return "non_finite"
        if flags[1] > 0:
            return "small"
        return None

    def _skip(
        self,
        problem: str,
        image: torch.Tensor,
        long_text: torch.Tensor,
        short_text: torch.Tensor,
        logit_scale: torch.Tensor,
    ) -> dict[str, torch.Tensor]:
        if problem == "small":
            message = (
                f"LongCLIP: a device batch of {image.shape[0]} image features is too small for primary component "
                f"matching with pcm_components={self.pcm_components}: the centred batch has rank at most "
                f"{image.shape[0] - 1}, so the top-{self.pcm_components} reduction would change nothing. Use at "
                f"least {min_batch_for(self.pcm_components)} samples per device or fewer components"
            )
        else:
            message = "LongCLIP: the image or text features are not finite (NaN or inf); the SVD of the PCA would fail"
        if self.on_invalid_batch == "error":
            raise ValueError(message + "; or set on_invalid_batch='skip'")
        self.skipped_batches += 1
        warnings.warn(message + f"; step skipped ({self.skipped_batches} so far)", RuntimeWarning, stacklevel=3)
        if problem == "small":  # the long term stands; the short term contributes zero (and zero gradients)
            loss = pcm_losses(image, long_text, None, logit_scale, label_smoothing=self.label_smoothing)
            return {"loss_long": self.long_weight * loss["loss_long"], "loss_short": (short_text * 0).sum()}
        # Non-finite features: zero losses that still reach every trainable parameter (DDP expects gradients).
        zero = sum(
            (p.sum() * 0 for p in self.clip.parameters() if p.requires_grad), torch.zeros((), device=image.device)
        )
        return {"loss_long": zero, "loss_short": zero.clone()}
