"""A short training run through ``tools/train.py --amp``, and a resumed run that must end where it ended.

The training section of ``tools/gpu_check.py``. Without ``tiny_clip`` it trains the tiny CLIP
contrastively from a random initialisation (``configs/clip/clip_tiny-vit_1xb64_synthetic.py``) on a
small synthetic world that it generates: no cached weights are needed, and a contrastive loss from
random weights falls within a few steps. With ``tiny_clip`` (a cached ``tiny-vit-synthetic.pt``) it
trains VPT prompts on that base instead (``configs/vpt/vpt_tiny-vit_1xb32_synthetic-dark-16shot.py``).

Run A trains ``epochs`` epochs, saving a checkpoint each epoch; run B resumes from A's checkpoint of
epoch 1 and trains to the same end. Both use ``randomness.deterministic=True``. docs/distributed.md
states what may still differ on CUDA: float rounding of SDPA's fused backward kernels and of atomics.
So the check passes when B's final weights equal A's within ``RESUME_TOLERANCE`` of the largest weight,
and reports whether they are bit-identical (they must be on CPU). If ``deterministic=True`` refuses an op
(one without a deterministic CUDA kernel), the refusal is recorded and both runs are repeated without it.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CONTRASTIVE = ROOT / "configs" / "clip" / "clip_tiny-vit_1xb64_synthetic.py"
VPT = ROOT / "configs" / "vpt" / "vpt_tiny-vit_1xb32_synthetic-dark-16shot.py"
# A few fp16 ulps (2^-11 each) of the largest weight: what rounding-level differences of a handful of
# steps can leave behind; a resume that lost optimizer, scheduler or data-order state is off by far more.
RESUME_TOLERANCE = 1e-3


def _world(small: bool, vpt: bool) -> dict[str, Any]:
    """A small synthetic world: few scenes, few object images per class and domain (VPT: its shots)."""
    shots = 1 if small else 8 if vpt else 2
    world: dict[str, Any] = dict(per_class_train=shots, per_class_val=1, per_class_test=1)
    world |= dict(scenes_train=24 if small else 512, scenes_val=8, scenes_test=8)
    if small:  # 4 classes: the object captions stay few
        world |= dict(colours=["red", "blue"], shapes=["circle", "square"])
    return world


def write_config(out: Path, epochs: int, small: bool, tiny_clip: str | None, deterministic: bool = True) -> Path:
    """The check's config: one level over the tiny config, its world, schedule and logging."""
    batch = 8 if small else 64
    world = _world(small, bool(tiny_clip))
    lines = [
        f"_base_ = [{str(VPT if tiny_clip else CONTRASTIVE)!r}]",
        f"synthetic_world = {world!r}",
        f"train_cfg = dict(by_epoch=True, max_epochs={epochs}, val_interval={epochs + 100})",
        "default_hooks = dict(logger=dict(interval=1), checkpoint=dict(interval=1, save_last=True, save_best=None))",
        f"randomness = dict(seed=0, deterministic={deterministic})",
        "log_processor = dict(window_size=1)",  # each logged loss is that iteration's, not a running mean
    ]
    if tiny_clip:
        lines += [
            f"model = dict(pretrained={tiny_clip!r})",
            f"train_dataloader = dict(batch_size={batch}, dataset=dict(num_shots={world['per_class_train']}))",
        ]
    else:
        lines += [
            f"train_dataloader = dict(batch_size={batch}, drop_last=True)",  # a contrastive loss depends on the batch
            "param_scheduler = [",
            "    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=2),",
            f"    dict(type='CosineAnnealingLR', by_epoch=True, begin=0, T_max={epochs}, eta_min_ratio=0.1,",
            "         convert_to_iter_based=True),",
            "]",
        ]
    path = out / "train_check_config.py"
    path.write_text("\n".join(lines) + "\n")
    return path


def _train(config: Path, work: Path, env: dict[str, str], timeout: float, resume: Path | None = None) -> None:
    cmd = [sys.executable, str(ROOT / "tools" / "train.py"), str(config), "--amp", "--work-dir", str(work)]
    if resume is not None:
        cmd += ["--resume", str(resume)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=max(timeout, 1.0), cwd=ROOT)
    if done.returncode != 0:
        raise RuntimeError(f"tools/train.py {work.name} failed ({done.returncode}):\n{done.stderr[-3000:]}")


