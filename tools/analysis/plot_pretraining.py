"""The tiny CLIP's accuracy against pretraining time, as a PNG (docs/synthetic-world.md).

    python tools/analysis/plot_pretraining.py docs/assets/data/tiny_clip_pretraining.csv \\
        --out docs/assets/plots/tiny_clip_pretraining.png

The CSV has one row per measurement: ``recipe``, ``step``, ``minutes`` (pretraining time in minutes of two
CPU cores) and the percentages of ``clipadapt.evaluation.world.evaluate_world`` (``top1``, ``colour``,
``shape``, ``i2t_r1``). One panel per metric, one line per recipe; the dashed line is issue 15's goal.
"""

from __future__ import annotations

import argparse
import csv
from collections.abc import Sequence
from pathlib import Path

METRICS = {"top1": 80.0, "shape": 85.0, "colour": 95.0, "i2t_r1": 60.0}  # the goal of each metric (%)
TITLES = {"top1": "top-1 (64 classes)", "shape": "shape", "colour": "colour", "i2t_r1": "scene I->T R@1"}


def read_rows(path: Path) -> dict[str, list[dict[str, float]]]:
    """Rows grouped by recipe, in file order, with every number as a float."""
    recipes: dict[str, list[dict[str, float]]] = {}
    with open(path, newline="") as handle:
        for row in csv.DictReader(handle):
            values = {k: float(v) for k, v in row.items() if k != "recipe" and v not in ("", None)}
            recipes.setdefault(row["recipe"], []).append(values)
    if not recipes:
        raise ValueError(f"{path} holds no measurements")
    return recipes


def plot(recipes: dict[str, list[dict[str, float]]], out: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(METRICS), figsize=(4 * len(METRICS), 3.4))
    for ax, (metric, goal) in zip(axes, METRICS.items(), strict=True):
        for name, rows in recipes.items():
            points = sorted((r["minutes"], r[metric]) for r in rows if metric in r)
            if points:
                ax.plot(*zip(*points), marker="o", label=name)
        ax.axhline(goal, linestyle="--", color="grey", linewidth=1)
        ax.set_title(f"{TITLES[metric]} (goal {goal:.0f} %)")
        ax.set_xlabel("pretraining minutes (2 CPU cores)")
        ax.set_ylim(0, 100)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("% on the plain test split")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(3, len(labels)), fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.06 * (1 + (len(labels) - 1) // 3), 1, 1))
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def main(argv: Sequence[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("csv", type=Path)
    parser.add_argument("--out", type=Path, default=Path("tiny_clip_pretraining.png"))
    args = parser.parse_args(argv)
    return plot(read_rows(args.csv), args.out)


if __name__ == "__main__":
    main()
