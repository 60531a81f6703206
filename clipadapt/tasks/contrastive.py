"""Image-text contrastive learning: CLIP's symmetric InfoNCE over features gathered from every rank."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from mmengine import dist
from torch import nn

from clipadapt.registry import MODELS

from .base import ClipTask
from .losses_distributed import large_batch_clip_loss

__all__ = ["ImageTextContrastive", "clip_loss", "gather_features"]


class _ScaleGradient(torch.autograd.Function):
    """Identity forward; multiplies the incoming gradient by ``scale`` on the way back."""

    @staticmethod
    def forward(ctx: Any, features: torch.Tensor, scale: float) -> torch.Tensor:
        ctx.scale = scale
        return features.view_as(features)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return grad * ctx.scale, None


def gather_features(features: torch.Tensor) -> torch.Tensor:
    """Concatenate ``features [B_rank, D]`` of every rank in rank order; only the local part has gradients.

    open_clip's ``gather_features`` with ``gather_with_grad=False, local_loss=False``: the gathered
    copies carry no gradient, the local slice is replaced by the tensor that does. Every rank then
    computes the same global loss but differentiates it only through its own features, and DDP
    *averages* the ranks' gradients, which would leave the towers with ``1 / world_size`` of the
    global batch's gradient (the logit scale, seen by every rank, would get all of it). The local
    slice's gradient is therefore multiplied by ``world_size``, so that the averaged update equals
    one process with the same global batch (tests/tools/test_ddp_contrastive.py). Ranks may hold
    different batch sizes (padded for the collective, trimmed after). Without a process group this
    returns ``features`` itself.
    """
    if dist.get_world_size() == 1:
        return features
    rank = dist.get_rank()
    sizes = dist.all_gather(torch.tensor([features.shape[0]], device=features.device))
    sizes = [int(s.item()) for s in sizes]
    padded = features.detach()
    if features.shape[0] < max(sizes):
        pad = features.new_zeros(max(sizes) - features.shape[0], *features.shape[1:])
        padded = torch.cat([padded, pad])
    parts = [p[:n] for p, n in zip(dist.all_gather(padded.contiguous()), sizes)]
    parts[rank] = _ScaleGradient.apply(features, float(len(sizes)))
    return torch.cat(parts)


def clip_loss(
    image_features: torch.Tensor,
    text_features: torch.Tensor,
    logit_scale: torch.Tensor,
    ignore: torch.Tensor | None = None,
    label_smoothing: float = 0.0,
) -> torch.Tensor:
    """Symmetric cross-entropy of matching pairs; row ``i`` of each input is one pair. Features normalised.

    Args:
        image_features: ``[N, D]`` (or region features).
        text_features: ``[N, D]``.
        logit_scale: Scalar, multiplies the cosine similarities.
        ignore: Optional ``[N, N]`` bool, True where a *negative* pair is left out of both softmaxes
            (the diagonal is never ignored; CLOC's near-duplicate captions).
        label_smoothing: Of both cross-entropies (Long-CLIP: 0.1).
    """
    logits = (logit_scale * image_features @ text_features.t()).float()  # [N, N]
    if ignore is not None:
        eye = torch.eye(logits.shape[0], dtype=torch.bool, device=logits.device)
        logits = logits.masked_fill(ignore & ~eye, float("-inf"))
    labels = torch.arange(logits.shape[0], device=logits.device)
    forward = F.cross_entropy(logits, labels, label_smoothing=label_smoothing)
    return (forward + F.cross_entropy(logits.t(), labels, label_smoothing=label_smoothing)) / 2


@MODELS.register_module()
class ImageTextContrastive(ClipTask):
    """CLIP's contrastive objective (Radford et al. 2021, https://arxiv.org/abs/2103.00020), as open_clip trains it.

    The loss is the symmetric InfoNCE of the batch gathered across ranks (every rank computes the
    full ``N x N`` logits; gradients flow through its own features). The learnable ``logit_scale`` is
    clamped to ``log(max_logit_scale)`` before each training step, as open_clip does after each step
    (``max_logit_scale=None``: never clamped, as Long-CLIP and CLIP-MoE train).
    With long captions in the batch (``data_samples['long_caption']``) a second InfoNCE on them is
    added with weight ``long_caption_weight``; they are tokenised at the model's context length
    (truncated at 77 tokens unless a plugin stretches it). With ``contrastive_loss=False`` the task adds
    no InfoNCE term and the objective is the plugins' (Long-CLIP's primary component matching): the
    features, long-caption features included, reach them in the outputs.

    Modes: ``loss`` -> ``{'loss_contrastive', 'loss_long' (with long captions), **plugin losses}``;
    ``predict`` -> one dict per sample with ``image_feature``, ``text_feature``, ``long_text_feature``
    (with long captions) and ``index``/``img_path`` when the data provides them; ``tensor`` -> the
    ``[B, B]`` image-to-text logits.

    Args:
        model_name: See :class:`ClipTask`.
        pretrained: See :class:`ClipTask`.
        plugins: See :class:`ClipTask`.
        long_caption_weight: Weight of the long-caption loss; 0 ignores long captions (unless
            ``contrastive_loss=False``: plugins then get the long-caption features).
        contrastive_loss: Add the InfoNCE terms; False leaves the objective to the plugins' losses.
        max_logit_scale: Upper bound of ``logit_scale.exp()`` (open_clip: 100); None: no clamp.
        label_smoothing: Of the InfoNCE cross-entropies (CLIP-MoE: 0.1; open_clip: 0).
        local_loss: Each rank computes the logits of its own rows only, ``[B_rank, N]`` instead of
            ``[N, N]``, with the same loss and gradients (:func:`large_batch_clip_loss`, for large
            global batches).
        loss_chunk_size: With ``local_loss``, rows per block of logits, recomputed in backward.
        data_preprocessor: See :class:`ClipTask`.
        grad_checkpointing: See :class:`ClipTask`.
        init_cfg: See :class:`ClipTask`.
    """

    def __init__(
        self,
        model_name: str | dict[str, Any],
        pretrained: str | None = None,
        plugins: Sequence[dict[str, Any]] | None = None,
        long_caption_weight: float = 1.0,
        contrastive_loss: bool = True,
        max_logit_scale: float | None = 100.0,
        label_smoothing: float = 0.0,
        local_loss: bool = False,
        loss_chunk_size: int | None = None,
        data_preprocessor: dict[str, Any] | nn.Module | None = None,
        grad_checkpointing: bool = False,
        init_cfg: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(model_name, pretrained, plugins, data_preprocessor, grad_checkpointing, init_cfg)
        if long_caption_weight < 0:
            raise ValueError(f"long_caption_weight must be >= 0, got {long_caption_weight}")
        if max_logit_scale is not None and max_logit_scale <= 1:
            raise ValueError(f"max_logit_scale must be > 1 or None, got {max_logit_scale}")
        if not 0 <= label_smoothing < 1:
            raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
        self.long_caption_weight = long_caption_weight
        self.label_smoothing = label_smoothing
        self.contrastive_loss = contrastive_loss
        self.max_logit_scale = max_logit_scale
        self.local_loss, self.loss_chunk_size = local_loss, loss_chunk_size

    def _captions(self, data_samples: dict[str, Any] | None, key: str) -> list[str] | None:
        captions = (data_samples or {}).get(key)
        if captions is None:
            return None
        return [captions] if isinstance(captions, str) else list(captions)

    def forward(
        self, inputs: torch.Tensor, data_samples: dict[str, Any] | None = None, mode: str = "tensor"
    ) -> torch.Tensor | dict[str, torch.Tensor] | list[dict[str, Any]]:
        """``inputs``: normalised images ``[B, 3, H, W]``; ``data_samples['caption']``: ``B`` strings."""
        if mode not in ("loss", "predict", "tensor"):
            raise ValueError(f"mode must be 'loss', 'predict' or 'tensor', got {mode!r}")
        captions = self._captions(data_samples, "caption")
        if captions is None:
            raise KeyError("ImageTextContrastive needs data_samples['caption'] (one string per image)")
        if len(captions) != inputs.shape[0]:
            raise ValueError(f"{inputs.shape[0]} images but {len(captions)} captions")
        use_long = self.long_caption_weight > 0 or not self.contrastive_loss
        long_captions = self._captions(data_samples, "long_caption") if use_long else None
        if mode == "loss" and self.training and self.max_logit_scale is not None:
            with torch.no_grad():
                self.clip.logit_scale.clamp_(0, math.log(self.max_logit_scale))

        image_output = self.clip.forward_image(inputs)
        image_features = F.normalize(image_output.pooled, dim=-1)  # [B, D]
        text_tokens = self.tokenize(captions)
        text_output = self.clip.forward_text(text_tokens)
        text_features = F.normalize(text_output.pooled, dim=-1)  # [B, D]
        long_features = None
        if long_captions is not None:
            long_features = F.normalize(self.clip.forward_text(self.tokenize(long_captions)).pooled, dim=-1)
        logit_scale = self.clip.logit_scale.exp()

        if mode == "tensor":
            return logit_scale * image_features @ text_features.t()
        if mode == "predict":
            return self._predictions(image_features, text_features, long_features, data_samples or {})

        losses = {}
        if self.contrastive_loss and self.local_loss:
            kwargs: dict[str, Any] = dict(label_smoothing=self.label_smoothing, chunk_size=self.loss_chunk_size)
            losses["loss_contrastive"] = large_batch_clip_loss(image_features, text_features, logit_scale, **kwargs)
            if long_features is not None:
                long_loss = large_batch_clip_loss(image_features, long_features, logit_scale, **kwargs)
                losses["loss_long"] = self.long_caption_weight * long_loss
        elif self.contrastive_loss:
            all_images = gather_features(image_features)
            smoothing = self.label_smoothing
            text_loss = clip_loss(all_images, gather_features(text_features), logit_scale, label_smoothing=smoothing)
            losses["loss_contrastive"] = text_loss
            if long_features is not None:
                long_loss = clip_loss(
                    all_images, gather_features(long_features), logit_scale, label_smoothing=smoothing
                )
                losses["loss_long"] = self.long_caption_weight * long_loss
        outputs = dict(
            task="contrastive",
            images=inputs,
            image_output=image_output,
            image_features=image_features,
            text_output=text_output,
            text_tokens=text_tokens,
            text_features=text_features,
            long_text_features=long_features,
            logit_scale=logit_scale,
            data_samples=data_samples,
            contrastive_loss=self.contrastive_loss,
        )
        losses = self.add_plugin_losses(losses, outputs)
        if not losses:
            raise ValueError("contrastive_loss=False, and no attached plugin returned a loss: nothing to train")
        return losses

    @staticmethod
    def _predictions(
        image_features: torch.Tensor,
        text_features: torch.Tensor,
        long_features: torch.Tensor | None,
        data_samples: dict[str, Any],
    ) -> list[dict[str, Any]]:
        image_features, text_features = image_features.float().cpu(), text_features.float().cpu()
        long_features = long_features.float().cpu() if long_features is not None else None
        results = []
        for i in range(image_features.shape[0]):
            sample: dict[str, Any] = {"image_feature": image_features[i], "text_feature": text_features[i]}
            if long_features is not None:
                sample["long_text_feature"] = long_features[i]
            for key in ("index", "img_path"):
                if key in data_samples:
                    value = data_samples[key][i]
                    sample[key] = value.item() if isinstance(value, torch.Tensor) else value
            results.append(sample)
        return results
