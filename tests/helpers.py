"""Helpers shared by the test modules (not fixtures: plain functions)."""

from __future__ import annotations

import os
import random
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent

# The 4-class synthetic world of the end-to-end tool tests (red and blue circles and squares): seconds to make.
SMALL_WORLD = dict(
    colours=["red", "blue"],
    shapes=["circle", "square"],
    per_class_train=4,
    per_class_val=2,
    per_class_test=2,
    scenes_train=2,
    scenes_val=2,
    scenes_test=2,
    max_objects=2,
)


def free_port() -> int:
    """A TCP port for one distributed run's rendezvous, free when chosen and chosen afresh for every run.

    It lies below the kernel's ephemeral range (``ip_local_port_range``), so no connection of a concurrent
    test takes it as its own local port between this choice and torchrun's bind, and at random, so that
    concurrent tests seldom choose the same one; :func:`run_distributed` retries the rare collision.
    """
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    while True:
        port = random.randrange(20000, max(low, 20001))
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port


def run_distributed(cmd: list[str], env: dict, timeout: float = 600) -> str:
    """Run a distributed command on a fresh :func:`free_port` (``MASTER_PORT``, which ``tools/dist_train.sh``
    passes to torchrun; a bare ``torch.distributed.run`` picks its own); returns its log.

    A port taken between its choice and torchrun's bind fails the rendezvous with EADDRINUSE before any
    training: that run is retried on a new port (twice at most). Any other failure fails the test.
    """
    for _ in range(3):
        port = dict(MASTER_PORT=str(free_port()))
        done = subprocess.run(cmd, env=env | port, capture_output=True, text=True, timeout=timeout)
        log = done.stdout + done.stderr
        if done.returncode == 0 or "EADDRINUSE" not in log:
            break
    assert done.returncode == 0, log[-4000:]
    assert "Distributed training: True" in log
    return log


def train_single_and_ddp(
    tmp_path: Path, config_text: Callable[[int], str], data_root: Path, global_batch: int
) -> dict[str, tuple[Path, str]]:
    """Train one config on 1 process x ``global_batch`` and on 2 gloo ranks x ``global_batch / 2``.

    ``config_text(batch)`` is the config file for a per-process batch. Runs ``tools/train.py`` and
    ``tools/dist_train.sh`` in subprocesses (one thread each) and checks that each succeeded and that
    only the second was distributed. Returns ``{"single"|"ddp": (work_dir, log)}``.
    """
    env = dict(os.environ, CLIPADAPT_DATA=str(data_root), CLIPADAPT_CACHE=str(tmp_path / "cache"), OMP_NUM_THREADS="1")
    env |= dict(PYTHON=sys.executable)
    runs = {}
    for name, procs in (("single", 1), ("ddp", 2)):
        config = tmp_path / f"{name}.py"
        config.write_text(config_text(global_batch // procs))
        work_dir = tmp_path / name
        if procs == 1:
            cmd = [sys.executable, str(ROOT / "tools" / "train.py"), str(config), "--work-dir", str(work_dir)]
            done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
            log = done.stdout + done.stderr
            assert done.returncode == 0, log[-4000:]
            assert "Distributed training: True" not in log
        else:
            cmd = ["bash", str(ROOT / "tools" / "dist_train.sh"), str(config), str(procs), "--work-dir", str(work_dir)]
            log = run_distributed(cmd, env)
        runs[name] = (work_dir, log)
    return runs


def initial_state(config: Path) -> dict[str, torch.Tensor]:
    """The state dict of ``config``'s model as built from seed 0, before any step."""
    from mmengine.config import Config
    from mmengine.runner import set_random_seed

    from clipadapt.registry import MODELS

    set_random_seed(0)
    return {k: v.clone() for k, v in MODELS.build(Config.fromfile(str(config)).model).state_dict().items()}


def checkpoint_state(path: Path) -> dict[str, torch.Tensor]:
    """The ``state_dict`` of a runner checkpoint, loaded with ``weights_only=True``."""
    from clipadapt.engine import enable_safe_resume

    enable_safe_resume()
    return torch.load(path, map_location="cpu", weights_only=True)["state_dict"]


# Two classes, one image each per split: the least a VPT run needs to build, train one step and test.
TWO_CLASS_WORLD = dict(colours=["red", "blue"], shapes=["circle"], per_class_train=2, per_class_val=1, per_class_test=1)
TWO_CLASS_WORLD |= dict(scenes_train=1, scenes_val=1, scenes_test=1, min_objects=1, max_objects=1)


def two_class_vpt_config(root: Path, model_name: str | None = None) -> tuple[Path, Path]:
    """A one-epoch VPT config on :data:`TWO_CLASS_WORLD` (generated under ``root``), random base weights."""
    from clipadapt.datasets.synthetic import ensure_synthetic_world

    world = ensure_synthetic_world(root / "world", progress=False, workers=1, **TWO_CLASS_WORLD)
    vpt = ROOT / "configs" / "vpt" / "vpt_tiny-vit_1xb32_synthetic-dark-16shot.py"
    name = f"model_name={model_name!r}, " if model_name else ""
    config = root / "vpt_small.py"
    config.write_text(
        f"_base_ = [{str(vpt)!r}]\nsynthetic_world = {TWO_CLASS_WORLD!r}\n"
        f"model = dict({name}pretrained=None, plugins=[dict(type='VPT', num_tokens=2)])\n"
        "train_dataloader = dict(batch_size=2, dataset=dict(num_shots=2))\n"
        "val_dataloader = dict(batch_size=2)\ntest_dataloader = dict(batch_size=2)\n"
        "train_cfg = dict(max_epochs=1)\nvisualizer = dict(vis_backends=[dict(type='LocalVisBackend')])\n"
    )
    return config, world
