"""The base-to-novel protocol (CoOp/CoCoOp/MaPLe): train on base classes, test on base and novel.

    python tools/base2novel.py configs/maple/maple_tiny-vit_1xb4_synthetic-dark-b2n.py \
        --zero-shot configs/zeroshot/zeroshot_tiny-vit_synthetic-dark.py --seeds 1 2 3

For each config and seed: the few-shot sampling seed and the runner seed are the seed, the model
trains on the base classes (the first ceil(n/2) of the sorted labels), and the final model is tested
on the test split's base classes and, separately, its novel classes (each subset relabelled, so the
classifier only knows that subset's names, as in CoOp's protocol). The zero-shot config is tested
the same way without training and is the table's first row. Writes ``results.csv``, ``results.md``
and ``results.png`` (Base / Novel / HM bars, mean over seeds) to the work dir.
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
from clipadapt.evaluation import harmonic_mean

METRIC = "accuracy/top1"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Base-to-novel generalisation of prompt-learning configs")
    parser.add_argument("configs", nargs="+", help="method configs (trained on the base classes)")
    parser.add_argument("--zero-shot", help="a zero-shot config, tested without training (first row)")
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3])
    parser.add_argument("--work-dir", default="work_dirs/base2novel")
    parser.add_argument("--cfg-options", nargs="+", action=DictAction, help="overrides applied to every config")
    return parser.parse_args(argv)


def _configure(path: str, seed: int, work_dir: Path, options: dict[str, Any] | None) -> Config:
    cfg = Config.fromfile(path)
    if options:
        cfg.merge_from_dict(options)
    cfg.work_dir = str(work_dir)
    cfg.randomness = dict(seed=seed, deterministic=False)
    for loader in ("train_dataloader", "val_dataloader", "test_dataloader"):
        if cfg.get(loader) is not None:
            cfg[loader].dataset.subsample = "base"
    if cfg.get("train_dataloader") is not None:
        cfg.train_dataloader.dataset.seed = seed
    return prepare_run(cfg, path)


def _test(cfg: Config, subsample: str, checkpoint: str | None) -> float:
    from mmengine.runner import Runner

    cfg = cfg.copy()
    cfg.test_dataloader.dataset.subsample = subsample
    drop_training(cfg)
    cfg.load_from = checkpoint
    cfg.resume = False
    cfg.experiment_name = f"test_{subsample}"
    metrics = Runner.from_cfg(cfg).test()
    return 100.0 * float(metrics[METRIC]) if metrics[METRIC] <= 1.0 else float(metrics[METRIC])


def run_one(path: str, seed: int, root: Path, options: dict[str, Any] | None, train: bool) -> dict[str, float]:
    from mmengine.runner import Runner

    name = osp.splitext(osp.basename(path))[0]
    cfg = _configure(path, seed, root / name / f"seed{seed}", options)
    checkpoint = None
    if train:
        runner = Runner.from_cfg(cfg.copy())
        runner.train()
        checkpoint = osp.join(cfg.work_dir, f"epoch_{runner.max_epochs}.pth")
        if not osp.isfile(checkpoint):
            checkpoint = Path(cfg.work_dir, "last_checkpoint").read_text().strip()
    base, novel = _test(cfg, "base", checkpoint), _test(cfg, "novel", checkpoint)
    return {"base": base, "novel": novel, "hm": harmonic_mean(base, novel)}


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
    _plot(means, out / "results.png")
    print("\n".join(lines))
    return means


def _plot(means: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(1.8 + 1.4 * len(means), 3.2))
    width = 0.27
    for i, key in enumerate(("base", "novel", "hm")):
        xs = [j + (i - 1) * width for j in range(len(means))]
        ax.bar(xs, [m[key] for m in means], width, label={"hm": "HM"}.get(key, key.capitalize()))
    ax.set_xticks(range(len(means)), [m["method"] for m in means], rotation=15, ha="right", fontsize=8)
    ax.set_ylabel("top-1 accuracy (%)")
    ax.set_ylim(0, 100)
    ax.legend(fontsize=8, ncols=3, loc="upper center")
    ax.set_title("Base-to-novel generalisation", fontsize=10)
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
            result = run_one(path, seed, root, args.cfg_options, train)
            rows.append({"method": osp.splitext(osp.basename(path))[0], "seed": seed, **result})
            print(f"{rows[-1]['method']} seed {seed}: " + " ".join(f"{k} {v:.2f}" for k, v in result.items()))
    return summarise(rows, root)


if __name__ == "__main__":
    main()
