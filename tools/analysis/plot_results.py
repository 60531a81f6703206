"""Bar charts of ``tools/base2novel.py`` results: base / novel / HM (or the transfer columns), mean and seeds.

    python tools/analysis/plot_results.py work_dirs/base2novel/results.csv --out b2n.png
    python tools/analysis/plot_results.py work_dirs/b2n_maple/results.csv work_dirs/b2n_coop/results.csv

Reads the ``results.csv`` files that ``tools/base2novel.py`` writes (columns ``method``, ``seed`` and one
per score; one row per run and one ``seed=mean`` row per method). Each method gets one bar per score
column at its mean over seeds, an error bar of the seeds' standard deviation (with two or more seeds) and
a dot per seed. Several files are drawn as one chart, methods in order of appearance. The CSV's own
``mean`` rows are not trusted: the means are recomputed from the runs (for HM, the harmonic mean of
the mean base and novel accuracies, as the tool computes it).
"""

from __future__ import annotations

import argparse
import csv
import statistics
from collections.abc import Sequence
from pathlib import Path

LABELS = {"hm": "HM", "base": "Base", "novel": "Novel", "source": "Source", "targets_mean": "Targets (mean)"}


def read_results(paths: Sequence[Path]) -> tuple[list[str], dict[str, list[dict[str, float]]]]:
    """Score columns and the runs of every method (seed rows only), in order of appearance."""
    columns: list[str] | None = None
    runs: dict[str, list[dict[str, float]]] = {}
    for path in paths:
        with open(path, newline="") as handle:
            reader = csv.DictReader(handle)
            fields = [f for f in reader.fieldnames or [] if f not in ("method", "seed")]
            if not {"method", "seed"} <= set(reader.fieldnames or []) or not fields:
                raise ValueError(f"{path} is not a results.csv of tools/base2novel.py (columns {reader.fieldnames})")
            if columns is not None and fields != columns:
                raise ValueError(f"{path} has score columns {fields}, the files before it {columns}")
            columns = fields
            for row in reader:
                if row["seed"] == "mean":
                    continue
                try:
                    scores = {c: float(row[c]) for c in fields}
                except (TypeError, ValueError) as err:
                    raise ValueError(f"{path}: row {row} has a non-numeric score") from err
                runs.setdefault(row["method"], []).append(scores)
    if not runs or columns is None:
        raise ValueError(f"no runs in {[str(p) for p in paths]}")
    return columns, runs


def summarise(columns: Sequence[str], runs: Sequence[dict[str, float]]) -> dict[str, tuple[float, float]]:
    """Mean and standard deviation (0 for one run) of every column; HM from the mean base and novel."""
    out = {}
    for column in columns:
        values = [run[column] for run in runs]
        out[column] = (statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0)
    if "hm" in out and "base" in out and "novel" in out:
        base, novel = out["base"][0], out["novel"][0]
        out["hm"] = (2 * base * novel / (base + novel) if base + novel > 0 else 0.0, out["hm"][1])
    return out


def plot(paths: Sequence[Path], out: Path, title: str | None = None, ymax: float = 100.0) -> Path:
    """Write the grouped bar chart of the results in ``paths`` to ``out`` (PNG); returns ``out``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns, runs = read_results(paths)
    methods = list(runs)
    summary = {m: summarise(columns, runs[m]) for m in methods}
    width = 0.8 / len(columns)
    fig, ax = plt.subplots(figsize=(2.0 + (0.5 * len(columns) + 0.3) * len(methods), 3.4))
    for i, column in enumerate(columns):
        xs = [j + (i - (len(columns) - 1) / 2) * width for j in range(len(methods))]
        means = [summary[m][column][0] for m in methods]
        errors = [summary[m][column][1] for m in methods]
        spread = errors if any(errors) else None  # one seed per method: no error bars
        bars = ax.bar(xs, means, width, yerr=spread, capsize=2, label=LABELS.get(column, column))
        ax.bar_label(bars, fmt="%.1f", fontsize=6, padding=1)
        for x, method in zip(xs, methods):
            seeds = [run[column] for run in runs[method]]
            if len(seeds) > 1:
                ax.scatter([x] * len(seeds), seeds, s=6, color="black", zorder=3)
    counts = {len(runs[m]) for m in methods}
    seeds = (f"{n} seeds" if (n := counts.pop()) > 1 else "1 seed") if len(counts) == 1 else "per-method seeds"
    ax.set_xticks(range(len(methods)), methods, rotation=15, ha="right", fontsize=7)
    ax.set_ylabel("top-1 accuracy (%)")
    ax.set_ylim(0, ymax)
    ax.legend(fontsize=7, ncols=min(len(columns), 4), loc="upper center")
    default = "Base-to-novel generalisation" if set(columns) == {"base", "novel", "hm"} else "Transfer"
    ax.set_title(f"{title or default} ({seeds})", fontsize=9)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("results", nargs="+", type=Path, help="results.csv files of tools/base2novel.py")
    parser.add_argument("--out", type=Path, help="PNG to write (default: results_bars.png beside the first file)")
    parser.add_argument("--title", help="chart title")
    parser.add_argument("--ymax", type=float, default=100.0, help="top of the accuracy axis")
    args = parser.parse_args(argv)
    out = args.out or args.results[0].with_name("results_bars.png")
    path = plot(args.results, out, args.title, args.ymax)
    print(path)
    return path


if __name__ == "__main__":
    main()
