"""Running a config inside this process (the tiny CLIP's pretraining, the DMU recipe, base-to-novel runs).

``tools/train.py`` runs one config per process. Tools that run several configs in one process build each
runner here, so that each gets the same treatment: an optional ``init(task)`` between building and
training, and the runner's log file closed afterwards (MMEngine keeps it open, and many runners in one
process would leak file handles).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from clipadapt.wrappers import unwrap_model

__all__ = ["close_logs", "train_in_process"]


def close_logs(runner: Any) -> None:
    """Close and detach the file handlers of ``runner``'s logger."""
    for handler in list(runner.logger.handlers):
        if isinstance(handler, logging.FileHandler):
            handler.close()
            runner.logger.removeHandler(handler)


def train_in_process(cfg: Any, init: Callable[[Any], None] | None = None) -> tuple[Any, Any]:
    """Build a runner from the prepared ``cfg``, call ``init(task)``, train, close its logs.

    Returns:
        ``(runner, task)``, the task unwrapped from any DDP or sharding wrapper.
    """
    from mmengine.runner import Runner

    runner = Runner.from_cfg(cfg)
    task = unwrap_model(runner.model)
    if init is not None:
        init(task)
    runner.train()
    close_logs(runner)
    return runner, task
