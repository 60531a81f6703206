"""Sharded contrastive training (FSDP2 through ``FullyShardedWrapper``) on two gloo ranks equals DDP on two ranks.

The tiny CLIP trains from a random init with plain SGD (so a gradient scale would show) on 2 ranks x 4
captioned scenes for 3 steps, once under DDP (``CPUDistributedDataParallel``) and once sharded with
activation checkpointing on. Both average the same per-rank gradients and compute every forward on the
same parameter values (the sharded run all-gathers them whole), so they can differ only where a kernel
adds its terms in another order (MKL picks its blocking by buffer alignment; FSDP2's all-gathered
buffers are not the parameters' own). The bound on that, as for two DDP ranks against one process, is
``steps x terms x eps`` of how far each weight moved (Higham's bound for reordering a sum of ``terms``
float32 numbers, the errors of the steps adding to first order), with ``terms`` the longest sum of a
step, ``batch x 77`` text tokens. A bug (a gradient not averaged, a shard applied to the wrong rows, a
replicated ``logit_scale`` not reduced) moves weights by a good part of their displacement.

A third run uses the large-batch loss (``local_loss=True``) and must end where DDP ends too. A fourth
run in bf16 mixed precision checks that the parameters and checkpoint stay fp32 and that it trains like
the fp32 run within bf16's rounding (eps 2^-8).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch

from clipadapt.datasets.synthetic import ensure_synthetic_world
from tests.helpers import initial_state, run_distributed
from tests.tools.test_ddp_contrastive import CLIP_CONFIG, CONFIG, WORLD

ROOT = Path(__file__).resolve().parents[2]
BATCH, STEPS, TOKENS = 4, 3, 77
SHARDED = '\nmodel_wrapper_cfg = dict(type="FullyShardedWrapper"{extra})\n'
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("fsdp_contrastive")]  # one worker runs the module fixtures once


def dist_train(tmp_path: Path, name: str, text: str, env: dict, *extra: str) -> tuple[Path, str]:
    """Run ``text`` as a config with ``tools/dist_train.sh`` on 2 processes; returns (work_dir, log)."""
    config = tmp_path / f"{name}.py"
    config.write_text(text)
    work_dir = tmp_path / name
    cmd = ["bash", str(ROOT / "tools" / "dist_train.sh"), str(config), "2", "--work-dir", str(work_dir), *extra]
    return work_dir, run_distributed(cmd, env)


def dist_env(tmp_path: Path, world: Path) -> dict:
    """The environment of the runs (each run gets a port of its own from :func:`run_distributed`)."""
    env = dict(os.environ, CLIPADAPT_DATA=str(world), CLIPADAPT_CACHE=str(tmp_path / "cache"), OMP_NUM_THREADS="1")
    return env | dict(PYTHON=sys.executable)


def load(path: Path) -> dict:
    from clipadapt.engine import enable_safe_resume

    enable_safe_resume()
    return torch.load(path, map_location="cpu", weights_only=True)


def losses(checkpoint: dict) -> list[float]:
    return checkpoint["message_hub"]["log_scalars"]["train/loss"]._log_history.tolist()


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("fsdp_contrastive")
    world = ensure_synthetic_world(tmp_path / "world", progress=False, workers=1, **WORLD)
    env = dist_env(tmp_path, world)
    base = CONFIG.format(base=str(CLIP_CONFIG), world=WORLD, batch=BATCH)
    texts = {
        "ddp": base,
        "sharded": base + "model = dict(grad_checkpointing=True)" + SHARDED.format(extra=""),
        "bf16": base + SHARDED.format(extra=', mixed_precision="bf16"'),
        "local_loss": base + "model = dict(local_loss=True, loss_chunk_size=3)" + SHARDED.format(extra=""),
    }
    out = {name: dist_train(tmp_path, name, text, env) for name, text in texts.items()}
    out["start"] = initial_state(tmp_path / "ddp.py")
    return out


@pytest.mark.parametrize("name", ["sharded", "local_loss"])
def test_sharded_equals_ddp(runs, name):
    """Sharded with activation checkpointing; sharded with the large-batch loss (logits [4, 8] per rank
    in chunks of 3 rows, against [8, 8]: the same sums in another order, inside the same bound)."""
    (ddp_dir, _), (sharded_dir, log) = runs["ddp"], runs[name]
    assert "FullyShardedWrapper" in log and "Epoch(train) [3][1/1]" in log, log[-3000:]
    ddp, sharded, start = load(ddp_dir / "epoch_3.pth"), load(sharded_dir / "epoch_3.pth"), runs["start"]
    tolerance = STEPS * BATCH * TOKENS * torch.finfo(torch.float32).eps
    assert losses(sharded) == pytest.approx(losses(ddp), rel=tolerance) and len(losses(ddp)) == STEPS
    want, got = ddp["state_dict"], sharded["state_dict"]
    assert sorted(got) == sorted(want)
    moves = {k: float((want[k] - start[k]).abs().max()) for k in want}
    overall = max(moves.values())
    assert sum(m > 0 for m in moves.values()) > len(moves) // 2, "most weights must train"
    for key in want:
        assert not isinstance(got[key], torch.distributed.tensor.DTensor) and got[key].shape == want[key].shape
        diff = float((got[key] - want[key]).abs().max())
        assert diff <= tolerance * max(moves[key], overall / STEPS), f"{key}: {diff:.3g} off ({moves[key]:.3g} moved)"
    for state_ddp, state_sharded in zip(ddp["optimizer"]["state"].values(), sharded["optimizer"]["state"].values()):
        assert state_ddp.keys() == state_sharded.keys()  # whole optimizer state (SGD keeps none without momentum)


def test_bf16_mixed_precision_keeps_fp32_parameters_and_trains(runs):
    (ddp_dir, _), (bf16_dir, _) = runs["ddp"], runs["bf16"]
    fp32, bf16 = load(ddp_dir / "epoch_3.pth"), load(bf16_dir / "epoch_3.pth")
    assert all(v.dtype == torch.float32 for k, v in bf16["state_dict"].items() if v.is_floating_point())
    # The first step's loss is computed from the same weights, rounded to bf16 (eps 2^-8) in each of 8 blocks.
    first, want = losses(bf16)[0], losses(fp32)[0]
    assert abs(first - want) <= 8 * 2**-8 * want, (losses(bf16), losses(fp32))
    assert all(torch.isfinite(torch.tensor(losses(bf16))))
    moved = [k for k, v in bf16["state_dict"].items() if not torch.equal(v, runs["start"][k])]
    assert len(moved) > len(bf16["state_dict"]) // 2


_MOE_PLUGIN = 'dict(type="MoEUpcycle", num_experts=4, top_k=2, vision_layers=1, text_layers=1, trainable="all")'
_LONGCLIP_PLUGIN = 'dict(type="LongCLIP", keep=20, ratio=4, trainable="all", logit_scale=None, pcm_components=2)'
_SGD = """
optim_wrapper = dict(_delete_=True, type="OptimWrapper", constructor="TrainableOptimWrapperConstructor",
                     optimizer=dict(type="SGD", lr=0.5, momentum=0.0, weight_decay=0.0))
