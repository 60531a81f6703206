"""The model zoo: each experiment on the synthetic world as one Markdown table and one PNG bar chart.

    python tools/model_zoo.py                                # tables + plots from work_dirs/zoo (or the record)
    python tools/model_zoo.py --run                          # run every experiment (about 30 min on 2 CPU cores)
    python tools/model_zoo.py --run --quick --only prompt    # a 4-class world, one short epoch: seconds
    python tools/model_zoo.py --record                       # after a full run: refresh the recorded data

The experiments are data: one entry each in a ``configs/<method>/metafile.yml`` (as mmpretrain keeps its
model zoo), beside the configs it runs. An entry names its configs, the commands that ``--run`` runs
(``Run``: the tool, its arguments, the ``--cfg-options`` of ``--quick``), how its rows are read from what the
commands wrote (``Rows``), and its table's columns (``Columns``: record key, header, the metric and file it
comes from, whether it is drawn). Placeholders in the arguments: ``{config:<name>}`` a config of ``Configs``,
``{out}`` the experiment's work dir, ``{checkpoint:<dir>}`` the last checkpoint of the training run in
``{out}/<dir>`` (read when its turn comes), ``{seeds}`` the entry's ``Seeds`` (``QuickSeeds`` with
``--quick``), ``{seed}`` one of them in a step marked ``per_seed`` (it runs once per seed; a row tag with
``{seed}`` is then read once per seed, as mean ± sample std); in ``Quick``, ``{small_batches}`` small batch
sizes. Row readers: ``metrics`` (the JSON of
``tools/test.py --out``, one row per tag), ``base2novel`` (``results.csv`` of ``tools/base2novel.py``),
``dmu_compare`` (``compare.csv`` of ``tools/dmu.py``). Adding an experiment is adding one entry.

Where an experiment's outputs are not under ``--work-dir``, its numbers come from the recorded data
(``docs/assets/data/zoo_b2n_warm.csv`` and ``docs/assets/data/model_zoo.json``), so the docs' plots can be
redrawn without the hours of runs; every table says which source it used. ``--record`` writes what was
collected from the work dirs back to the recorded files. ``--quick`` appends ``--cfg-options`` that shrink
every run (a 4-class world, one epoch or two iterations): its numbers mean nothing, it checks the pipeline.
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import statistics
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import yaml

from clipadapt.engine.paths import load_tool

ROOT = Path(__file__).resolve().parents[1]
RECORDED_CSV = ROOT / "docs" / "assets" / "data" / "zoo_b2n_warm.csv"
RECORDED_JSON = ROOT / "docs" / "assets" / "data" / "model_zoo.json"
PLOTS = ROOT / "docs" / "assets" / "plots"

# --quick: a 4-class world (8 scenes for the caption and region runs, k-means needs a few) and tiny runs.
QUICK_WORLD = dict(colours="[red,blue]", shapes="[circle,square]", per_class_train=4, per_class_val=2,
                   per_class_test=2, scenes_train=8, scenes_val=4, scenes_test=4, max_objects=2)  # fmt: skip
_WORLD_OPTIONS = [f"synthetic_world.{k}={v}" for k, v in QUICK_WORLD.items()]
_SMALL_BATCHES = ["train_dataloader.batch_size=4", "val_dataloader.batch_size=8", "test_dataloader.batch_size=8"]


def load_metafiles(root: Path = ROOT) -> dict[str, dict[str, Any]]:
    """Every experiment of ``configs/*/metafile.yml``, by name, in the order of their ``Order``."""
    found: dict[str, dict[str, Any]] = {}
    for path in sorted((root / "configs").glob("*/metafile.yml")):
        for entry in yaml.safe_load(path.read_text()).get("Experiments") or []:
            if entry["Name"] in found:
                raise ValueError(f"{path}: experiment {entry['Name']!r} is also in {found[entry['Name']]['metafile']}")
            found[entry["Name"]] = {**entry, "metafile": str(path.relative_to(root))}
    return dict(sorted(found.items(), key=lambda item: item[1]["Order"]))


META = load_metafiles()
EXPERIMENTS = tuple(META)


# ---------------------------------------------------------------------------------------------- running
def _last_checkpoint(work_dir: Path) -> str:
    """The checkpoint tools/train.py saved last (its ``last_checkpoint`` file names it)."""
    pointer = work_dir / "last_checkpoint"
    if not pointer.is_file():
        raise FileNotFoundError(f"{pointer} is missing: the training run of {work_dir} saved no checkpoint")
    return pointer.read_text().strip()


