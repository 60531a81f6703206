"""The recipe configs' learning-rate schedules, stepped the way the runner steps them, against the originals.

Dassl (CoOp, MaPLe, PromptSRC) warms up for one epoch at a constant 1e-5 and then follows a cosine from
the base lr. MMEngine's ``ConstantLR`` restores the lr only on its last *step*: counted in epochs with
``end=1`` it never steps again, and the cosine after it would decay from 1e-5 (the model barely trains).
These tests trace the lr of every iteration of each shipped schedule. Long-CLIP, CLIP-MoE, FG-CLIP and
FG-CLIP 2 warm up linearly for N steps and then follow a cosine from step N to the end; their recipes are
traced against the originals' formulas. The tiny synthetic-world configs keep the schedules their recorded
results were trained with (docs/plugins/*.md, "Differences from the original").
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
    assert "maple/maple_vit-b-16_1xb4-5e_imagenet-b2n.py" in DASSL and len(DASSL) >= 6


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


# ---------------------------------------------------------------------------------------------- recipes
# The recipes of the non-Dassl originals, each traced against the original's own formula.


def runner_trace(schedulers: list, lr: float, epochs: int, epoch_length: int) -> list[float]:
    """As :func:`lr_trace`, with the runner's default ``end`` (its last iteration or epoch) filled in."""
    filled = []
    for s in schedulers:
        s = dict(s)
        if "end" not in s:
            s["end"] = epochs * epoch_length if not s.get("by_epoch", True) else epochs
        filled.append(s)
    cfg = Config(
        dict(optim_wrapper=dict(optimizer=dict(lr=lr)), param_scheduler=filled, train_cfg=dict(max_epochs=epochs))
    )
    return lr_trace(cfg, epoch_length)


def warmup_cosine(base: float, warmup: int, steps: int, step: int) -> float:
    """``cosine_lr`` of Long-CLIP's and CLIP-MoE's ``train/scheduler.py``."""
    if step < warmup:
        return base * (step + 1) / warmup
    return 0.5 * (1 + math.cos(math.pi * (step - warmup) / (steps - warmup))) * base


def hf_warmup_cosine(base: float, warmup: int, steps: int, step: int) -> float:
    """transformers' ``get_cosine_schedule_with_warmup`` (FG-CLIP, FG-CLIP 2): from 0, then a half cosine."""
    if step < warmup:
        return base * step / max(1, warmup)
    return base * 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, steps - warmup)))


def _close(trace: list[float], reference: list[float], rel: float, abs_: float = 0.0) -> None:
    for step, (ours, theirs) in enumerate(zip(trace, reference, strict=True)):
        assert ours == pytest.approx(theirs, rel=rel, abs=abs_), f"step {step}: {ours} vs {theirs}"


# MMEngine's LinearLR and CosineAnnealingLR are chained products (one rounding per step): after N steps
# the relative error is about N x 1e-16; 1e-9 leaves a wide margin at these lengths.
CHAINED = 1e-9


@pytest.mark.parametrize(
    "name",
    [
        "longclip/longclip_vit-b-16_16xb128_sharegpt4v.py",
        "longclip/longclip_vit-l-14_16xb128_sharegpt4v.py",
        "moe/clipmoe_vit-b-16_4x2_1xb100_sharegpt4v.py",
        "moe/clipmoe_vit-l-14_4x2_1xb100_sharegpt4v.py",
    ],
)
def test_longclip_and_clipmoe_follow_their_cosine_lr(name):
    cfg = Config.fromfile(str(CONFIGS / name))
    stages = [(cfg.optim_wrapper, cfg.param_scheduler, cfg.train_cfg)]
    if "dmu" in cfg:
        mlp = cfg.dmu.mlp_stage
        stages.append((mlp.optim_wrapper, mlp.param_scheduler, mlp.train_cfg))
    for optim_wrapper, schedulers, train_cfg in stages:
        base, epochs, length = optim_wrapper.optimizer.lr, train_cfg.max_epochs, 700
        steps = epochs * length
        trace = runner_trace(schedulers, base, epochs, length)
        _close(trace, [warmup_cosine(base, 200, steps, s) for s in range(steps)], CHAINED, abs_=1e-18)


def test_fgclip_v1_follows_the_trainers_warmup_steps_then_cosine():
    cfg = Config.fromfile(str(CONFIGS / "fgclip/fgclip_vit-b-16_8xb512_regions.py"))
    base, epochs, length = cfg.optim_wrapper.optimizer.lr, cfg.train_cfg.max_epochs, 900
    steps = epochs * length
    trace = runner_trace(cfg.param_scheduler, base, epochs, length)
    reference = [hf_warmup_cosine(base, 200, steps, s) for s in range(steps)]
    # The warm-up runs one step ahead of the Trainer's (base (t + 1) / 200 against base t / 200: MMEngine's
    # LinearLR cannot start at 0); from step 200 on the two are the same cosine.
    _close(trace[:200], reference[:200], rel=0.0, abs_=base / 200 * (1 + CHAINED))
    _close(trace[200:], reference[200:], CHAINED, abs_=1e-18)


def test_fgclip2_follows_the_trainers_warmup_ratio_then_cosine():
    cfg = Config.fromfile(str(CONFIGS / "fgclip/fgclip2_vit-b-16_8xb512_regions.py"))
    base, epochs, length = cfg.optim_wrapper.optimizer.lr, cfg.train_cfg.max_epochs, 1000
    steps = epochs * length
    warmup = math.ceil(steps * 0.03)  # the Trainer's get_warmup_steps
    assert warmup == 180
    trace = runner_trace(cfg.param_scheduler, base, epochs, length)
    reference = [hf_warmup_cosine(base, warmup, steps, s) for s in range(steps)]
    # Warm-up: from 1e-3 base instead of 0, reaching base one step earlier: at most (1e-3 + 1 / 180) base apart.
    _close(trace[:warmup], reference[:warmup], rel=0.0, abs_=base * (1e-3 + 1 / (warmup - 1)))
    _close(trace[warmup:], reference[warmup:], CHAINED, abs_=1e-18)


def test_cloc_warms_up_then_anneals_from_the_warmup_end():
    cfg = Config.fromfile(str(CONFIGS / "cloc/cloc_vit-b-16_64xb512_regions.py"))
    base, epochs, length = cfg.optim_wrapper.optimizer.lr, cfg.train_cfg.max_epochs, 5000
    trace = runner_trace(cfg.param_scheduler, base, epochs, length)
    steps = epochs * length
    reference = [0.5 * (1 + math.cos(math.pi * (s - 2000) / (steps - 2000))) * base for s in range(2000, steps)]
    _close(trace[2000:], reference, CHAINED, abs_=1e-18)
    assert trace[0] == pytest.approx(1e-3 * base) and all(a < b for a, b in itertools.pairwise(trace[:2000]))
