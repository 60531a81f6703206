"""Train a clipadapt config with MMEngine's runner.

    python tools/train.py configs/vpt/vpt_tiny-vit_1xb32_synthetic-dark-16shot.py
    python tools/train.py CONFIG --work-dir work_dirs/run1 --cfg-options train_cfg.max_epochs=2
    python tools/train.py CONFIG --resume                 # continue from the last checkpoint of work-dir
    bash tools/dist_train.sh CONFIG 2                    # DDP over 2 processes (torchrun)

Before the runner is built, the config is checked (a key that nothing reads is an error naming it)
and its symbolic paths are resolved: ``synthetic://`` generates the synthetic world when missing,
``cache://tiny-vit-synthetic`` pretrains the tiny base CLIP when missing.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys

from mmengine.config import Config

from clipadapt.engine import enable_safe_resume
from clipadapt.engine.cli import add_runner_args, apply_runner_args, prepare_run
from clipadapt.engine.config_check import parse_args_checked
from clipadapt.engine.workdir import (
    find_resume_checkpoint,
    no_trace_of_failed_start,
    remove_stale_temporaries,
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Train a clipadapt model")
    parser.add_argument("config", help="config file (Python, MMEngine style)")
    parser.add_argument(
        "--resume",
        nargs="?",
        type=str,
        const="auto",
        help="resume from a checkpoint; without a path, from the last checkpoint of the work dir",
    )
    parser.add_argument("--amp", action="store_true", help="mixed precision (fp16 + loss scaling on GPU, bf16 on CPU)")
    add_runner_args(parser)
    return parse_args_checked(parser, argv)


def merge_args(cfg: Config, args: argparse.Namespace) -> Config:
    """Fold the command line into the config (MMEngine's conventions)."""
    apply_runner_args(cfg, args, args.config)
    if args.amp:
        import torch

        wrapper = cfg.optim_wrapper.get("type", "OptimWrapper")
        if wrapper in ("AmpOptimWrapper", "AutocastOptimWrapper"):
            print(f"--amp: the config already uses {wrapper}", file=sys.stderr)
        elif torch.cuda.is_available():
            cfg.optim_wrapper.type = "AmpOptimWrapper"
            cfg.optim_wrapper.setdefault("loss_scale", "dynamic")
        else:  # MMEngine's AmpOptimWrapper needs CUDA; bf16 autocast needs no loss scaler
            cfg.optim_wrapper.type = "AutocastOptimWrapper"
            cfg.optim_wrapper.setdefault("dtype", "bfloat16")
    if args.resume == "auto":
        cfg.resume = True
        cfg.load_from = None
    elif args.resume is not None:
        cfg.resume = True
        cfg.load_from = args.resume
    return cfg


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    enable_safe_resume()  # torch.load(weights_only=True) can read MMEngine's checkpoints
    cfg = Config.fromfile(args.config)
    cfg = merge_args(cfg, args)
    prepare_run(cfg, args.config)  # keys and values checked: a bad one stops here, before anything is written

    from mmengine.runner import Runner

    rank0 = int(os.environ.get("RANK") or os.environ.get("SLURM_PROCID") or 0) == 0
    # One run per work dir (rank 0 holds its lock); a run that fails before training starts leaves nothing there.
    with no_trace_of_failed_start(cfg.work_dir, lock=rank0) as start:
        if rank0:
            remove_stale_temporaries(cfg.work_dir)  # what a kill left mid-write; no other run owns them now
        if args.resume == "auto":
            _find_resume(cfg)
        runner = Runner.from_cfg(cfg) if "runner_type" not in cfg else _build_custom_runner(cfg)
        runner.register_hook(start)
        try:
            runner.train()
        except BaseException:
            _close_process_group(wait_for_ranks=False)  # the other ranks may never reach a barrier
            raise
        del runner  # see _close_process_group: the model's DDP reducer holds the process group
        _close_process_group(wait_for_ranks=True)


def _find_resume(cfg: Config) -> None:
    """``--resume`` without a path: the pointer's checkpoint, or the newest complete one, saying why."""
    path, why = find_resume_checkpoint(cfg.work_dir)
    if why:
        print(f"--resume: {why}", file=sys.stderr)
    cfg.load_from = path
    cfg.resume = path is not None


def _close_process_group(wait_for_ranks: bool) -> None:
    """Tear down the process group before the interpreter exits.

    Left to interpreter shutdown, gloo's worker threads are destroyed while still joinable, which
    aborts a rank at exit ("terminate called without an active exception") after a successful run.
    Destroying the group is not enough on its own: the runner lives in reference cycles, and its DDP
    wrapper's reducer keeps the gloo backend alive until a garbage collection, which without the one
    here would come during interpreter shutdown (seen once in a run of the test suite).
    """
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        gc.collect()  # the runner's cycles, with the reducer and its hold on the backend, go now
        if wait_for_ranks:
            dist.barrier()
        dist.destroy_process_group()


def _build_custom_runner(cfg: Config):
    from mmengine.registry import RUNNERS

    return RUNNERS.build(cfg)


if __name__ == "__main__":
    main()