def _quick_options(meta: dict[str, Any], key: str) -> list[str]:
    options = list(_WORLD_OPTIONS)
    for option in meta["Quick"][key]:
        options += _SMALL_BATCHES if option == "{small_batches}" else [option]
    return options


def _argument(arg: str, meta: dict[str, Any], out: Path, quick: bool, seed: str | None = None) -> list[str]:
    """One argument of a ``Run`` step with its placeholder filled (``{seeds}`` gives several; ``{seed}`` is
    the seed of a ``per_seed`` step)."""
    if seed is not None:
        arg = arg.replace("{seed}", seed)
    if arg == "{seeds}":
        return [str(s) for s in meta["QuickSeeds" if quick else "Seeds"]]
    if arg.startswith("{config:"):
        return [meta["Configs"][arg[len("{config:") : -1]]]
    if arg.startswith("{checkpoint:"):
        return [_last_checkpoint(out / arg[len("{checkpoint:") : -1])]
    return [arg.replace("{out}", str(out))]


def plan(name: str, out: Path, quick: bool) -> list[Callable[[], list[str]]]:
    """The commands of experiment ``name`` writing under ``out``; each is built when its turn comes
    (the test after a training run needs that run's checkpoint path)."""
    if name not in META:
        raise KeyError(f"unknown experiment {name!r}; choose from {EXPERIMENTS}")
    meta = META[name]

    def command(step: dict[str, Any], seed: str | None) -> list[str]:
        args = [a for arg in step["args"] for a in _argument(arg, meta, out, quick, seed)]
        options = (_quick_options(meta, step["quick"]) if quick and "quick" in step else []) + step.get("options", [])
        options = [o.replace("{seed}", seed) if seed is not None else o for o in options]
        return [sys.executable, f"tools/{step['tool']}", *args] + (["--cfg-options", *options] if options else [])

    seeds = [str(s) for s in meta.get("QuickSeeds" if quick else "Seeds") or []]
    return [
        lambda step=step, seed=seed: command(step, seed)
        for step in meta["Run"]
        for seed in (seeds if step.get("per_seed") else [None])
    ]


def run(name: str, out: Path, quick: bool) -> None:
    """Run experiment ``name`` into ``out`` (emptied first, so nothing stale is collected)."""
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    for build in plan(name, out, quick):
        command = build()
        print("$", " ".join(command[1:]), flush=True)
        done = subprocess.run(command, cwd=ROOT)
        if done.returncode != 0:
            raise SystemExit(f"{name}: {' '.join(command[1:])} failed with exit code {done.returncode}")


# ---------------------------------------------------------------------------------------------- collecting
def _metrics(path: Path) -> dict[str, float]:
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: rerun `python tools/model_zoo.py --run`")
    return json.loads(path.read_text())


def _pick(metrics: dict[str, float], key: str, path: Path) -> float:
    if key not in metrics:
        raise KeyError(f"{path} has no metric {key!r} (it has {sorted(metrics)})")
    return round(float(metrics[key]), 2)


def prompt_rows(results_csv: Path, meta: dict[str, Any]) -> list[dict[str, Any]]:
    """Mean base / novel / HM per method over its seeds (HM of the means, as tools/base2novel.py computes it)."""
    plot_results = load_tool("analysis/plot_results")
    columns, runs = plot_results.read_results([results_csv])
    keys = [c["key"] for c in meta["Columns"] if c["key"] != "seeds"]
    rows = []
    for method, seeds in runs.items():
        summary = plot_results.summarise(columns, seeds)
        prefix = method.split("_", 1)[0]
        row = {"method": meta["Rows"]["names"].get(prefix, method), "seeds": len(seeds)}
        rows.append(row | {key: round(summary[key][0], 2) for key in keys})
    return rows


def _run_seeds(meta: dict[str, Any], out: Path) -> list[str]:
    """The seeds whose files ``out`` holds: ``Seeds``; ``QuickSeeds`` for a ``--quick`` run (no file of any
    other seed); else ``Seeds``, so that a run that stopped part-way is incomplete and the error names what is
    missing, instead of a table of fewer seeds."""
    seeds = [str(s) for s in meta.get("Seeds") or []]
    quick = [str(s) for s in meta.get("QuickSeeds") or []]
    others = set(_outputs(meta, [s for s in seeds if s not in quick])) - set(_outputs(meta, quick))
    if quick and not any((out / f).is_file() for f in others) and _complete(meta, out, quick):
        return quick
    return seeds


def _complete(meta: dict[str, Any], out: Path, seeds: Sequence[str]) -> bool:
    return all((out / f).is_file() for f in _outputs(meta, seeds))


