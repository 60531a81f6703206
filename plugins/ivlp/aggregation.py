"""PromptSRC's Gaussian-weighted prompt aggregation (GPA) as an MMEngine hook.

PromptSRC (Khattak et al., ICCV 2023, https://arxiv.org/abs/2307.06948; ``trainers/promptsrc.py`` of
``muzairkhattak/PromptSRC``) keeps, after each epoch ``e = 1..N``, the running sum of the model weights
times ``g(e) / sum_{a=1..N} g(a)`` with ``g`` the density of N(``GPA_MEAN``, ``GPA_STD``), and loads
that sum into the model after the last epoch (15 and 1 for its 20-epoch base-to-novel runs).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from mmengine.hooks import Hook
from torch import nn

from clipadapt.registry import HOOKS
from clipadapt.wrappers import unwrap_model

__all__ = ["GaussianPromptAggregationHook"]


@HOOKS.register_module()
class GaussianPromptAggregationHook(Hook):
    """Gaussian-weighted average over epochs of every trainable parameter, loaded after the last epoch.

    After epoch ``e`` (1-based) the trainable parameters ``θ_e`` (``requires_grad=True`` in the
    unwrapped model: a plugin's prompts, whatever else trains) enter the running sum with weight
    ``g(e) = exp(-(e - mean)² / (2 std²))``. After the last epoch (before its checkpoint is saved and
    before its validation) the model gets ``Σ g(e) θ_e / Σ g(e)``. With every epoch run this is exactly
    PromptSRC's ``Σ_e w_e θ_e`` with ``w_e = g(e) / Σ_{a=1..N} g(a)``; when training stops early
    (``stop_training``) the weights of the epochs that ran are renormalised in ``after_train``. Weights
    are kept relative to the largest so far, so far-off epochs (``g`` ≈ 1e-43 at ``e=1`` for mean 15,
    std 1) cannot underflow the sum.

    The running sum goes into every checkpoint under ``checkpoint['gpa']`` (tensors only) and is taken
    back on ``resume``; a checkpoint loaded with ``load_from`` (no resume) starts a fresh aggregate.

    Args:
        mean: Mean of the Gaussian, in epochs (1-based; PromptSRC's ``GPA_MEAN``).
        std: Its standard deviation, in epochs (``GPA_STD``).
    """

    priority = "NORMAL"  # after_train_epoch runs before CheckpointHook (VERY_LOW)

    def __init__(self, mean: float = 15.0, std: float = 1.0) -> None:
        if not std > 0:
            raise ValueError(f"GaussianPromptAggregationHook std must be > 0, got {std}")
        self.mean, self.std = float(mean), float(std)
        self._reset()
        self._pending: dict[str, Any] | None = None  # state from a loaded checkpoint, adopted on resume

    def _reset(self) -> None:
        self._sum: dict[str, torch.Tensor] = {}  # Σ exp(log g(e) - log_scale) θ_e
        self._weight = 0.0  # Σ exp(log g(e) - log_scale)
        self._log_scale = -math.inf  # the largest log g(e) so far
        self._epochs = 0  # epochs aggregated, i.e. runner.epoch after the last one
        self._loaded = False  # the aggregate is in the model

    def log_weight(self, epoch: int) -> float:
        """log g(epoch), up to the constant that the normalisation cancels."""
        return -0.5 * ((epoch - self.mean) / self.std) ** 2

    @staticmethod
    def _parameters(runner: Any) -> dict[str, nn.Parameter]:
        model = unwrap_model(runner.model)
        return {name: p for name, p in model.named_parameters() if p.requires_grad}

    # --------------------------------------------------------------------------------- running
    def before_train(self, runner: Any) -> None:
        pending, self._pending = self._pending, None
        if pending is not None and int(pending["epochs"]) == runner.epoch and runner.epoch > 0:
            self._adopt(runner, pending)
            return
        self._reset()
        if runner.epoch > 0:
            runner.logger.warning(
                f"GaussianPromptAggregationHook: resumed at epoch {runner.epoch} without an aggregate for it in the "
                "checkpoint; the Gaussian-weighted average starts from here"
            )
        if not self._parameters(runner):
            runner.logger.warning("GaussianPromptAggregationHook: the model has no trainable parameter to aggregate")

    def after_train_epoch(self, runner: Any) -> None:
        epoch = runner.epoch + 1  # runner.epoch counts finished epochs and is incremented after this hook
        params = self._parameters(runner)
        if not params:
            return
        if self._sum and set(self._sum) != set(params):
            raise RuntimeError(
                "GaussianPromptAggregationHook: the trainable parameters changed during training "
                f"(now {len(params)}, aggregated {len(self._sum)}); it cannot average them"
            )
        log_weight = self.log_weight(epoch)
        if log_weight > self._log_scale:  # rescale the sum to the new largest weight
            factor = math.exp(self._log_scale - log_weight)
            for tensor in self._sum.values():
                tensor.mul_(factor)
            self._weight *= factor
            self._log_scale = log_weight
        weight = math.exp(log_weight - self._log_scale)
        with torch.no_grad():
            for name, p in params.items():
                value = p.detach().float() * weight
                if name in self._sum:
                    self._sum[name].add_(value)
                else:
                    self._sum[name] = value
        self._weight += weight
        self._epochs = epoch
        if epoch >= runner.max_epochs:
            self._load(runner)

    def after_train(self, runner: Any) -> None:
        if not self._loaded and self._epochs > 0:  # stopped before max_epochs
            self._load(runner)

    def _load(self, runner: Any) -> None:
        params = self._parameters(runner)
        with torch.no_grad():
            for name, p in params.items():
                p.copy_((self._sum[name].to(p.device) / self._weight).to(p.dtype))
        self._loaded = True
        runner.logger.info(
            f"GaussianPromptAggregationHook: loaded the N({self.mean:g}, {self.std:g})-weighted average of epochs "
            f"1..{self._epochs} into {len(params)} trainable parameter(s)"
        )

    # ----------------------------------------------------------------------------- checkpoints
    def state_dict(self) -> dict[str, Any]:
        """The aggregate, as tensors only (``checkpoint['gpa']``)."""
        f64 = dict(dtype=torch.float64)
        return {
            "sum": {name: t.detach().cpu().clone() for name, t in self._sum.items()},
            "weight": torch.tensor(self._weight, **f64),
            "log_scale": torch.tensor(self._log_scale, **f64),
            "epochs": torch.tensor(self._epochs),
            "loaded": torch.tensor(self._loaded),
            "mean": torch.tensor(self.mean, **f64),
            "std": torch.tensor(self.std, **f64),
        }

    def before_save_checkpoint(self, runner: Any, checkpoint: dict) -> None:
        checkpoint["gpa"] = self.state_dict()

    def after_load_checkpoint(self, runner: Any, checkpoint: dict) -> None:
        # Called for both resume and load_from; before_train adopts it only when training resumes at its epoch.
        self._pending = checkpoint.get("gpa")

    def _adopt(self, runner: Any, state: dict[str, Any]) -> None:
        if (float(state["mean"]), float(state["std"])) != (self.mean, self.std):
            runner.logger.warning(
                f"GaussianPromptAggregationHook: the checkpoint aggregated with N({float(state['mean']):g}, "
                f"{float(state['std']):g}), this run uses N({self.mean:g}, {self.std:g}); the weights are mixed"
            )
        device = {name: p.device for name, p in self._parameters(runner).items()}
        self._sum = {name: t.float().to(device.get(name, "cpu")) for name, t in state["sum"].items()}
        self._weight = float(state["weight"])
        self._log_scale = float(state["log_scale"])
        self._epochs = int(state["epochs"])
        self._loaded = bool(state["loaded"])
