"""Prompt classification: class names -> prompts -> text features; image features -> logits."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from clipadapt.registry import MODELS

from .base import ClipTask
from .templates import class_prompts, encode_class_prompts, resolve_templates, tokenize_class_prompts

__all__ = ["PromptClassifier"]


@MODELS.register_module()
class PromptClassifier(ClipTask):
    """CLIP as a classifier whose weights are the text features of the class prompts.

    Each class name is put into every template (``"a photo of a {}."``); the normalised text features
    of a class's prompts are averaged and normalised again (CLIP's zero-shot ensembling, Radford et
    al. 2021, https://arxiv.org/abs/2103.00020). ``logits = logit_scale.exp() * cos(image, class)``.

    Text features are computed once and cached when they cannot change: in eval mode, or when no
    plugin hooks the text tower and no text-tower parameter trains (VPT, zero-shot). When a plugin
    makes them depend on trained parameters (CoOp, MaPLe), training recomputes them every forward;
    evaluation still computes them once (the parameters are frozen there). The cache is dropped when
    the class names or templates change, on ``train()``, on loading a state dict and on moving the model.

    Modes: ``loss`` -> ``{'loss_cls': cross-entropy, **plugin losses}``; ``predict`` -> one dict per
    sample ``{'pred_score', 'pred_label', 'gt_label'}``; ``tensor`` -> logits ``[B, C]``.

    Args:
        model_name: See :class:`ClipTask`.
        pretrained: See :class:`ClipTask`.
        plugins: See :class:`ClipTask`.
        classnames: Class names; usually set from the data set by ``ClassNamesHook``.
        templates: Template strings with one ``{}``, or a set name of ``TEMPLATE_SETS``.
        label_smoothing: Of the cross-entropy.
        text_batch_size: Prompts per text-tower call when building class features.
        data_preprocessor: See :class:`ClipTask`.
        grad_checkpointing: See :class:`ClipTask`.
        init_cfg: See :class:`ClipTask`.
    """

    def __init__(
        self,
        model_name: str | dict[str, Any],
        pretrained: str | None = None,
        plugins: Sequence[dict[str, Any]] | None = None,
        classnames: Sequence[str] | None = None,
        templates: str | Sequence[str] = "simple",
        label_smoothing: float = 0.0,
        text_batch_size: int = 256,
        data_preprocessor: dict[str, Any] | nn.Module | None = None,
        grad_checkpointing: bool = False,
        init_cfg: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(model_name, pretrained, plugins, data_preprocessor, grad_checkpointing, init_cfg)
        if text_batch_size < 1:
            raise ValueError(f"text_batch_size must be >= 1, got {text_batch_size}")
        self.label_smoothing = label_smoothing
        self.text_batch_size = text_batch_size
        self.templates = resolve_templates(templates)
        self.classnames: list[str] = []
        self._tokens: torch.Tensor | None = None  # [C * T, L] on the CPU
        self._text_cache: torch.Tensor | None = None  # [C, D], normalised, no grad
        if classnames is not None:
            self.set_classnames(classnames)

    # ------------------------------------------------------------------------------ class names
    def set_classnames(self, classnames: Sequence[str]) -> None:
        """Set the classes (label ``i`` is ``classnames[i]``); a no-op when they are unchanged."""
        names = [str(n) for n in classnames]
        if not names:
            raise ValueError("set_classnames needs at least one class name")
        if names == self.classnames and self._tokens is not None:
            return
        self.classnames = names
        self._tokens = None
        self._text_cache = None

    def set_templates(self, templates: str | Sequence[str]) -> None:
        self.templates = resolve_templates(templates)
        self._tokens = None
        self._text_cache = None

    def active_templates(self) -> list[str]:
        """The templates in use: a prompt plugin's own (CoOp, MaPLe, IVLP fix the token layout), else ours."""
        return self.clip.class_prompt_templates(self.templates)

    def prompts(self) -> list[str]:
        """Every prompt, class-major: ``[c0 t0, c0 t1, ..., c1 t0, ...]``."""
        return class_prompts(self.classnames, self.active_templates())

    # -------------------------------------------------------------------------- text features
    def text_depends_on_parameters(self) -> bool:
        """Whether training can change the class text features: a text hook, or a trainable text parameter."""
        text = self.clip.text
        return bool(text.embed_hooks or text.block_hooks) or any(p.requires_grad for p in text.parameters())

    def _compute_text_features(self) -> torch.Tensor:
        if self._tokens is None:
            self._tokens = tokenize_class_prompts(self.tokenizer, self.classnames, self.active_templates())
        return encode_class_prompts(self.clip, self._tokens, len(self.classnames), self.text_batch_size)  # [C, D]

    def class_text_features(self) -> torch.Tensor:
        """Normalised class features ``[C, D]``, from the cache whenever they cannot have changed."""
        if not self.classnames:
            raise RuntimeError(
                "PromptClassifier has no class names: pass classnames=..., call set_classnames(), "
                "or add ClassNamesHook to the runner (it reads dataset.metainfo['classes'])"
            )
        if self.training and self.text_depends_on_parameters():
            return self._compute_text_features()
        cache = self._text_cache
        if cache is None or cache.device != self.device:
            with torch.no_grad():
                cache = self._text_cache = self._compute_text_features()
        return cache

    def train(self, mode: bool = True) -> PromptClassifier:
        if mode:
            self._text_cache = None  # parameters may change from here on
        return super().train(mode)

    def _apply(self, fn: Any, *args: Any, **kwargs: Any) -> PromptClassifier:
        self._text_cache = None
        return super()._apply(fn, *args, **kwargs)

    def _load_from_state_dict(self, *args: Any, **kwargs: Any) -> None:
        self._text_cache = None
        super()._load_from_state_dict(*args, **kwargs)

    # --------------------------------------------------------------------------------- forward
    def forward(
        self, inputs: torch.Tensor, data_samples: dict[str, Any] | None = None, mode: str = "tensor"
    ) -> torch.Tensor | dict[str, torch.Tensor] | list[dict[str, Any]]:
        """``inputs``: normalised images ``[B, 3, H, W]``; ``data_samples['label']``: labels ``[B]``."""
        if mode not in ("loss", "predict", "tensor"):
            raise ValueError(f"mode must be 'loss', 'predict' or 'tensor', got {mode!r}")
        image_output = self.clip.forward_image(inputs)
        image_features = F.normalize(image_output.pooled, dim=-1)  # [B, D]
        text_features = self.class_text_features()  # [C, D]
        logit_scale = self.clip.logit_scale.exp()
        logits = logit_scale * image_features @ text_features.t().to(image_features.dtype)  # [B, C]
        if mode == "tensor":
            return logits
        labels = _labels(data_samples, logits.device)
        if mode == "loss":
            if labels is None:
                raise KeyError("loss mode needs data_samples['label'] (class indices [B])")
            losses = {"loss_cls": F.cross_entropy(logits.float(), labels, label_smoothing=self.label_smoothing)}
            outputs = dict(
                task="classification",
                images=inputs,
                image_output=image_output,
                image_features=image_features,
                text_features=text_features,
                logits=logits,
                logit_scale=logit_scale,
                labels=labels,
                classnames=self.classnames,
            )
            return self.add_plugin_losses(losses, outputs)
        scores = logits.float().softmax(dim=-1).cpu()
        preds = scores.argmax(dim=-1)
        results = []
        for i in range(scores.shape[0]):
            sample = {"pred_score": scores[i], "pred_label": int(preds[i])}
            if labels is not None:
                sample["gt_label"] = int(labels[i])
            results.append(sample)
        return results


def _labels(data_samples: dict[str, Any] | None, device: torch.device) -> torch.Tensor | None:
    if not data_samples:
        return None
    labels = data_samples.get("label", data_samples.get("gt_label"))
    if labels is None:
        return None
    return torch.as_tensor(labels, device=device).long().view(-1)