def metric_rows(out: Path, meta: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per ``Rows.rows`` entry: each column's metric from its file (``{tag}`` filled in), scaled.

    A tag with ``{seed}`` is read once per seed: the row holds the mean, and ``<key>_std`` the sample
    standard deviation (ddof=1), and ``seeds`` their number."""
    scale = float(meta["Rows"].get("scale", 1))
    run_seeds = _run_seeds(meta, out)
    rows = []
    for spec in meta["Rows"]["rows"]:
        seeds = run_seeds if "{seed}" in spec["tag"] else [None]
        row: dict[str, Any] = {"method": spec["method"]}
        for column in meta["Columns"]:
            values = []
            for seed in seeds:
                tag = spec["tag"] if seed is None else spec["tag"].replace("{seed}", seed)
                path = out / column["file"].format(tag=tag)
                metrics = _metrics(path)
                if scale != 1:  # e.g. OVCocoMetric reports fractions
                    metrics = {k: v * scale for k, v in metrics.items()}
                values.append(_pick(metrics, column["metric"], path))
            row[column["key"]] = round(statistics.fmean(values), 2)
            if len(values) > 1:
                row[f"{column['key']}_std"] = round(statistics.stdev(values), 2)
        if len(seeds) > 1:
            row["seeds"] = len(seeds)
        rows.append(row)
    return rows


def moe_rows(out: Path) -> list[dict[str, Any]]:
    """The rows of tools/dmu.py's compare.csv (parameter counts in millions; with --seeds, the means)."""
    path = out / "compare.csv"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: rerun `python tools/model_zoo.py --run`")
    with open(path, newline="") as handle:
        table = list(csv.DictReader(handle))
    rows = []
    for r in table:
        row = {
            "method": r["method"],
            "steps": int(r["steps"]),
            "i2t": round(float(r.get("i2t_R@1_mean", r.get("i2t_R@1"))), 2),  # --seeds: the mean
            "t2i": round(float(r.get("t2i_R@1_mean", r.get("t2i_R@1"))), 2),
            "activated_M": round(int(r["activated"]) / 1e6, 2),
            "total_M": round(int(r["total"]) / 1e6, 2),
        }
        if "i2t_R@1_std" in r:  # --seeds: the sample std too
            row |= {"i2t_std": round(float(r["i2t_R@1_std"]), 2), "t2i_std": round(float(r["t2i_R@1_std"]), 2)}
        rows.append(row)
    return rows


def _outputs(meta: dict[str, Any], seeds: Sequence[str]) -> list[str]:
    """The files a complete run of the experiment with ``seeds`` leaves in its work dir."""
    rows = meta["Rows"]
    if rows["reader"] != "metrics":
        return [rows["file"]]
    tags = {r["tag"].replace("{seed}", s) for r in rows["rows"] for s in (seeds if "{seed}" in r["tag"] else [""])}
    return sorted({c["file"].format(tag=t) for t in tags for c in meta["Columns"]})


def _has_outputs(name: str, out: Path) -> bool:
    meta = META[name]
    return _complete(meta, out, _run_seeds(meta, out))


def _read(name: str, out: Path) -> list[dict[str, Any]]:
    meta = META[name]
    reader = meta["Rows"]["reader"]
    if reader == "base2novel":
        return prompt_rows(out / meta["Rows"]["file"], meta)
    if reader == "dmu_compare":
        return moe_rows(out)
    if reader == "metrics":
        return metric_rows(out, meta)
    raise ValueError(f"{meta['metafile']}: experiment {name!r} has an unknown Rows.reader {reader!r}")


def collect(name: str, work_dir: Path, recorded_csv: Path = RECORDED_CSV, recorded_json: Path = RECORDED_JSON) -> dict:
    """``{"source": ..., "rows": [...]}`` of experiment ``name``: from its work dir when complete, else recorded."""
    out = work_dir / name
    if _has_outputs(name, out):
        return {"source": str(out), "rows": _read(name, out)}
    if META[name]["Rows"]["reader"] == "base2novel":
        return {"source": _display(recorded_csv), "rows": prompt_rows(recorded_csv, META[name])}
    recorded = json.loads(recorded_json.read_text())
    if name not in recorded:
        raise KeyError(f"{recorded_json} has no experiment {name!r} and {out} has no outputs")
    return {"source": _display(recorded_json), "rows": recorded[name]["rows"]}


def _display(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def record(work_dir: Path, recorded_csv: Path = RECORDED_CSV, recorded_json: Path = RECORDED_JSON) -> list[str]:
    """Copy what the work dirs hold into the recorded data; the experiments recorded."""
    done = []
    recorded = json.loads(recorded_json.read_text()) if recorded_json.is_file() else {}
    for name in EXPERIMENTS:
        out = work_dir / name
        if not _has_outputs(name, out):
            continue
        if META[name]["Rows"]["reader"] == "base2novel":
            shutil.copyfile(out / "results.csv", recorded_csv)
        else:
            recorded[name] = {"rows": collect(name, work_dir, recorded_csv, recorded_json)["rows"]}
        done.append(name)
    recorded_json.write_text(json.dumps(recorded, indent=2) + "\n")
    return done


# ---------------------------------------------------------------------------------------------- tables, plots
def _cell(value: Any) -> str:
    """One or two decimals: a recorded 16.5 is not shown as the finer 16.50."""
    if not isinstance(value, float):
        return str(value)
    return f"{value:.1f}" if round(value * 10, 6).is_integer() else f"{value:.2f}"


def table(name: str, rows: Sequence[dict[str, Any]]) -> str:
    """The Markdown table of experiment ``name`` (the docs page holds these verbatim)."""
    columns = [(c["key"], c["header"]) for c in META[name]["Columns"]]
    lines = ["| method | " + " | ".join(h for _, h in columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for row in rows:
        missing = [k for k, _ in columns if k not in row]
        if missing:
            raise KeyError(f"{name}: row {row.get('method')!r} lacks {missing}")
        cells = [_cell(row[k]) + (f" ± {_cell(row[f'{k}_std'])}" if f"{k}_std" in row else "") for k, _ in columns]
        lines.append(f"| {row['method']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(name: str, rows: Sequence[dict[str, Any]], out: Path) -> Path:
    """Grouped bars: one group per method, one bar per plotted column, labelled with its value."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = [c["key"] for c in META[name]["Columns"] if c.get("plot", True)]
    headers = {c["key"]: c["header"] for c in META[name]["Columns"]}
    width = 0.8 / len(keys)
    fig, ax = plt.subplots(figsize=(2.0 + (0.45 * len(keys) + 0.3) * len(rows), 3.4))
    for i, key in enumerate(keys):
        xs = [j + (i - (len(keys) - 1) / 2) * width for j in range(len(rows))]
        errors = [float(r.get(f"{key}_std", 0.0)) for r in rows]  # the spread over seeds, where there are seeds
        bars = ax.bar(xs, [float(r[key]) for r in rows], width, label=headers[key], yerr=errors, capsize=2)
        ax.bar_label(bars, fmt="%.1f", fontsize=6, padding=1)
    ax.set_xticks(range(len(rows)), [r["method"] for r in rows], rotation=12, ha="right", fontsize=7)
    ax.set_ylabel(META[name]["YLabel"])
    top = max(float(r[k]) for r in rows for k in keys)
    ax.set_ylim(0, max(1.0, top * 1.3))
    ax.legend(fontsize=7, ncols=min(len(keys), 3), loc="upper left")
    ax.set_title(META[name]["Title"] + " (synthetic world, tiny CLIP)", fontsize=9)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out


def main(argv: list[str] | None = None) -> dict[str, dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", action="store_true", help="run the experiments first (into --work-dir)")
    parser.add_argument("--quick", action="store_true", help="with --run: tiny world and runs (seconds; a smoke test)")
    parser.add_argument("--only", nargs="+", choices=EXPERIMENTS, default=list(EXPERIMENTS), help="experiments")
    parser.add_argument("--work-dir", type=Path, default=Path("work_dirs/zoo"), help="one folder per experiment")
    parser.add_argument("--plots", type=Path, default=PLOTS, help="where zoo_<experiment>.png go")
    parser.add_argument("--record", action="store_true", help="write the work dirs' numbers to the recorded data")
    args = parser.parse_args(argv)
    if args.quick and not args.run:
        parser.error("--quick shrinks the runs of --run")
    if args.quick and args.record:
        parser.error("--quick numbers mean nothing: they are not recorded")
    work_dir = args.work_dir if args.work_dir.is_absolute() else ROOT / args.work_dir
    results = {}
    for name in args.only:
        if args.run:
            run(name, work_dir / name, args.quick)
        results[name] = collect(name, work_dir)
        results[name]["plot"] = str(plot(name, results[name]["rows"], args.plots / f"zoo_{name}.png"))
        results[name]["table"] = table(name, results[name]["rows"])
        print(f"\n## {name} (from {results[name]['source']})\n\n{results[name]['table']}\n\n{results[name]['plot']}")
    if args.record:
        print("recorded:", record(work_dir))
    return results


if __name__ == "__main__":
    main()
