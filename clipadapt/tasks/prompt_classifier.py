"""Prompt classification: class names -> prompts -> text features; image features -> logits."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from clipadapt.models.towers import VisionOutput
from clipadapt.registry import MODELS

from .base import ClipTask
from .zero_shot import (
    class_prompts,
    encode_class_prompts,
    ensemble_class_features,
    resolve_templates,
    tokenize_class_prompts,
)

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

    When a plugin declares that its text depends on the image (``conditions = {"text":
    ("image_features",)}``, CoCoOp), the class prompts are encoded for each image under that image's
    normalised features, ``[B, C, D]`` in calls of at most ``text_batch_size`` texts, and never cached.

    The forward is a sequence of steps a subclass can override one at a time: :meth:`encode_images`,
    :meth:`text_conditions`, :meth:`text_features_for`, :meth:`compute_logits`, then
    :meth:`classification_loss` or :meth:`predictions`.

    Modes: ``loss`` -> ``{'loss_cls': cross-entropy, **plugin losses}``; ``predict`` -> one dict per
    sample ``{'pred_score', 'pred_label', 'gt_label'}``; ``tensor`` -> logits ``[B, C]``.

    Args:
        model_name: See :class:`ClipTask`.
        pretrained: See :class:`ClipTask`.
        plugins: See :class:`ClipTask`.
        classnames: Class names; usually set from the data set by ``ClassNamesHook``.
        templates: Template strings with one ``{}``, or a set name of ``TEMPLATE_SETS``.
        label_smoothing: Of the cross-entropy.
        text_batch_size: Prompts per text-tower call when building class features (per-image ones included).
        data_preprocessor: See :class:`ClipTask`.
        grad_checkpointing: See :class:`ClipTask`.
        init_cfg: See :class:`ClipTask`.
    """

    provides_conditions: ClassVar[dict[str, tuple[str, ...]]] = {"text": ("image_features",)}

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

    def text_is_conditioned(self) -> bool:
        """Whether a plugin makes the class text features depend on each image (``conditions['text']``)."""
        return any(plugin.conditions.get("text") for plugin in self.clip.plugins.values())

    def class_tokens(self) -> torch.Tensor:
        """Token ids of :meth:`prompts` ``[C * T, L]``, on the CPU, tokenized once per class list."""
        if not self.classnames:
            raise RuntimeError(
                "PromptClassifier has no class names: pass classnames=..., call set_classnames(), "
                "or add ClassNamesHook to the runner (it reads dataset.metainfo['classes'])"
            )
        if self._tokens is None:
            self._tokens = tokenize_class_prompts(self.tokenizer, self.classnames, self.active_templates())
        return self._tokens

    def _compute_text_features(self) -> torch.Tensor:
        tokens = self.class_tokens()
        return encode_class_prompts(self.clip, tokens, len(self.classnames), self.text_batch_size)  # [C, D]

    def class_text_features(self) -> torch.Tensor:
        """Normalised class features ``[C, D]``, from the cache whenever they cannot have changed."""
        self.class_tokens()  # the class names are set
        if self.text_is_conditioned():
            raise RuntimeError(
                f"the text features of plugins {sorted(self.clip.required_conditions())} depend on each image: "
                "use conditioned_class_features(self.text_conditions(...)), [B, C, D]"
            )
        if self.training and self.text_depends_on_parameters():
            return self._compute_text_features()
        cache = self._text_cache
        if cache is None or cache.device != self.device:
            with torch.no_grad():
                cache = self._text_cache = self._compute_text_features()
        return cache

    def conditioned_class_features(self, conditions: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Normalised class features per image ``[B, C, D]``, each image's prompts encoded under its condition.

        The ``B * C * T`` (image, prompt) pairs run through the text tower in calls of at most
        ``text_batch_size`` texts; each call's condition rows are the images of its pairs. Nothing is
        cached: the features change with every image.

        Args:
            conditions: ``{name: [B, ...]}``, row ``b`` for image ``b`` (:meth:`text_conditions`).
        """
        if not conditions:
            raise ValueError("conditioned_class_features needs at least one condition {name: [B, ...]}")
        tokens = self.class_tokens().to(self.device)  # [P, L], P = C * T
        batch, prompts = next(iter(conditions.values())).shape[0], tokens.shape[0]
        chunks = []
        for start in range(0, batch * prompts, self.text_batch_size):
            pair = torch.arange(start, min(start + self.text_batch_size, batch * prompts), device=self.device)
            image, prompt = pair // prompts, pair % prompts
            rows = {name: value[image] for name, value in conditions.items()}
            chunks.append(self.clip.encode_text(tokens[prompt], normalize=True, condition=rows))
        features = ensemble_class_features(torch.cat(chunks), batch * len(self.classnames))  # [B * C, D]
        return rearrange(features, "(b c) d -> b c d", b=batch)

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

    # ---------------------------------------------------------------------- forward, step by step
    # A task that changes one step (other conditions, another loss) overrides that method only.
    def encode_images(self, inputs: torch.Tensor) -> VisionOutput:
        """Step 1: the vision tower on normalised images ``[B, 3, H, W]`` (it runs before the text tower)."""
        return self.clip.forward_image(inputs)

    def text_conditions(self, image_output: VisionOutput, image_features: torch.Tensor) -> dict[str, torch.Tensor]:
        """Step 2: what each image passes to the text tower's hooks, ``{name: [B, ...]}``.

        ``image_features`` are the normalised projected features ``[B, D]``, what CoCoOp's meta-net
        reads. A task providing more names adds them here and to ``provides_conditions``.
        """
        return {"image_features": image_features}

    def text_features_for(self, image_output: VisionOutput, image_features: torch.Tensor) -> torch.Tensor:
        """Step 3: class features, ``[C, D]`` shared by the batch, or ``[B, C, D]`` under a conditioned plugin."""
        if self.text_is_conditioned():
            return self.conditioned_class_features(self.text_conditions(image_output, image_features))
        return self.class_text_features()

    def compute_logits(self, image_features: torch.Tensor, text_features: torch.Tensor) -> torch.Tensor:
        """Step 4: ``logit_scale.exp() * cos``, ``[B, C]``, against shared ``[C, D]`` or per-image ``[B, C, D]``."""
        scale = self.clip.logit_scale.exp()
        text_features = text_features.to(image_features.dtype)
        if text_features.dim() == 3:
            return scale * torch.einsum("bd,bcd->bc", image_features, text_features)
        return scale * image_features @ text_features.t()

    def classification_loss(self, logits: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        """Step 5 (loss mode): the cross-entropy, ``{'loss_cls': ...}``; plugin losses are added after it."""
        return {"loss_cls": F.cross_entropy(logits.float(), labels, label_smoothing=self.label_smoothing)}

    def predictions(self, logits: torch.Tensor, labels: torch.Tensor | None) -> list[dict[str, Any]]:
        """Step 5 (predict mode): one dict per sample ``{'pred_score', 'pred_label', 'gt_label'}``."""
        scores = logits.float().softmax(dim=-1).cpu()
        preds = scores.argmax(dim=-1)
        results = []
        for i in range(scores.shape[0]):
            sample = {"pred_score": scores[i], "pred_label": int(preds[i])}
            if labels is not None:
                sample["gt_label"] = int(labels[i])
            results.append(sample)
        return results

    def forward(
        self, inputs: torch.Tensor, data_samples: dict[str, Any] | None = None, mode: str = "tensor"
    ) -> torch.Tensor | dict[str, torch.Tensor] | list[dict[str, Any]]:
        """``inputs``: normalised images ``[B, 3, H, W]``; ``data_samples['label']``: labels ``[B]``."""
        if mode not in ("loss", "predict", "tensor"):
            raise ValueError(f"mode must be 'loss', 'predict' or 'tensor', got {mode!r}")
        image_output = self.encode_images(inputs)
        image_features = F.normalize(image_output.pooled, dim=-1)  # [B, D]
        text_features = self.text_features_for(image_output, image_features)  # [C, D] or [B, C, D]
        logits = self.compute_logits(image_features, text_features)  # [B, C]
        if mode == "tensor":
            return logits
        labels = _labels(data_samples, logits.device)
        if mode == "predict":
            return self.predictions(logits, labels)
        if labels is None:
            raise KeyError("loss mode needs data_samples['label'] (class indices [B])")
        outputs = dict(
            task="classification",
            images=inputs,
            image_output=image_output,
            image_features=image_features,
            text_features=text_features,
            logits=logits,
            logit_scale=self.clip.logit_scale.exp(),
            labels=labels,
            classnames=self.classnames,
        )
        return self.add_plugin_losses(self.classification_loss(logits, labels), outputs)


def _labels(data_samples: dict[str, Any] | None, device: torch.device) -> torch.Tensor | None:
    if not data_samples:
        return None
    labels = data_samples.get("label", data_samples.get("gt_label"))
    if labels is None:
        return None
    return torch.as_tensor(labels, device=device).long().view(-1)
