"""Evaluate a clipadapt config, zero-shot or from a checkpoint of tools/train.py.

    python tools/test.py configs/zeroshot/zeroshot_tiny-vit_synthetic-dark.py            # zero-shot
    python tools/test.py configs/vpt/vpt_tiny-vit_1xb32_synthetic-dark-16shot.py work_dirs/.../epoch_10.pth

A checkpoint of an adapted model holds the adapter only; the model is built from the config (the
base weights of ``model.pretrained`` plus the plugins) and the adapter is loaded onto it. A warning
says so when the base weights differ from those the adapter was trained on.
"""

from __future__ import annotations

import argparse
import json
import os
import os.path as osp
import sys

from mmengine.config import Config

from clipadapt.engine import enable_safe_resume
from clipadapt.engine.cli import add_runner_args, apply_runner_args, drop_training, prepare_run
from clipadapt.engine.config_check import parse_args_checked
from clipadapt.engine.workdir import no_trace_of_failed_start


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Evaluate a clipadapt model")
    parser.add_argument("config", help="config file")
    parser.add_argument(
        "checkpoint", nargs="?", help="checkpoint of tools/train.py; none = the config's model as built"
    )
    parser.add_argument("--out", help="also write the metrics to this JSON file")
    add_runner_args(parser)
    return parse_args_checked(parser, argv)


def merge_args(cfg: Config, args: argparse.Namespace) -> Config:
    apply_runner_args(cfg, args, args.config)
    if args.checkpoint is not None and not osp.isfile(args.checkpoint):
        sys.exit(f"checkpoint not found: {args.checkpoint}")
    cfg.load_from = args.checkpoint
    cfg.resume = False
    drop_training(cfg)  # evaluation then builds none of the training pieces
    if cfg.get("test_dataloader") is None or cfg.get("test_evaluator") is None:
        sys.exit(f"config {args.config} has no test_dataloader / test_evaluator to evaluate with")
    return cfg


def main(argv: list[str] | None = None) -> dict[str, float]:
    args = parse_args(argv)
    enable_safe_resume()
    cfg = Config.fromfile(args.config)
    cfg = merge_args(cfg, args)
    prepare_run(cfg, args.config)

    from mmengine.runner import Runner

    with no_trace_of_failed_start(cfg.work_dir):  # a failed evaluation leaves no empty log folder
        runner = Runner.from_cfg(cfg)
        metrics = runner.test()
    if args.out:
        os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
        with open(args.out, "w") as handle:
            json.dump({k: float(v) for k, v in metrics.items()}, handle, indent=2)
    return metrics


if __name__ == "__main__":
    main()
