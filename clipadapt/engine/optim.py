"""Optimizers over the trainable parameters only, and bf16 autocast without a loss scaler (CPU or GPU)."""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Iterator
from typing import Any

import torch
from mmengine.logging import print_log
from mmengine.optim import DefaultOptimWrapperConstructor, OptimWrapper
from mmengine.registry import OPTIMIZERS as MMENGINE_OPTIMIZERS
from torch import nn

from clipadapt.registry import OPTIM_WRAPPER_CONSTRUCTORS, OPTIM_WRAPPERS
from clipadapt.wrappers import unwrap_model

__all__ = ["AutocastOptimWrapper", "TrainableOptimWrapperConstructor"]


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class TrainableOptimWrapperConstructor(DefaultOptimWrapperConstructor):
    """MMEngine's default constructor, restricted to parameters with ``requires_grad=True``.

    MMEngine's default hands every parameter to the optimizer; a frozen one gets no gradient and
    no SGD update, but optimizers such as AdamW may still allocate state for it, and weight decay
    of a ``decoupled`` optimizer would shrink it. Here the optimizer never sees frozen parameters:
    an adapted ViT-B/16 keeps optimizer state for its prompts only. ``paramwise_cfg`` (``lr_mult``,
    ``decay_mult``, ``custom_keys``, ``norm_decay_mult``, ...) works as in MMEngine.

    Raises:
        ValueError: the model has no trainable parameter.
    """

    def __call__(self, model: nn.Module) -> OptimWrapper:
        model = unwrap_model(model)
        trainable = [p for p in model.parameters() if p.requires_grad]
        if not trainable:
            raise ValueError(
                f"{type(model).__name__} has no trainable parameter (every requires_grad is False): "
                "attach a plugin that trains something, or train without plugins"
            )
        optimizer_cfg = self.optimizer_cfg.copy()
        optimizer_cls = optimizer_cfg["type"]
        if isinstance(optimizer_cls, str):
            with MMENGINE_OPTIMIZERS.switch_scope_and_registry(None) as registry:
                optimizer_cls = registry.get(optimizer_cls)
        if self.paramwise_cfg:
            groups: list[dict[str, Any]] = []
            self.add_params(groups, model)
            params: list[Any] = [g for g in groups if g["params"][0].requires_grad]
        else:
            params = trainable
        first_arg = next(iter(inspect.signature(optimizer_cls).parameters))  # 'params' (or 'model_params')
        optimizer_cfg[first_arg] = params
        optimizer = MMENGINE_OPTIMIZERS.build(optimizer_cfg)
        frozen = sum(p.numel() for p in model.parameters() if not p.requires_grad)
        print_log(
            f"optimizer over {sum(p.numel() for p in trainable):,} trainable parameters "
            f"({len(trainable)} tensors); {frozen:,} frozen parameters left out",
            logger="current",
        )
        wrapper_cfg = self.optim_wrapper_cfg.copy()
        wrapper_cfg.setdefault("type", "OptimWrapper")
        return OPTIM_WRAPPERS.build(wrapper_cfg, default_args=dict(optimizer=optimizer))


@OPTIM_WRAPPERS.register_module()
class AutocastOptimWrapper(OptimWrapper):
    """An ``OptimWrapper`` that runs the forward under ``torch.autocast`` in bfloat16, with no loss scaler.

    MMEngine's ``AmpOptimWrapper`` needs CUDA (for its ``GradScaler``); bf16 has fp32's exponent range
    and needs no scaling, so this one works on CPU and GPU alike. ``tools/train.py --amp`` uses it
    when no GPU is present.

    Args:
        dtype: ``'bfloat16'`` (CPU and GPU) or ``'float16'`` (GPU only; prefer ``AmpOptimWrapper``).
        **kwargs: ``OptimWrapper`` arguments (``optimizer``, ``accumulative_counts``, ``clip_grad``).
    """

    def __init__(self, dtype: str = "bfloat16", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if dtype not in ("bfloat16", "float16"):
            raise ValueError(f"dtype must be 'bfloat16' or 'float16', got {dtype!r}")
        self.cast_dtype = getattr(torch, dtype)

    @contextlib.contextmanager
    def optim_context(self, model: nn.Module) -> Iterator[None]:
        from mmengine.runner.amp import autocast

        with super().optim_context(model), autocast(dtype=self.cast_dtype):
            yield
