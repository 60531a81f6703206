"""Speed and memory ratios of ``tools/benchmark.py --json`` as a bar chart (higher is better for clipadapt).

    python tools/benchmark.py --json > bench_cpu.jsonl
    python tools/analysis/plot_benchmark.py bench_cpu.jsonl --out bench.png
    python tools/analysis/plot_benchmark.py bench_cpu.jsonl bench_cuda.jsonl --labels CPU CUDA

Each input file holds one JSON object per line with at least ``name``, ``clipadapt``, ``baseline``,
``unit`` and ``ratio`` (lines that are not JSON objects, such as warnings, are skipped). Every row is a
horizontal bar at ``ratio``, labelled with the ratio and the two raw values; ``ratio_paired`` (the median of
per-repeat ratios), when a row has it, is drawn as a diamond. ``--extra memory_ratio`` adds a bar per row
that has that key. The dashed line at 1 is parity with open_clip. Several files are grouped per row.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path

REQUIRED = ("name", "clipadapt", "baseline", "unit", "ratio")


def read_rows(path: Path) -> list[dict]:
    """The benchmark rows of one ``--json`` output file."""
    rows = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}:{number} is not a JSON object: {err}") from err
        missing = [k for k in REQUIRED if k not in row]
        if missing:
            raise ValueError(f"{path}:{number}: row {row.get('name', '?')!r} lacks {missing}")
        rows.append(row)
    if not rows:
        raise ValueError(f"{path} holds no benchmark rows (run tools/benchmark.py --json > {path.name})")
    return rows


def bars(rows: Sequence[dict], extra: Sequence[str] = ()) -> list[tuple[str, float, float | None, str]]:
    """``(label, ratio, paired ratio or None, annotation)`` per bar: every row, then its extra ratios."""
    out = []
    for row in rows:
        values = f"{row['clipadapt']:.4g} vs {row['baseline']:.4g} {row['unit']}"
        out.append((row["name"], float(row["ratio"]), row.get("ratio_paired"), values))
        for key in extra:
            if key in row:
                out.append((f"{row['name']} ({key})", float(row[key]), None, key))
    return out


def plot(paths: Sequence[Path], out: Path, labels: Sequence[str] | None = None, extra: Sequence[str] = (),
         title: str | None = None) -> Path:  # fmt: skip
    """Write the ratio chart of the benchmark files ``paths`` to ``out`` (PNG); returns ``out``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if labels is not None and len(labels) != len(paths):
        raise ValueError(f"{len(labels)} labels for {len(paths)} files")
    names = list(labels) if labels is not None else [p.stem for p in paths]
    series = [bars(read_rows(p), extra) for p in paths]
    order = list(dict.fromkeys(label for bars_ in series for label, *_ in bars_))
    height = 0.8 / len(series)
    xmax = max(max(r, p or 0.0) for bars_ in series for _, r, p, _ in bars_) * 1.6
    fig, ax = plt.subplots(figsize=(7.5, 1.0 + 0.45 * len(order) * len(series)))
    for i, (name, bars_) in enumerate(zip(names, series)):
        by_label = {label: rest for label, *rest in bars_}
        ys = [j + (i - (len(series) - 1) / 2) * height for j, label in enumerate(order) if label in by_label]
        present = [label for label in order if label in by_label]
        ratios = [by_label[label][0] for label in present]
        ax.barh(ys, ratios, height, label=name if len(series) > 1 else None)
        for y, ratio, label in zip(ys, ratios, present):  # right of the bar and of its paired-ratio diamond
            x = max(ratio, by_label[label][1] or 0.0) + 0.02 * xmax
            ax.text(x, y, f"{ratio:.2f}x  ({by_label[label][2]})", fontsize=6, va="center")
        paired = [(y, by_label[label][1]) for y, label in zip(ys, present) if by_label[label][1] is not None]
        if paired:
            ax.scatter([p for _, p in paired], [y for y, _ in paired], marker="D", s=12, color="black", zorder=3,
                       label="paired ratio" if i == 0 else None)  # fmt: skip
    ax.axvline(1.0, color="grey", linestyle="--", linewidth=1)
    ax.set_yticks(range(len(order)), order, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlim(0, xmax)
    ax.set_xlabel("clipadapt / open_clip (higher is better for clipadapt)", fontsize=8)
    first = read_rows(paths[0])[0]
    setting = ", ".join(str(first[k]) for k in ("model", "device", "dtype") if k in first)
    ax.set_title(title or f"tools/benchmark.py{': ' + setting if setting else ''}", fontsize=9)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("files", nargs="+", type=Path, help="outputs of tools/benchmark.py --json")
    parser.add_argument("--out", type=Path, help="PNG to write (default: <first file>.png)")
    parser.add_argument("--labels", nargs="+", help="one legend label per file (default: file names)")
    parser.add_argument("--extra", nargs="+", default=[], help="other ratio keys to draw, e.g. memory_ratio")
    parser.add_argument("--title", help="chart title")
    args = parser.parse_args(argv)
    out = args.out or args.files[0].with_suffix(".png")
    path = plot(args.files, out, args.labels, args.extra, args.title)
    print(path)
    return path


if __name__ == "__main__":
    main()