param_scheduler = [dict(type="ConstantLR", factor=1.0, by_epoch=False, begin=0, end=1)]
train_cfg = dict(max_epochs=3, val_interval=10)
val_dataloader = val_cfg = val_evaluator = None  # training only (its evaluator builds a zero-shot world)
custom_hooks = []
default_hooks = dict(logger=dict(interval=1), checkpoint=dict(interval=3, save_last=True))
"""
# Long-CLIP on its own tiny config: stretched positions (a parametrization), long and short PCM losses.
LONGCLIP = f"""
_base_ = [{str(ROOT / "configs" / "longclip" / "longclip_tiny-vit_1xb64_synthetic-long.py")!r}]
synthetic_world = {WORLD!r}
model = dict(pretrained=None, plugins=[{_LONGCLIP_PLUGIN}])
train_dataloader = dict(batch_size={BATCH})
{_SGD}"""
# FG-CLIP 2 on its own tiny config: region, hard-negative and long-caption losses, everything trains. Its
# value path re-runs parts of the last vision block outside the block's forward: that block joins the root unit.
FGCLIP2 = f"""
_base_ = [{str(ROOT / "configs" / "fgclip" / "fgclip2_tiny-vit_1xb32_synthetic-regions.py")!r}]
synthetic_world = {WORLD!r}
model = dict(pretrained=None)
train_dataloader = dict(batch_size={BATCH})
{_SGD}"""
_ROOT_BLOCK = SHARDED.format(extra=', root_modules=["clip.visual.transformer.resblocks.3"]')
# DDP needs find_unused_parameters=True for CLIP-MoE (the MoE configs set it): an expert that gets no token on
# one rank has no gradient there; plain DDP then ends 0.1 away from the sharded run (which reduces every shard).
PLUGIN_CONFIGS = {
    "moe": (
        CONFIG.format(base=str(CLIP_CONFIG), world=WORLD, batch=BATCH) + f"model = dict(plugins=[{_MOE_PLUGIN}])\n",
        "find_unused_parameters = True\n",
    ),
    "longclip": (LONGCLIP, ""),
    "fgclip2": (FGCLIP2, ""),
}


@pytest.fixture(scope="module", params=sorted(PLUGIN_CONFIGS))
def plugin_runs(request, tmp_path_factory):
    """CLIP-MoE (experts and routers train, the base is frozen), Long-CLIP and FG-CLIP 2, DDP and sharded."""
    tmp_path = tmp_path_factory.mktemp(f"fsdp_{request.param}")
    world = ensure_synthetic_world(tmp_path / "world", progress=False, workers=1, **WORLD)
    env = dist_env(tmp_path, world)
    base, ddp = PLUGIN_CONFIGS[request.param]
    sharded = base + (_ROOT_BLOCK if request.param == "fgclip2" else SHARDED.format(extra=""))
    texts = {"ddp": base + ddp, "sharded": sharded}
    out = {name: dist_train(tmp_path, name, text, env) for name, text in texts.items()}
    out["start"] = initial_state(tmp_path / "ddp.py")
    return out


def test_sharded_plugin_training_equals_ddp(plugin_runs):
    """MoE routing is discrete: the same weights route the same tokens, so the bound above still holds."""
    ddp, sharded = (load(plugin_runs[name][0] / "epoch_3.pth") for name in ("ddp", "sharded"))
    tolerance = STEPS * BATCH * TOKENS * torch.finfo(torch.float32).eps
    assert losses(sharded) == pytest.approx(losses(ddp), rel=tolerance) and len(losses(ddp)) == STEPS
    want, got, start = ddp["state_dict"], sharded["state_dict"], plugin_runs["start"]
    assert sorted(got) == sorted(want) and "clipadapt" in sharded["meta"]  # adapter checkpoints, both
    overall = max(float((want[k] - start[k]).abs().max()) for k in want)
    assert overall > 0
    for key in want:
        assert float((got[key] - want[key]).abs().max()) <= tolerance * overall, key
