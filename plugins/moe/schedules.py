"""The schedules of the DMU recipe's runs: the MLP stages' and the router's, stretched for the baselines."""

from __future__ import annotations

import copy
from typing import Any

__all__ = ["SCHEDULE_KEYS", "stretch_schedulers"]

SCHEDULE_KEYS = ("optim_wrapper", "param_scheduler", "train_cfg")


def stretch_schedulers(schedule: dict[str, Any], max_iters: int | None = None) -> list[dict[str, Any]]:
    """The schedule's parameter schedulers for a run of ``max_iters`` steps (default: its own length).

    An iteration-based scheduler without ``end`` (MMEngine then never ends it: a cosine without ``end``
    or ``T_max`` would not decay at all), or whose ``end`` is the schedule's own ``max_iters``, ends at
    the run's last step, so that the baselines' longer runs anneal over their whole length as the stages
    do over theirs. Other schedulers (a warm-up of fixed length) are kept as they are.
    """
    schedulers = schedule.get("param_scheduler") or []
    schedulers = copy.deepcopy([schedulers] if isinstance(schedulers, dict) else list(schedulers))
    train_cfg = schedule["train_cfg"]
    if train_cfg.get("by_epoch", True) or "max_iters" not in train_cfg:
        return schedulers
    own = int(train_cfg["max_iters"])
    total = own if max_iters is None else int(max_iters)
    for scheduler in schedulers:
        if scheduler.get("by_epoch", True) or "T_max" in scheduler:
            continue
        if scheduler.get("end") is None or int(scheduler["end"]) == own:
            scheduler["end"] = total
    return schedulers
