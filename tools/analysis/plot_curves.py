"""Training curves of one or more work dirs as a PNG: losses and learning rate per iteration, metrics per epoch.

    python tools/analysis/plot_curves.py work_dirs/vpt --out work_dirs/vpt/curves.png
    python tools/analysis/plot_curves.py work_dirs/vpt work_dirs/lora --labels VPT LoRA --out compare.png
    python tools/analysis/plot_curves.py work_dirs/vpt --keys loss accuracy/top1

Reads MMEngine's ``<work dir>/<timestamp>/vis_data/scalars.json`` (one JSON object per logged step,
written by ``LocalVisBackend``). Training records carry ``iter``; validation and test records carry
the metrics with ``step`` = the epoch (or the iteration for iteration-based loops). By default the
latest run of a work dir is read; ``--all-runs`` merges every run in timestamp order, a later run
replacing the steps it repeats (a resumed run continues its predecessor).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path

# Keys that describe timing, not training: never plotted.
TIMING = {"time", "data_time", "memory", "eta", "epoch", "iter", "step"}


def scalar_files(work_dir: Path, all_runs: bool = False) -> list[Path]:
    """The ``scalars.json`` files of ``work_dir``, oldest run first (timestamps sort as strings)."""
    files = sorted(work_dir.glob("*/vis_data/scalars.json"))
    if not files:
        raise FileNotFoundError(f"no */vis_data/scalars.json under {work_dir}: is it a work dir of tools/train.py?")
    return files if all_runs else files[-1:]


def read_scalars(files: Sequence[Path]) -> tuple[dict[int, dict[str, float]], dict[int, dict[str, float]]]:
    """Training records by iteration and evaluation records by step; later files replace repeated steps."""
    train: dict[int, dict[str, float]] = {}
    evaluation: dict[int, dict[str, float]] = {}
    for path in files:
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                raise ValueError(f"{path}:{number} is not a JSON object: {err}") from err
            values = {k: float(v) for k, v in record.items() if k not in TIMING and isinstance(v, (int, float))}
            if "iter" in record:
                train.setdefault(int(record["iter"]), {}).update(values)
            else:
                evaluation.setdefault(int(record.get("step", 0)), {}).update(values)
    return train, evaluation


def _series(records: dict[int, dict[str, float]], key: str) -> tuple[list[int], list[float]]:
    steps = sorted(s for s, values in records.items() if key in values)
    return steps, [records[s][key] for s in steps]


def panels(runs: Sequence[tuple[dict, dict]], keys: Sequence[str] | None = None) -> list[tuple[str, str, list[str]]]:
    """``(title, x label, keys)`` per panel: losses, learning rates, then evaluation metrics."""
    train_keys = sorted({k for train, _ in runs for values in train.values() for k in values})
    eval_keys = sorted({k for _, evaluation in runs for values in evaluation.values() for k in values})
    if keys:
        unknown = [k for k in keys if k not in train_keys and k not in eval_keys]
        if unknown:
            raise KeyError(f"keys {unknown} are not in the scalars; logged: {train_keys + eval_keys}")
        train_keys = [k for k in train_keys if k in keys]
        eval_keys = [k for k in eval_keys if k in keys]
    losses = [k for k in train_keys if "loss" in k]
    rates = [k for k in train_keys if k == "lr" or k.endswith("_lr")]
    other = [k for k in train_keys if k not in losses and k not in rates]
    out = [("training loss", "iteration", losses), ("learning rate", "iteration", rates)]
    out += [("training", "iteration", other), ("evaluation", "epoch (or iteration)", eval_keys)]
    return [panel for panel in out if panel[2]]


def plot(work_dirs: Sequence[Path], out: Path, labels: Sequence[str] | None = None, keys: Sequence[str] | None = None,
         all_runs: bool = False, title: str | None = None) -> Path:  # fmt: skip
    """Write the curves of ``work_dirs`` to ``out`` (PNG); returns ``out``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if labels is not None and len(labels) != len(work_dirs):
        raise ValueError(f"{len(labels)} labels for {len(work_dirs)} work dirs")
    names = list(labels) if labels is not None else [Path(d).name for d in work_dirs]
    runs = [read_scalars(scalar_files(Path(d), all_runs)) for d in work_dirs]
    layout = panels(runs, keys)
    if not layout:
        raise ValueError(f"nothing to plot in {[str(d) for d in work_dirs]}")
    fig, axes = plt.subplots(1, len(layout), figsize=(4.2 * len(layout), 3.2), squeeze=False)
    for ax, (panel_title, xlabel, panel_keys) in zip(axes[0], layout):
        for name, (train, evaluation) in zip(names, runs):
            records = evaluation if panel_title == "evaluation" else train
            for key in panel_keys:
                steps, values = _series(records, key)
                if steps:
                    label = key if len(runs) == 1 else f"{name}: {key}"
                    ax.plot(steps, values, marker="o" if len(steps) < 20 else None, markersize=3, label=label)
        ax.set_title(panel_title, fontsize=10)
        ax.set_xlabel(xlabel, fontsize=8)
        ax.tick_params(labelsize=8)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    if title or len(runs) == 1:
        fig.suptitle(title or names[0], fontsize=10)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("work_dirs", nargs="+", type=Path, help="work dirs of tools/train.py")
    parser.add_argument("--out", type=Path, help="PNG to write (default: <first work dir>/curves.png)")
    parser.add_argument("--labels", nargs="+", help="one legend label per work dir (default: folder names)")
    parser.add_argument("--keys", nargs="+", help="only these scalars (e.g. loss accuracy/top1)")
    parser.add_argument("--all-runs", action="store_true", help="merge every run of a work dir (resumed runs)")
    parser.add_argument("--title", help="figure title")
    args = parser.parse_args(argv)
    out = args.out or args.work_dirs[0] / "curves.png"
    path = plot(args.work_dirs, out, args.labels, args.keys, args.all_runs, args.title)
    print(path)
    return path


if __name__ == "__main__":
    main()
