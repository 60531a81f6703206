"""The model zoo: each plugin's synthetic-world experiment as one Markdown table and one PNG bar chart.

    python tools/model_zoo.py                                # tables + plots from work_dirs/zoo (or the record)
    python tools/model_zoo.py --run                          # run every experiment (about 30 min on 2 CPU cores)
    python tools/model_zoo.py --run --quick --only prompt    # a 4-class world, one short epoch: seconds
    python tools/model_zoo.py --record                       # after a full run: refresh the recorded data

Experiments, each the commands its configs' headers give (``--run`` runs them, in this order):

- ``prompt``: ``tools/base2novel.py`` on the five ``*_tiny-vit_1xb4_synthetic-warm-b2n.py`` configs with the
  zero-shot config first, seeds 1 2 3; reads its ``results.csv``.
- ``longclip``: ``tools/train.py``, then ``tools/test.py --out`` of the trained model (``longclip.json``)
  and of the base CLIP (``base.json``: ``model.plugins=[]``, ``model.contrastive_loss=True``).
- ``fgclip``: ``tools/test.py --out`` before (``before.json``), ``tools/train.py``, ``tools/test.py --out``
  after (``after.json``); the zero-shot config of the dark domain before and after (``dark_*.json``).
- ``moe``: ``tools/dmu.py --compare --seeds 0 1 2 3 4``; reads the seed means of its ``compare.csv``.
- ``ovd``: ``tools/train.py`` of the open-vocabulary detector, then ``tools/test.py --out`` with CLIP's box
  scores (``ensemble.json``) and without them (``detector.json``: ``model.roi_head.region_scorer=None``).

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
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from clipadapt.engine.paths import load_tool

ROOT = Path(__file__).resolve().parents[1]
RECORDED_CSV = ROOT / "docs" / "assets" / "data" / "zoo_b2n_warm.csv"
RECORDED_JSON = ROOT / "docs" / "assets" / "data" / "model_zoo.json"
PLOTS = ROOT / "docs" / "assets" / "plots"
EXPERIMENTS = ("prompt", "longclip", "fgclip", "moe", "ovd")

B2N_METHODS = ("maple", "coop", "cocoop", "ivlp", "promptsrc")
B2N_CONFIGS = [f"configs/{m}/{m}_tiny-vit_1xb4_synthetic-warm-b2n.py" for m in B2N_METHODS]
ZERO_SHOT = "configs/zeroshot/zeroshot_tiny-vit_synthetic-warm.py"
DARK_ZERO_SHOT = "configs/zeroshot/zeroshot_tiny-vit_synthetic-dark.py"
LONGCLIP = "configs/longclip/longclip_tiny-vit_1xb64_synthetic-long.py"
FGCLIP = "configs/fgclip/fgclip2_tiny-vit_1xb32_synthetic-regions.py"
MOE = "configs/moe/clipmoe_tiny-vit_4x2_1xb32_synthetic.py"
OVD = "configs/ovd/ovrcnn_tiny-vit_1xb8_synthetic-colour.py"

# --quick: a 4-class world (8 scenes for the caption and region runs, k-means needs a few) and tiny runs.
QUICK_WORLD = dict(colours="[red,blue]", shapes="[circle,square]", per_class_train=4, per_class_val=2,
                   per_class_test=2, scenes_train=8, scenes_val=4, scenes_test=4, max_objects=2)  # fmt: skip
_WORLD_OPTIONS = [f"synthetic_world.{k}={v}" for k, v in QUICK_WORLD.items()]
_SMALL_BATCHES = ["train_dataloader.batch_size=4", "val_dataloader.batch_size=8", "test_dataloader.batch_size=8"]
QUICK_OPTIONS = {
    "prompt": [*_WORLD_OPTIONS, "train_cfg.max_epochs=1"],
    "longclip": [*_WORLD_OPTIONS, *_SMALL_BATCHES, "train_cfg.max_epochs=1", "model.plugins.0.pcm_components=2"],
    "longclip_base": [*_WORLD_OPTIONS, *_SMALL_BATCHES],
    "fgclip": [*_WORLD_OPTIONS, *_SMALL_BATCHES],
    "zeroshot": [*_WORLD_OPTIONS, "test_dataloader.batch_size=8"],
    "moe": [*_WORLD_OPTIONS, "train_dataloader.batch_size=2", "test_dataloader.batch_size=8",
            "train_cfg.max_iters=2", "dmu.mlp_stage.train_cfg.max_iters=2", "dmu.image_clusters=2",
            "dmu.text_clusters=1"],
    "ovd": [*_WORLD_OPTIONS, "train_cfg.max_epochs=1", "train_dataloader.batch_size=4",
            "train_dataloader.dataset.metainfo.classes=[red]",
            *(f"{phase}_dataloader.dataset.metainfo.{key}={value}" for phase in ("val", "test")
              for key, value in (("classes", "[red,blue]"), ("base_classes", "[red]"), ("novel_classes", "[blue]"))),
            "model.roi_head.bbox_head.num_classes=1"],
}  # fmt: skip

# Display names of the base-to-novel methods (results.csv names each by its config file).
PROMPT_NAMES = {
    "zeroshot": "zero-shot CLIP",
    "maple": "MaPLe",
    "coop": "CoOp",
    "cocoop": "CoCoOp",
    "ivlp": "IVLP",
    "promptsrc": "PromptSRC",
}
# Table columns per experiment: (record key, header). The record's rows carry "method" and these keys.
COLUMNS: dict[str, list[tuple[str, str]]] = {
    "prompt": [("base", "base"), ("novel", "novel"), ("hm", "HM")],
    "longclip": [
        ("long_i2t", "long I->T R@1"),
        ("long_t2i", "long T->I R@1"),
        ("short_i2t", "short I->T R@1"),
        ("short_t2i", "short T->I R@1"),
        ("zeroshot", "zero-shot top-1"),
    ],
    "fgclip": [
        ("region_top1", "region top-1"),
        ("hard_negative", "hard-negative acc."),
        ("scene_zeroshot", "scene zero-shot"),
        ("dark_zeroshot", "dark zero-shot top-1"),
    ],
    "ovd": [
        ("base_ap50", "base AP50"),
        ("novel_ap50", "novel AP50"),
        ("base_ap", "base AP"),
        ("novel_ap", "novel AP"),
    ],
    "moe": [
        ("i2t", "I->T R@1"),
        ("t2i", "T->I R@1"),
        ("activated_M", "activated params (M)"),
        ("total_M", "total params (M)"),
    ],
}
# The columns drawn as bars (parameter counts are in the tables only: another unit).
PLOTTED = {key: [k for k, _ in columns if not k.endswith("_M")] for key, columns in COLUMNS.items()}
TITLES = {
    "prompt": "Base-to-novel on the warm domain",
    "longclip": "Long-CLIP: long- and short-caption retrieval",
    "fgclip": "FG-CLIP 2: regions, before and after",
    "moe": "CLIP-MoE: same training budget",
    "ovd": "Open-vocabulary detection: 5 base, 3 novel colours",
}
Y_LABELS = {"prompt": "top-1 accuracy (%)", "longclip": "R@1 / top-1 (%)", "fgclip": "accuracy (%)", "moe": "R@1 (%)",
            "ovd": "AP (%)"}  # fmt: skip


# ---------------------------------------------------------------------------------------------- running
def _tool(script: str, *args: str, options: Sequence[str] = ()) -> list[str]:
    command = [sys.executable, f"tools/{script}", *args]
    return command + (["--cfg-options", *options] if options else [])


def _last_checkpoint(work_dir: Path) -> str:
    """The checkpoint tools/train.py saved last (its ``last_checkpoint`` file names it)."""
    pointer = work_dir / "last_checkpoint"
    if not pointer.is_file():
        raise FileNotFoundError(f"{pointer} is missing: the training run of {work_dir} saved no checkpoint")
    return pointer.read_text().strip()


def plan(name: str, out: Path, quick: bool) -> list[Callable[[], list[str]]]:
    """The commands of experiment ``name`` writing under ``out``; each is built when its turn comes
    (the test after a training run needs that run's checkpoint path)."""
    opts = QUICK_OPTIONS if quick else {}
    opt = lambda key: opts.get(key, [])  # noqa: E731
    if name == "prompt":
        seeds = ["1"] if quick else ["1", "2", "3"]
        b2n = ["--zero-shot", ZERO_SHOT, "--seeds", *seeds, "--work-dir", str(out)]
        return [lambda: _tool("base2novel.py", *B2N_CONFIGS, *b2n, options=opt("prompt"))]
    if name == "longclip":
        base_opts = ["model.plugins=[]", "model.contrastive_loss=True", *opt("longclip_base")]
        return [
            lambda: _tool("train.py", LONGCLIP, "--work-dir", str(out / "train"), options=opt("longclip")),
            lambda: _tool(
                "test.py",
                LONGCLIP,
                _last_checkpoint(out / "train"),
                "--work-dir",
                str(out / "test"),
                "--out",
                str(out / "longclip.json"),
                options=opt("longclip"),
            ),
            lambda: _tool(
                "test.py", LONGCLIP, "--work-dir", str(out / "test"), "--out", str(out / "base.json"), options=base_opts
            ),
        ]
    if name == "fgclip":
        test = lambda config, tag, ckpt, key: _tool(  # noqa: E731
            "test.py",
            config,
            *ckpt,
            "--work-dir",
            str(out / "test"),
            "--out",
            str(out / f"{tag}.json"),
            options=opt(key),
        )
        return [
            lambda: test(FGCLIP, "before", [], "fgclip"),
            lambda: test(DARK_ZERO_SHOT, "dark_before", [], "zeroshot"),
            lambda: _tool("train.py", FGCLIP, "--work-dir", str(out / "train"), options=opt("fgclip")),
            lambda: test(FGCLIP, "after", [_last_checkpoint(out / "train")], "fgclip"),
            lambda: test(DARK_ZERO_SHOT, "dark_after", [_last_checkpoint(out / "train")], "zeroshot"),
        ]
    if name == "moe":
        seeds = ["0"] if quick else ["0", "1", "2", "3", "4"]
        return [
            lambda: _tool("dmu.py", MOE, "--compare", "--seeds", *seeds, "--work-dir", str(out), options=opt("moe"))
        ]
    if name == "ovd":
        test = lambda tag, extra: _tool(  # noqa: E731
            "test.py",
            OVD,
            _last_checkpoint(out / "train"),
            "--work-dir",
            str(out / "test"),
            "--out",
            str(out / f"{tag}.json"),
            options=[*opt("ovd"), *extra],
        )
        return [
            lambda: _tool("train.py", OVD, "--work-dir", str(out / "train"), options=opt("ovd")),
            lambda: test("detector", ["model.roi_head.region_scorer=None"]),
            lambda: test("ensemble", []),
        ]
    raise KeyError(f"unknown experiment {name!r}; choose from {EXPERIMENTS}")


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


def prompt_rows(results_csv: Path) -> list[dict[str, Any]]:
    """Mean base / novel / HM per method over its seeds (HM of the means, as tools/base2novel.py computes it)."""
    plot_results = load_tool("analysis/plot_results")
    columns, runs = plot_results.read_results([results_csv])
    rows = []
    for method, seeds in runs.items():
        summary = plot_results.summarise(columns, seeds)
        prefix = method.split("_", 1)[0]
        row = {"method": PROMPT_NAMES.get(prefix, method), "seeds": len(seeds)}
        rows.append(row | {key: round(summary[key][0], 2) for key, _ in COLUMNS["prompt"]})
    return rows


def longclip_rows(out: Path) -> list[dict[str, Any]]:
    """The base CLIP and Long-CLIP on LongTextRetrieval (tools/test.py --out JSON)."""
    keys = {"long_i2t": "long_i2t_R@1", "long_t2i": "long_t2i_R@1", "short_i2t": "short_i2t_R@1",
            "short_t2i": "short_t2i_R@1", "zeroshot": "zeroshot_top1"}  # fmt: skip
    rows = []
    for method, file in (("base CLIP (77 tokens)", "base.json"), ("Long-CLIP", "longclip.json")):
        metrics = _metrics(out / file)
        rows.append({"method": method, **{k: _pick(metrics, f"longtext/{v}", out / file) for k, v in keys.items()}})
    return rows


def fgclip_rows(out: Path) -> list[dict[str, Any]]:
    """RegionMetric before and after training, and zero-shot top-1 on the dark domain."""
    rows = []
    for method, tag in (("base CLIP, value-path RoIAlign", "before"), ("RegionAlign (FG-CLIP 2)", "after")):
        region, dark = _metrics(out / f"{tag}.json"), _metrics(out / f"dark_{tag}.json")
        rows.append({
            "method": method,
            "region_top1": _pick(region, "region/top1", out / f"{tag}.json"),
            "hard_negative": _pick(region, "region/hard_negative", out / f"{tag}.json"),
            "scene_zeroshot": _pick(region, "region/global_top1", out / f"{tag}.json"),
            "dark_zeroshot": _pick(dark, "accuracy/top1", out / f"dark_{tag}.json"),
        })  # fmt: skip
    return rows


def moe_rows(out: Path) -> list[dict[str, Any]]:
    """The rows of tools/dmu.py's compare.csv (parameter counts in millions; with --seeds, the means)."""
    path = out / "compare.csv"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: rerun `python tools/model_zoo.py --run`")
    with open(path, newline="") as handle:
        table = list(csv.DictReader(handle))
    return [
        {
            "method": r["method"],
            "steps": int(r["steps"]),
            "i2t": round(float(r.get("i2t_R@1_mean", r.get("i2t_R@1"))), 2),  # --seeds: the mean
            "t2i": round(float(r.get("t2i_R@1_mean", r.get("t2i_R@1"))), 2),
            "activated_M": round(int(r["activated"]) / 1e6, 2),
            "total_M": round(int(r["total"]) / 1e6, 2),
        }
        for r in table
    ]


def ovd_rows(out: Path) -> list[dict[str, Any]]:
    """OVCocoMetric of the detector alone and with CLIP's box scores, in percent."""
    rows = []
    for method, tag in (("detector alone", "detector"), ("+ CLIP box scores (ensemble)", "ensemble")):
        path = out / f"{tag}.json"
        metrics = {k: v * 100 for k, v in _metrics(path).items()}  # OVCocoMetric reports fractions
        keys = ("base_ap50", "novel_ap50", "base_ap", "novel_ap")
        rows.append({"method": method, **{k: _pick(metrics, f"coco/{k}", path) for k in keys}})
    return rows


def _has_outputs(name: str, out: Path) -> bool:
    wanted = {"prompt": ["results.csv"], "longclip": ["base.json", "longclip.json"], "moe": ["compare.csv"],
              "fgclip": ["before.json", "after.json", "dark_before.json", "dark_after.json"],
              "ovd": ["detector.json", "ensemble.json"]}[name]  # fmt: skip
    return all((out / f).is_file() for f in wanted)


def collect(name: str, work_dir: Path, recorded_csv: Path = RECORDED_CSV, recorded_json: Path = RECORDED_JSON) -> dict:
    """``{"source": ..., "rows": [...]}`` of experiment ``name``: from its work dir when complete, else recorded."""
    out = work_dir / name
    if _has_outputs(name, out):
        readers = {"prompt": lambda: prompt_rows(out / "results.csv"), "longclip": lambda: longclip_rows(out),
                   "fgclip": lambda: fgclip_rows(out), "moe": lambda: moe_rows(out),
                   "ovd": lambda: ovd_rows(out)}  # fmt: skip
        return {"source": str(out), "rows": readers[name]()}
    if name == "prompt":
        return {"source": _display(recorded_csv), "rows": prompt_rows(recorded_csv)}
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
        if name == "prompt":
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
    extra = {"prompt": [("seeds", "seeds")], "moe": [("steps", "steps")]}.get(name, [])
    columns = COLUMNS[name] + extra
    lines = ["| method | " + " | ".join(h for _, h in columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for row in rows:
        missing = [k for k, _ in columns if k not in row]
        if missing:
            raise KeyError(f"{name}: row {row.get('method')!r} lacks {missing}")
        lines.append(f"| {row['method']} | " + " | ".join(_cell(row[k]) for k, _ in columns) + " |")
    return "\n".join(lines)


def plot(name: str, rows: Sequence[dict[str, Any]], out: Path) -> Path:
    """Grouped bars: one group per method, one bar per plotted column, labelled with its value."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = PLOTTED[name]
    headers = dict(COLUMNS[name])
    width = 0.8 / len(keys)
    fig, ax = plt.subplots(figsize=(2.0 + (0.45 * len(keys) + 0.3) * len(rows), 3.4))
    for i, key in enumerate(keys):
        xs = [j + (i - (len(keys) - 1) / 2) * width for j in range(len(rows))]
        bars = ax.bar(xs, [float(r[key]) for r in rows], width, label=headers[key])
        ax.bar_label(bars, fmt="%.1f", fontsize=6, padding=1)
    ax.set_xticks(range(len(rows)), [r["method"] for r in rows], rotation=12, ha="right", fontsize=7)
    ax.set_ylabel(Y_LABELS[name])
    top = max(float(r[k]) for r in rows for k in keys)
    ax.set_ylim(0, max(1.0, top * 1.3))
    ax.legend(fontsize=7, ncols=min(len(keys), 3), loc="upper left")
    ax.set_title(TITLES[name] + " (synthetic world, tiny CLIP)", fontsize=9)
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
