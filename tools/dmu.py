"""CLIP-MoE's Diversified Multiplet Upcycling, as one resumable command (the recipe: ``plugins/moe/recipe.py``).

    python tools/dmu.py configs/moe/clipmoe_tiny-vit_4x2_1xb32_synthetic.py
    python tools/dmu.py CONFIG --compare        # + plain upcycling and dense MLP fine-tuning, same budget
    python tools/dmu.py CONFIG --compare --seeds 0 1 2   # each seed in <work-dir>/seed<N>; mean +- std
    python tools/dmu.py CONFIG --compare --eval-split val # tune on the val split (training is shared)

The steps, their journal (``<work-dir>/dmu_state.json``: a killed run restarts at the first unfinished
step) and the comparison are the recipe's: ``plugins/moe/recipe.py``. Whether the experts specialise
(routing entropy, expert usage per cluster, distances between experts) goes to
``<work-dir>/specialisation.{md,json}``; ``tools/analysis/plot_moe_experts.py`` draws the usage.
"""

from __future__ import annotations

import argparse
import copy
import os.path as osp
import sys
from pathlib import Path
from typing import Any

from mmengine.config import Config, DictAction

from clipadapt.engine import enable_safe_resume
from clipadapt.engine.cli import prepare_run
from clipadapt_plugins.moe.recipe import SPLITS, DMUPipeline
from clipadapt_plugins.moe.schedules import SCHEDULE_KEYS, stretch_schedulers
from clipadapt_plugins.moe.tables import aggregate, write_seed_table, write_specialisation, write_table

__all__ = [
    "DMUPipeline",
    "aggregate",
    "main",
    "parse_args",
    "stretch_schedulers",
    "write_seed_table",
    "write_specialisation",
    "write_table",
]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="CLIP-MoE: Diversified Multiplet Upcycling, resumable")
    parser.add_argument("config", help="a DMU config (configs/moe/)")
    parser.add_argument("--work-dir", help="default: work_dirs/<config name>")
    parser.add_argument("--compare", action="store_true", help="also train plain upcycling and dense MLP FT")
    parser.add_argument(
        "--eval-split", choices=SPLITS, default="test", help="split of the evaluation steps (tune on val, report test)"
    )
    parser.add_argument(
        "--seeds", type=int, nargs="+", help="run each seed in <work-dir>/seed<N> (randomness.seed = dmu.seed = N)"
    )
    parser.add_argument("--cfg-options", nargs="+", action=DictAction, help="override config entries, key=value")
    args = parser.parse_args(argv)
    if args.seeds is not None and len(set(args.seeds)) != len(args.seeds):
        parser.error(f"--seeds {args.seeds} repeats a seed")
    return args


def _check_mlp_stage(cfg: Config, dmu: dict[str, Any], config_path: str) -> None:
    """The MLP stages' schedule gets the same key check as the top-level one (a typo names its key)."""
    from clipadapt.engine.config_check import ConfigKeyError, check_config

    missing = [k for k in SCHEDULE_KEYS if k not in dmu["mlp_stage"]]
    if missing:
        sys.exit(f"error in config {config_path}: dmu.mlp_stage lacks {missing}")
    stage = Config({k: copy.deepcopy(dmu["mlp_stage"][k]) for k in SCHEDULE_KEYS})
    try:
        check_config(stage)
    except ConfigKeyError as err:
        sys.exit(f"error in config {config_path}: dmu.mlp_stage: {err}")


def _pipeline(args: argparse.Namespace, work_dir: Path, seed: int | None) -> DMUPipeline:
    """The prepared pipeline of ``args.config`` in ``work_dir``; ``seed`` overrides both seeds."""
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    if "dmu" not in cfg or "mlp_stage" not in cfg.dmu:
        sys.exit(f"config {args.config} has no dmu=dict(mlp_stage=dict(...), ...): it is not a DMU config")
    if seed is not None:
        cfg.merge_from_dict({"randomness.seed": seed, "dmu.seed": seed})
    dmu = cfg.pop("dmu").to_dict()
    cfg.work_dir = str(work_dir)
    cfg.launcher = "none"
    _check_mlp_stage(cfg, dmu, args.config)
    prepare_run(cfg, args.config)
    work_dir.mkdir(parents=True, exist_ok=True)
    return DMUPipeline(cfg, dmu, work_dir, eval_split=args.eval_split)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the pipeline (once, or once per ``--seeds``); the state records (``{seed: records}`` with seeds)."""
    args = parse_args(argv)
    enable_safe_resume()
    work_dir = Path(args.work_dir or osp.join("./work_dirs", osp.splitext(osp.basename(args.config))[0]))
    if args.seeds is None:
        pipeline = _pipeline(args, work_dir, None)
        done = pipeline.run(compare=args.compare)
        write_specialisation({0: pipeline.specialisation()}, work_dir)
        return done
    done, tables, experts = {}, {}, {}
    for seed in args.seeds:
        pipeline = _pipeline(args, work_dir / f"seed{seed}", seed)
        done[seed] = pipeline.run(compare=args.compare)
        tables[seed], experts[seed] = pipeline.table(), pipeline.specialisation()
    if args.compare:
        write_seed_table(aggregate(tables), work_dir, args.eval_split)
    write_specialisation(experts, work_dir)
    return done


if __name__ == "__main__":
    main()
