"""What the runner tools share: command-line options, merging them into a config, test-only configs."""

from __future__ import annotations

import argparse
import itertools
import os
import os.path as osp
import sys

from mmengine.config import Config, DictAction

__all__ = ["add_runner_args", "apply_runner_args", "drop_training", "prepare_run"]

_RUNS_IN_PROCESS = itertools.count(1)

TRAINING_KEYS = (
    "train_dataloader",
    "train_cfg",
    "optim_wrapper",
    "param_scheduler",
    "val_dataloader",
    "val_cfg",
    "val_evaluator",
)


def add_runner_args(parser: argparse.ArgumentParser) -> None:
    """``--work-dir``, ``--cfg-options``, ``--launcher`` and ``--local-rank``, as MMEngine's tools have them."""
    parser.add_argument("--work-dir", help="where logs, TensorBoard events and checkpoints go")
    parser.add_argument(
        "--cfg-options",
        nargs="+",
        action=DictAction,
        help="override config entries, key=value pairs (e.g. train_cfg.max_epochs=2 model.pretrained=None)",
    )
    parser.add_argument("--launcher", choices=["none", "pytorch", "slurm", "mpi"], default="none")
    parser.add_argument("--local_rank", "--local-rank", type=int, default=0)


def apply_runner_args(cfg: Config, args: argparse.Namespace, config_path: str) -> Config:
    """Fold the shared options into ``cfg``; the work dir defaults to ``work_dirs/<config name>``."""
    os.environ.setdefault("LOCAL_RANK", str(args.local_rank))
    cfg.launcher = args.launcher
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get("work_dir") is None:
        cfg.work_dir = osp.join("./work_dirs", osp.splitext(osp.basename(config_path))[0])
    return cfg


def drop_training(cfg: Config) -> Config:
    """Remove what only training needs; evaluation then builds none of it."""
    for key in TRAINING_KEYS:
        cfg.pop(key, None)
    return cfg


def prepare_run(cfg: Config, config_path: str) -> Config:
    """Check keys and resolve symbolic paths (exit naming the config on a bad key); set up CPU DDP;
    atomic checkpoints and RNG states that resume (:func:`clipadapt.engine.use_reliable_checkpoints`)."""
    from .config_check import ConfigKeyError
    from .distributed import use_cpu_ddp
    from .prepare import prepare_config
    from .reliability import use_reliable_checkpoints
    from .requirements import MissingPackagesError, check_installed

    try:
        check_installed(cfg, config_path)  # a detection config without MMDetection: one line naming `make mmdet`
        prepare_config(cfg)
    except ConfigKeyError as err:
        sys.exit(f"error in config {config_path}: {err}")
    except MissingPackagesError as err:
        sys.exit(str(err))
    use_cpu_ddp(cfg)  # DDP on a machine without GPUs: gloo, and a wrapper that accepts CPU modules
    use_reliable_checkpoints(cfg)  # a kill never leaves a broken latest checkpoint; resumes are bit-identical
    run = next(_RUNS_IN_PROCESS)
    if run > 1 and cfg.get("experiment_name") is None:
        # MMEngine keys its logger and visualizer singletons by "<config>_<timestamp>", to the second. A second
        # run started in this process within that second (tools called in process, as the tests do) would be
        # handed the first run's visualizer, which writes into the first run's folder. Every rank counts alike.
        cfg.experiment_name = f"{osp.splitext(osp.basename(config_path))[0]}_run{run}"
    return cfg
