"""The model inside a runner's wrapper (DDP, CPU DDP, the sharding wrapper), in one place."""

from __future__ import annotations

from typing import Any

__all__ = ["unwrap_model"]


def unwrap_model(model: Any) -> Any:
    """``model.module`` when ``model`` is a registered MMEngine model wrapper (DDP, FSDP, ...), else ``model``."""
    from mmengine.model import is_model_wrapper

    return model.module if is_model_wrapper(model) else model
