"""Tiny random-init tasks and a counting probe on the text tower."""

from __future__ import annotations

import pytest
import torch

import clipadapt.engine  # noqa: F401  (registers the tasks and the built-in plugins)
from clipadapt.plugins import Plugin
from clipadapt.registry import PLUGINS


@PLUGINS.register_module(force=True)
class ToyTextPrompt(Plugin):
    """A test plugin with a text embed hook: text features depend on its trainable parameter."""

    prefix = "toytext"
    hook_towers = {"embed": ("text",)}

    def __init__(self, with_loss: bool = False) -> None:
        super().__init__()
        self.with_loss = with_loss
        self.shift = torch.nn.Parameter(torch.zeros(1))

    def embed_hook(self, x, context):
        return x + self.shift

    def losses(self, outputs):
        return {"loss_toy": self.shift.abs().sum() + 0 * outputs["logits"].sum()} if self.with_loss else {}


def count_text_calls(model) -> list[int]:
    """A list whose length is the number of text-tower forwards from now on."""
    calls: list[int] = []
    model.clip.text.register_forward_hook(lambda module, args, out: calls.append(1))
    return calls


@pytest.fixture
def images():
    torch.manual_seed(0)
    return torch.randint(0, 256, (3, 3, 64, 64), dtype=torch.uint8)


@pytest.fixture(autouse=True)
def clipadapt_scope():
    """Build from clipadapt's registries even when an earlier test left another default scope."""
    from mmengine.registry import DefaultScope

    with DefaultScope.overwrite_default_scope("clipadapt"):
        yield
