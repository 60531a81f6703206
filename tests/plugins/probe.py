"""A test plugin that records what each block of each tower receives; attach it after the plugin under test."""

from __future__ import annotations

import torch

from clipadapt.models import TowerContext
from clipadapt.plugins import Plugin


class Probe(Plugin):
    prefix = "probe"
    hook_towers = {"block": ("text", "vision")}

    def __init__(self) -> None:
        super().__init__()
        self.inputs: dict[str, list[torch.Tensor]] = {"text": [], "vision": []}

    def block_hook(self, index: int, x: torch.Tensor, context: TowerContext) -> torch.Tensor:
        self.inputs[context.tower].append(x.detach().clone())
        return x
