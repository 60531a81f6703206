"""What every task shares: a CLIP built by ``create_model``, its tokenizer, and plugin losses."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import torch
from mmengine.model import BaseModel
from mmengine.registry import DefaultScope
from torch import nn

from clipadapt.factory import create_model, get_tokenizer
from clipadapt.plugins import check_conditions
from clipadapt.registry import MODELS

__all__ = ["ClipTask"]


class ClipTask(BaseModel):
    """An MMEngine ``BaseModel`` (``loss`` / ``predict`` / ``tensor`` modes) that owns a CLIP and its plugins.

    The trainable parameters are exactly those with ``requires_grad=True`` after ``create_model``: with
    plugins, the plugins decide; without, the whole CLIP trains (as in open_clip).

    ``provides_conditions`` says which per-call conditions the task passes to each tower
    (``{"text": ("image_features",)}``); a plugin that declares a condition the task does not provide
    (``Plugin.conditions``) is refused when the task is built, naming both.

    Args:
        model_name: open_clip / clipadapt config name, JSON path or dict (``create_model``).
        pretrained: Local weights file of the base CLIP; ``None`` = random initialisation.
        plugins: Plugin configs attached in list order.
        data_preprocessor: Config or module; default :class:`ClipDataPreprocessor`.
        grad_checkpointing: Activation checkpointing in both towers.
        init_cfg: MMEngine's ``init_cfg``; leave ``None``: weights come from ``pretrained``.
    """

    provides_conditions: ClassVar[dict[str, tuple[str, ...]]] = {}

    def __init__(
        self,
        model_name: str | dict[str, Any],
        pretrained: str | None = None,
        plugins: Sequence[dict[str, Any]] | None = None,
        data_preprocessor: dict[str, Any] | nn.Module | None = None,
        grad_checkpointing: bool = False,
        init_cfg: dict[str, Any] | None = None,
    ) -> None:
        if data_preprocessor is None:
            data_preprocessor = dict(type="ClipDataPreprocessor")
        if isinstance(data_preprocessor, dict):
            # Built from clipadapt's registry whatever the current default scope is.
            with DefaultScope.overwrite_default_scope("clipadapt"):
                data_preprocessor = MODELS.build(data_preprocessor)
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.clip = create_model(model_name, pretrained=pretrained, plugins=list(plugins or []))
        check_conditions(self.clip.plugins, self.provides_conditions, type(self).__name__)
        if grad_checkpointing:
            self.clip.set_grad_checkpointing(True)
        self.tokenizer = get_tokenizer(model=self.clip)

    def init_weights(self) -> None:
        """No-op: the runner must not re-initialise a CLIP whose weights came from ``pretrained``."""

    @property
    def device(self) -> torch.device:
        return self.clip.logit_scale.device

    def tokenize(self, texts: Sequence[str]) -> torch.Tensor:
        """Token ids [N, context_length] on the model's device (context length after the plugins)."""
        if isinstance(texts, str):
            raise TypeError("tokenize takes a list of strings, not one string")
        return self.tokenizer(list(texts)).to(self.device)

    def parse_losses(self, losses: dict[str, Any]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """MMEngine's loss parsing, refusing a non-finite loss before it reaches the weights.

        A NaN or infinite loss would write NaN into every trained parameter at the update and, at the next
        checkpoint, over the last good one. The training step (MMEngine's, and its DDP wrapper's) parses
        the losses before the update, so raising here stops the run with the checkpoints on disk as they
        were, naming the iteration and the loss terms that are not finite.

        Raises:
            FloatingPointError: the summed loss is NaN or infinite.
        """
        parsed, log_vars = super().parse_losses(losses)
        if not torch.isfinite(parsed.detach()).all():
            terms = {name: value for name, value in log_vars.items() if name != "loss"}  # "loss" is their sum
            bad = {name: float(value) for name, value in terms.items() if not torch.isfinite(value).all()}
            bad = bad or {"loss": float(parsed)}
            raise FloatingPointError(
                f"non-finite loss at iteration {_current_iteration()}: {bad}; the step was not applied (lower "
                "the lr, enable clip_grad, or use bf16 instead of fp16)"
            )
        return parsed, log_vars

    def add_plugin_losses(self, losses: dict[str, torch.Tensor], outputs: dict[str, Any]) -> dict[str, torch.Tensor]:
        """Add each attached plugin's ``losses(outputs)`` to ``losses``; a name used twice is an error."""
        for prefix, plugin in self.clip.plugins.items():
            for name, value in plugin.losses(outputs).items():
                if name in losses:
                    raise ValueError(f"plugin {prefix!r} returns loss {name!r}, which another term already uses")
                losses[name] = value
        return losses


def _current_iteration() -> int | str:
    """The runner's iteration (1-based, as its logs count) or ``"?"`` outside a runner."""
    from mmengine.logging import MessageHub

    hub = MessageHub.get_current_instance()
    iteration = hub.get_info("iter")
    return "?" if iteration is None else int(iteration) + 1
