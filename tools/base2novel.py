"""The evaluation protocols of CoOp, CoCoOp and MaPLe, one command per table.

Base-to-novel (``--protocol base2novel``, the default)::

    python tools/base2novel.py configs/maple/maple_tiny-vit_1xb4_synthetic-warm-b2n.py \
        --zero-shot configs/zeroshot/zeroshot_tiny-vit_synthetic-warm.py --seeds 1 2 3

Transfer (``--protocol transfer``): cross-dataset transfer and domain generalisation. Each config
trains on all classes of its own data set (the source), then is tested, without further training,
on the source's test split and on each ``--target`` (a data set config, e.g.
``configs/_base_/datasets/coop/dtd.py`` for cross-dataset, or another visual domain of the same
classes for domain generalisation)::

    python tools/base2novel.py configs/maple/maple_tiny-vit_1xb4_synthetic-warm-xd.py --protocol transfer \
        --zero-shot configs/zeroshot/zeroshot_tiny-vit_synthetic-warm.py \
        --target configs/_base_/datasets/synthetic_fewshot_plain.py configs/_base_/datasets/synthetic_fewshot_dark.py

Base-to-novel:

For each config and seed: the few-shot sampling seed and the runner seed are the seed, the model
trains on the base classes (the first ceil(n/2) of the sorted labels), and the final model is tested
on the test split's base classes and, separately, its novel classes (each subset relabelled, so the
classifier only knows that subset's names, as in CoOp's protocol). The zero-shot config is tested
the same way without training and is the table's first row. Writes ``results.csv``, ``results.md``
and ``results.png`` (Base / Novel / HM bars, mean over seeds) to the work dir.

Transfer: one column per data set (source first) and the mean over the targets, mean over seeds;
the same three files.
"""

from __future__ import annotations

import argparse
import csv
import os.path as osp
import statistics
from pathlib import Path
from typing import Any

from mmengine.config import Config, DictAction

from clipadapt.engine import enable_safe_resume
from clipadapt.engine.cli import drop_training, prepare_run
from clipadapt.engine.run import train_in_process
from clipadapt.evaluation import harmonic_mean

METRIC = "accuracy/top1"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Base-to-novel generalisation of prompt-learning configs")
    parser.add_argument("configs", nargs="+", help="method configs (trained on the base classes)")
    parser.add_argument("--protocol", choices=("base2novel", "transfer"), default="base2novel")
    parser.add_argument("--zero-shot", help="a zero-shot config, tested without training (first row)")
    parser.add_argument("--target", nargs="+", default=[], help="transfer: data set configs to test on")
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3])
    parser.add_argument("--work-dir", default="work_dirs/base2novel")
    parser.add_argument("--cfg-options", nargs="+", action=DictAction, help="overrides applied to every config")
    args = parser.parse_args(argv)
    if args.protocol == "transfer" and not args.target:
        parser.error("--protocol transfer needs at least one --target data set config")
    if args.protocol == "base2novel" and args.target:
        parser.error("--target is for --protocol transfer")
    return args


def _name(path: str) -> str:
    return osp.splitext(osp.basename(path))[0]


def _configure(path: str, seed: int, work_dir: Path, options: dict[str, Any] | None, subsample: str) -> Config:
    cfg = Config.fromfile(path)
    if options:
        cfg.merge_from_dict(options)
    cfg.work_dir = str(work_dir)
    cfg.randomness = dict(seed=seed, deterministic=False)
    for loader in ("train_dataloader", "val_dataloader", "test_dataloader"):
        if cfg.get(loader) is not None:
            cfg[loader].dataset.subsample = subsample
    if cfg.get("train_dataloader") is not None:
        cfg.train_dataloader.dataset.seed = seed
    return prepare_run(cfg, path)


def _train(cfg: Config) -> str:
    """Train ``cfg``; the final checkpoint's path."""
    runner, _ = train_in_process(cfg.copy())
    checkpoint = osp.join(cfg.work_dir, f"epoch_{runner.max_epochs}.pth")
    if not osp.isfile(checkpoint):
        checkpoint = Path(cfg.work_dir, "last_checkpoint").read_text().strip()
    return checkpoint


def _test(cfg: Config, name: str, checkpoint: str | None) -> float:
    """Top-1 (%) of ``cfg``'s test split, from ``checkpoint`` (None: the config's own weights)."""
    from mmengine.runner import Runner

    cfg = cfg.copy()
    drop_training(cfg)
    cfg.load_from = checkpoint
    cfg.resume = False
    cfg.experiment_name = f"test_{name}"
    metrics = Runner.from_cfg(cfg).test()
    return 100.0 * float(metrics[METRIC]) if metrics[METRIC] <= 1.0 else float(metrics[METRIC])


def run_one(path: str, seed: int, root: Path, options: dict[str, Any] | None, train: bool) -> dict[str, float]:
    """Base-to-novel: train on the base classes, test base and novel (each relabelled)."""
    cfg = _configure(path, seed, root / _name(path) / f"seed{seed}", options, "base")
    checkpoint = _train(cfg) if train else None
    scores = {}
    for subsample in ("base", "novel"):
        sub = cfg.copy()
        sub.test_dataloader.dataset.subsample = subsample
        scores[subsample] = _test(sub, subsample, checkpoint)
    return {**scores, "hm": harmonic_mean(scores["base"], scores["novel"])}


