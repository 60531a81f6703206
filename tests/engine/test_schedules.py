"""The prompt-learning configs' learning-rate schedules, stepped the way the runner steps them.

Dassl (CoOp, MaPLe, PromptSRC) warms up for one epoch at a constant 1e-5 and then follows a cosine from
the base lr. MMEngine's ``ConstantLR`` restores the lr only on its last *step*: counted in epochs with
``end=1`` it never steps again, and the cosine after it would decay from 1e-5 (the model barely trains).
These tests trace the lr of every iteration of each shipped schedule.
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmengine.optim import OptimWrapper
from mmengine.registry import PARAM_SCHEDULERS

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
DASSL = sorted(
    p.relative_to(CONFIGS).as_posix()
    for p in CONFIGS.rglob("*.py")
    if "_base_" not in p.parts and "ConstantLR" in Config.fromfile(str(p)).pretty_text
)


def lr_trace(cfg: Config, epoch_length: int) -> list[float]:
    """The lr of each training iteration: schedulers stepped per iteration or per epoch, as the runner does."""
    param = torch.nn.Parameter(torch.zeros(1))
    wrapper = OptimWrapper(torch.optim.SGD([param], lr=cfg.optim_wrapper.optimizer.lr))
    schedulers = [
        PARAM_SCHEDULERS.build(dict(s), default_args=dict(optimizer=wrapper, epoch_length=epoch_length))
        for s in cfg.param_scheduler
    ]
    trace = []
    for _epoch in range(cfg.train_cfg.max_epochs):
        for _ in range(epoch_length):
            trace.append(wrapper.param_groups[0]["lr"])
            wrapper.step()
            for s in schedulers:
                if not s.by_epoch:
                    s.step()
        for s in schedulers:
            if s.by_epoch:
                s.step()
    return trace


def test_the_dassl_configs_are_found():
    assert "maple/maple_tiny-vit_1xb4_synthetic-warm-b2n.py" in DASSL
    assert "maple/maple_vit-b16_1xb4-5e_imagenet-b2n.py" in DASSL and len(DASSL) >= 6


@pytest.mark.parametrize("name", DASSL)
def test_constant_warmup_then_cosine_from_the_base_lr(name):
    cfg = Config.fromfile(str(CONFIGS / name))
    base, n, epochs = cfg.optim_wrapper.optimizer.lr, 20, cfg.train_cfg.max_epochs
    trace = lr_trace(cfg, n)
    assert trace[: n - 1] == pytest.approx([1e-5] * (n - 1))  # the warm-up epoch (its last step restores)
    assert trace[n] == pytest.approx(base)  # the cosine starts from the base lr, not from 1e-5
    after = trace[n:]
    assert all(a >= b for a, b in itertools.pairwise(after))  # then only decays

    # The cosine spans the whole schedule (T_max = epochs), so the last epoch still trains: Dassl's last
    # epoch uses base * (1 + cos(pi (E - 1) / E)) / 2; ours decays through that epoch to this value.
    def cosine(progress: float) -> float:
        return base * (1 + math.cos(math.pi * progress)) / 2

    assert cosine((epochs - 1) / epochs) <= trace[-1] <= cosine((epochs - 1.1) / epochs)