def logged_losses(work: Path) -> dict[int, float]:
    """``step -> loss`` of every logged training iteration (MMEngine's ``vis_data/scalars.json``)."""
    losses: dict[int, float] = {}
    for path in sorted(work.glob("*/vis_data/scalars.json")):
        for line in path.read_text().splitlines():
            record = json.loads(line)
            if "loss" in record and "step" in record:
                losses[int(record["step"])] = float(record["loss"])
    return losses


def _weights(path: Path) -> dict[str, Any]:
    import torch

    from clipadapt.engine import enable_safe_resume

    enable_safe_resume()
    return torch.load(path, map_location="cpu", weights_only=True)["state_dict"]


def compare_weights(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """Largest difference of two state dicts, absolute and relative to the largest weight; bit identity."""
    if a.keys() != b.keys():
        return {"same_keys": False, "max_abs_diff": math.inf, "relative_diff": math.inf, "bit_identical": False}
    diff = max(((a[k].float() - b[k].float()).abs().max().item() for k in a if a[k].numel()), default=0.0)
    scale = max((a[k].float().abs().max().item() for k in a if a[k].numel()), default=1.0)
    identical = all(a[k].dtype == b[k].dtype and bool((a[k] == b[k]).all()) for k in a)
    return {
        "same_keys": True,
        "max_abs_diff": diff,
        "relative_diff": diff / max(scale, 1e-30),
        "bit_identical": identical,
    }


def train_check(out: Path, deadline: float, small: bool, tiny_clip: str | None = None) -> dict[str, Any]:
    """Runs A (``epochs`` epochs) and B (resumed from A's epoch 1): loss falls, B ends where A ended."""
    from clipadapt.datasets.synthetic import ensure_synthetic_world
    from clipadapt.engine import world_dir

    epochs = 2 if small else 3
    out.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, CLIPADAPT_DATA=str(out / "data"), CLIPADAPT_CACHE=str(out / "cache"))
    env["CUBLAS_WORKSPACE_CONFIG"] = ":4096:8"  # deterministic cuBLAS, which deterministic=True asks for
    config_name = str((VPT if tiny_clip else CONTRASTIVE).relative_to(ROOT))
    result: dict[str, Any] = {"config": config_name, "epochs": epochs, "amp": True}
    result["base"] = tiny_clip or "random initialisation"
    start = time.perf_counter()
    os.environ["CLIPADAPT_DATA"] = env["CLIPADAPT_DATA"]
    world = _world(small, bool(tiny_clip))
    ensure_synthetic_world(world_dir(world), progress=False, **world)
    result["world_s"] = time.perf_counter() - start
    for deterministic in (True, False):
        config = write_config(out, epochs, small, tiny_clip, deterministic)
        try:
            _train(config, out / "run_a", env, deadline - time.time())
            result["run_a_s"] = time.perf_counter() - start - result["world_s"]
            _train(config, out / "run_b", env, deadline - time.time(), resume=out / "run_a" / "epoch_1.pth")
            break
        except RuntimeError as err:  # an op without a deterministic CUDA kernel: record it, compare without
            if not deterministic or "deterministic implementation" not in str(err):
                raise
            result["deterministic_error"] = str(err)[-1500:]
            for run in ("run_a", "run_b"):
                shutil.rmtree(out / run, ignore_errors=True)
    result["deterministic"] = deterministic
    losses_a, losses_b = logged_losses(out / "run_a"), logged_losses(out / "run_b")
    steps = sorted(losses_a)
    window = max(1, len(steps) // 3)
    first = sum(losses_a[s] for s in steps[:window]) / window
    last = sum(losses_a[s] for s in steps[-window:]) / window
    resumed = sorted(set(losses_a) & set(losses_b))
    weights = compare_weights(
        _weights(out / "run_a" / f"epoch_{epochs}.pth"), _weights(out / "run_b" / f"epoch_{epochs}.pth")
    )
    result |= {
        "iterations": len(steps),
        "losses": [losses_a[s] for s in steps],
        "loss_first": first,
        "loss_last": last,
        "loss_falls": bool(last < first),
        "resumed_steps": len(resumed),
        "resumed_loss_max_abs_diff": max((abs(losses_a[s] - losses_b[s]) for s in resumed), default=math.nan),
        "resume": weights,
        "resume_tolerance": RESUME_TOLERANCE,
        "resume_equal": bool(weights["same_keys"] and weights["relative_diff"] <= RESUME_TOLERANCE and resumed),
        "seconds": time.perf_counter() - start,
    }
    return result