def run_transfer(
    path: str, seed: int, root: Path, options: dict[str, Any] | None, train: bool, targets: list[str]
) -> dict[str, float]:
    """Transfer: train on all classes of the source, test on the source and on every target data set."""
    cfg = _configure(path, seed, root / _name(path) / f"seed{seed}", options, "all")
    checkpoint = _train(cfg) if train else None
    scores = {"source": _test(cfg, "source", checkpoint)}
    for target in targets:
        data = Config.fromfile(target)
        if data.get("test_dataloader") is None:
            raise SystemExit(f"target {target} has no test_dataloader: pass a data set config")
        sub = cfg.copy()
        sub.test_dataloader = data.test_dataloader
        sub.test_evaluator = data.get("test_evaluator", cfg.test_evaluator)
        if data.get("synthetic_world") is not None:
            sub.synthetic_world = data.synthetic_world
        scores[_name(target)] = _test(prepare_run(sub, target), _name(target), checkpoint)
    scores["targets_mean"] = statistics.fmean(scores[_name(t)] for t in targets)
    return scores


def summarise_transfer(rows: list[dict[str, Any]], out: Path) -> list[dict[str, Any]]:
    """Mean over seeds per method and data set; writes CSV, Markdown and a grouped bar chart."""
    columns = [k for k in rows[0] if k not in ("method", "seed")]
    methods = list(dict.fromkeys(r["method"] for r in rows))
    means = []
    for method in methods:
        runs = [r for r in rows if r["method"] == method]
        means.append(
            {"method": method, "seeds": len(runs), **{c: statistics.fmean(r[c] for r in runs) for c in columns}}
        )
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "results.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["method", "seed", *columns])
        writer.writeheader()
        writer.writerows(rows)
        writer.writerows({"method": m["method"], "seed": "mean", **{c: m[c] for c in columns}} for m in means)
    lines = ["| Method | " + " | ".join(columns) + " | seeds |", "|---" * (len(columns) + 2) + "|"]
    lines += [f"| {m['method']} | " + " | ".join(f"{m[c]:.2f}" for c in columns) + f" | {m['seeds']} |" for m in means]
    (out / "results.md").write_text("\n".join(lines) + "\n")
    _plot(means, columns, out / "results.png", "Transfer: source and target data sets")
    print("\n".join(lines))
    return means


def summarise(rows: list[dict[str, Any]], out: Path) -> list[dict[str, Any]]:
    """Mean over seeds per method; writes CSV (every run and the means), Markdown and a bar chart."""
    methods = list(dict.fromkeys(r["method"] for r in rows))
    means = []
    for method in methods:
        runs = [r for r in rows if r["method"] == method]
        mean = {k: statistics.fmean(r[k] for r in runs) for k in ("base", "novel")}
        means.append({"method": method, "seeds": len(runs), **mean, "hm": harmonic_mean(mean["base"], mean["novel"])})
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "results.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["method", "seed", "base", "novel", "hm"])
        writer.writeheader()
        writer.writerows(rows)
        writer.writerows(
            {"method": m["method"], "seed": "mean", **{k: m[k] for k in ("base", "novel", "hm")}} for m in means
        )
    lines = ["| Method | Base | Novel | HM | seeds |", "|---|---|---|---|---|"]
    lines += [f"| {m['method']} | {m['base']:.2f} | {m['novel']:.2f} | {m['hm']:.2f} | {m['seeds']} |" for m in means]
    (out / "results.md").write_text("\n".join(lines) + "\n")
    _plot(means, ["base", "novel", "hm"], out / "results.png", "Base-to-novel generalisation")
    print("\n".join(lines))
    return means


def _plot(means: list[dict[str, Any]], keys: list[str], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(1.8 + (0.45 * len(keys) + 0.2) * len(means), 3.2))
    width = 0.8 / len(keys)
    for i, key in enumerate(keys):
        xs = [j + (i - (len(keys) - 1) / 2) * width for j in range(len(means))]
        ax.bar(xs, [m[key] for m in means], width, label={"hm": "HM"}.get(key, key.capitalize()))
    ax.set_xticks(range(len(means)), [m["method"] for m in means], rotation=15, ha="right", fontsize=8)
    ax.set_ylabel("top-1 accuracy (%)")
    ax.set_ylim(0, 100)
    ax.legend(fontsize=8, ncols=3, loc="upper center")
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    args = parse_args(argv)
    enable_safe_resume()
    root = Path(args.work_dir)
    rows = []
    jobs = ([(args.zero_shot, False)] if args.zero_shot else []) + [(c, True) for c in args.configs]
    for path, train in jobs:
        for seed in args.seeds if train else args.seeds[:1]:
            if args.protocol == "transfer":
                result = run_transfer(path, seed, root, args.cfg_options, train, args.target)
            else:
                result = run_one(path, seed, root, args.cfg_options, train)
            rows.append({"method": _name(path), "seed": seed, **result})
            print(f"{rows[-1]['method']} seed {seed}: " + " ".join(f"{k} {v:.2f}" for k, v in result.items()))
    return summarise_transfer(rows, root) if args.protocol == "transfer" else summarise(rows, root)


if __name__ == "__main__":
    main()
