"""tools/analysis/: a tiny training run's curves regenerated as a PNG, and the readers behind each chart.

The chart scripts are checked through what they read (the records, the means and spreads, the ratios) and
through the PNG they write: a real PNG of the expected size with something drawn on it.
"""

from __future__ import annotations

import csv
import json
import statistics
from pathlib import Path

import pytest
from PIL import Image

from clipadapt.datasets.synthetic import ensure_synthetic_world
from clipadapt.engine.paths import load_tool
from tests.helpers import SMALL_WORLD

ROOT = Path(__file__).resolve().parents[2]
ANALYSIS = ROOT / "tools" / "analysis"
VPT_CONFIG = ROOT / "configs" / "vpt" / "vpt_tiny-vit_1xb32_synthetic-dark-16shot.py"
WORLD = SMALL_WORLD


curves = load_tool("analysis/plot_curves")
results = load_tool("analysis/plot_results")
benchmark = load_tool("analysis/plot_benchmark")
world_plot = load_tool("analysis/plot_world")
pretraining = load_tool("analysis/plot_pretraining")
world_eval = load_tool("analysis/world_eval")
moe_experts = load_tool("analysis/plot_moe_experts")
train_tool = load_tool("train")


def _assert_png(path: Path, min_size: tuple[int, int]) -> None:
    assert path.is_file(), path
    with Image.open(path) as image:
        assert image.format == "PNG"
        assert image.size[0] >= min_size[0] and image.size[1] >= min_size[1], image.size
        colours = image.convert("RGB").getcolors(maxcolors=1 << 20)
    assert colours is None or len(colours) > 20, "the PNG is (nearly) blank"


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    """Two epochs of VPT on a 4-class world with a random tiny CLIP: 2 x 4 iterations, one evaluation per epoch."""
    root = tmp_path_factory.mktemp("analysis")
    world = ensure_synthetic_world(root / "world", progress=False, workers=1, **WORLD)
    config = root / "vpt_tiny.py"
    config.write_text(
        f"_base_ = [{str(VPT_CONFIG)!r}]\n"
        f"synthetic_world = {WORLD!r}\n"
        "model = dict(pretrained=None, plugins=[dict(type='VPT', num_tokens=2)])\n"
        "train_dataloader = dict(batch_size=4, dataset=dict(num_shots=4, pipeline=[dict(type='LoadImage')]))\n"
        "val_dataloader = dict(batch_size=8)\n"
        "train_cfg = dict(max_epochs=2, val_interval=1)\n"
        "default_hooks = dict(logger=dict(interval=1), checkpoint=dict(interval=-1, save_best=None))\n"
        "visualizer = dict(vis_backends=[dict(type='LocalVisBackend')])\n"
    )
    patch = pytest.MonkeyPatch()
    patch.setenv("CLIPADAPT_DATA", str(world))
    patch.setenv("CLIPADAPT_CACHE", str(root / "cache"))
    try:
        train_tool.main([str(config), "--work-dir", str(root / "run")])
    finally:
        patch.undo()
    return root / "run"


def test_curves_of_a_tiny_run_are_regenerated(tiny_run: Path, tmp_path: Path) -> None:
    files = curves.scalar_files(tiny_run)
    train, evaluation = curves.read_scalars(files)
    assert sorted(train) == list(range(1, 9))  # logged every iteration: 2 epochs x 4 iterations
    assert all({"loss", "loss_cls", "lr"} <= set(values) for values in train.values())
    assert sorted(evaluation) == [1, 2]  # validation after each epoch, by epoch
    assert all("accuracy/top1" in values and "time" not in values for values in evaluation.values())
    logged = [json.loads(line) for line in files[0].read_text().splitlines()]
    assert train[8]["loss"] == pytest.approx(next(r["loss"] for r in logged if r.get("iter") == 8))

    layout = curves.panels([(train, evaluation)])
    assert [title for title, _, _ in layout] == ["training loss", "learning rate", "evaluation"]
    out = curves.main([str(tiny_run), "--out", str(tmp_path / "curves.png")])
    _assert_png(out, (800, 300))
    only = curves.main([str(tiny_run), "--keys", "accuracy/top1", "--out", str(tmp_path / "top1.png")])
    _assert_png(only, (300, 300))


def test_curves_merge_runs_later_steps_win(tmp_path: Path) -> None:
    for stamp, rows in (("20260101_000000", [(1, 2.0), (2, 1.5)]), ("20260102_000000", [(2, 1.0), (3, 0.5)])):
        vis = tmp_path / stamp / "vis_data"
        vis.mkdir(parents=True)
        lines = [json.dumps({"loss": loss, "lr": 0.1, "iter": it, "epoch": 1, "step": it}) for it, loss in rows]
        (vis / "scalars.json").write_text("\n".join(lines) + "\n")
    latest, _ = curves.read_scalars(curves.scalar_files(tmp_path))
    assert {it: v["loss"] for it, v in latest.items()} == {2: 1.0, 3: 0.5}
    merged, _ = curves.read_scalars(curves.scalar_files(tmp_path, all_runs=True))
    assert {it: v["loss"] for it, v in merged.items()} == {1: 2.0, 2: 1.0, 3: 0.5}


def test_curves_errors_name_what_is_missing(tmp_path: Path, tiny_run: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"no \*/vis_data/scalars.json under .*empty"):
        curves.scalar_files(tmp_path / "empty")
    with pytest.raises(KeyError, match=r"keys \['accuracy/top9'\] are not in the scalars"):
        curves.plot([tiny_run], tmp_path / "x.png", keys=["accuracy/top9"])


def _results_csv(path: Path, runs: list[tuple[str, int, float, float]]) -> Path:
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["method", "seed", "base", "novel", "hm"])
        for method, seed, base, novel in runs:
            writer.writerow([method, seed, base, novel, 2 * base * novel / (base + novel)])
        writer.writerow(["maple", "mean", 0.0, 0.0, 0.0])  # the tool's mean rows are recomputed, not read
    return path


def test_results_means_spread_and_harmonic_mean(tmp_path: Path) -> None:
    runs = [("zero-shot", 1, 70.0, 74.0), ("maple", 1, 80.0, 70.0), ("maple", 2, 84.0, 76.0), ("maple", 3, 82.0, 73.0)]
    path = _results_csv(tmp_path / "results.csv", runs)
    columns, by_method = results.read_results([path])
    assert columns == ["base", "novel", "hm"] and list(by_method) == ["zero-shot", "maple"]
    summary = results.summarise(columns, by_method["maple"])
    assert summary["base"] == pytest.approx((82.0, statistics.stdev([80.0, 84.0, 82.0])))
    assert summary["novel"][0] == pytest.approx(73.0)
    assert summary["hm"][0] == pytest.approx(2 * 82.0 * 73.0 / (82.0 + 73.0))  # of the means, not mean of HMs
    _assert_png(results.main([str(path), "--out", str(tmp_path / "bars.png")]), (400, 300))


def test_results_reject_other_tables(tmp_path: Path) -> None:
    other = tmp_path / "other.csv"
    other.write_text("name,value\na,1\n")
    with pytest.raises(ValueError, match=r"other\.csv is not a results\.csv of tools/base2novel\.py"):
        results.read_results([other])
    transfer = tmp_path / "transfer.csv"
    transfer.write_text("method,seed,source,dtd,targets_mean\nmaple,1,70,45,45\n")
    b2n = _results_csv(tmp_path / "b2n.csv", [("maple", 1, 80.0, 70.0)])
    with pytest.raises(ValueError, match=r"has score columns \['base', 'novel', 'hm'\]"):
        results.read_results([transfer, b2n])


def test_benchmark_rows_and_ratios(tmp_path: Path) -> None:
    rows = [
        {"name": "text_forward", "clipadapt": 120.0, "baseline": 20.0, "unit": "texts/s", "ratio": 6.0,
         "ratio_paired": 5.8, "model": "tiny-vit", "device": "cpu", "dtype": "fp32"},
        {"name": "maple_forward_backward", "clipadapt": 2.0, "baseline": 1.0, "unit": "steps/s", "ratio": 2.0,
         "memory_ratio": 3.5},
    ]  # fmt: skip
    path = tmp_path / "bench.jsonl"
    path.write_text("UserWarning: something on stderr\n" + "\n".join(json.dumps(r) for r in rows) + "\n")
    assert [r["name"] for r in benchmark.read_rows(path)] == ["text_forward", "maple_forward_backward"]
    drawn = benchmark.bars(benchmark.read_rows(path), extra=["memory_ratio"])
    assert [(label, ratio) for label, ratio, _, _ in drawn] == [
        ("text_forward", 6.0),
        ("maple_forward_backward", 2.0),
        ("maple_forward_backward (memory_ratio)", 3.5),
    ]
    assert drawn[0][2] == 5.8 and drawn[0][3] == "120 vs 20 texts/s"
    _assert_png(
        benchmark.main([str(path), str(path), "--labels", "a", "b", "--out", str(tmp_path / "b.png")]), (400, 150)
    )
    broken = tmp_path / "broken.jsonl"
    broken.write_text(json.dumps({"name": "x", "ratio": 1.0}) + "\n")
    with pytest.raises(ValueError, match=r"row 'x' lacks \['clipadapt', 'baseline', 'unit'\]"):
        benchmark.read_rows(broken)


def test_world_picture(tmp_path: Path) -> None:
    root = ensure_synthetic_world(tmp_path / "world", progress=False, workers=1, **WORLD)
    rows = world_plot.domain_images(root, ["red circle", "blue square"], per_row=6)
    assert set(rows) == {"plain", "noise", "gradient", "dark", "warm"}
    assert rows["dark"][0] == ("red circle", root / "images/dark/red_circle/00000.png")
    with pytest.raises(KeyError, match=r"classes \['green star'\] are not in"):
        world_plot.domain_images(root, ["green star"], per_row=6)
    _assert_png(world_plot.main([str(root), "--scenes", "2", "--out", str(tmp_path / "w.png")]), (300, 300))


def test_pretraining_plot_and_world_report(tmp_path: Path) -> None:
    table = tmp_path / "runs.csv"
    table.write_text("recipe,step,minutes,top1,colour,shape,i2t_r1\na,100,1.0,10,50,12,5\na,200,2.0,30,90,40,\n")
    rows = pretraining.read_rows(table)
    assert [r["step"] for r in rows["a"]] == [100.0, 200.0] and "i2t_r1" not in rows["a"][1]
    _assert_png(pretraining.main([str(table), "--out", str(tmp_path / "p.png")]), (300, 300))
    (tmp_path / "empty.csv").write_text("recipe,step,minutes\n")
    with pytest.raises(ValueError, match="no measurements"):
        pretraining.read_rows(tmp_path / "empty.csv")

    import open_clip
    import torch

    root = ensure_synthetic_world(tmp_path / "world", progress=False, workers=1, **WORLD)
    torch.manual_seed(0)
    weights = tmp_path / "random.pt"
    config = json.loads((ROOT / "clipadapt" / "model_configs" / "tiny-vit.json").read_text())
    torch.save(open_clip.model.CLIP(**config).state_dict(), weights)
    report = world_eval.main(["--weights", str(weights), "--world", str(root), "--domain", "dark"])
    assert report["images"] == 8 and report["scenes"] == 2  # 4 classes x 2 test images; 2 test scenes
    for key in ("top1", "colour", "shape", "i2t_r1"):
        assert 0.0 <= report[key] <= 100.0
    assert report["top1"] <= min(report["colour"], report["shape"])  # a right class has both right


def test_expert_usage_heat_maps(tmp_path: Path) -> None:
    from clipadapt_plugins.moe.tables import write_specialisation

    def layer(share: list[list[float]], nmi: float) -> dict:
        return {"token_entropy": 0.9, "usage_entropy": 1.0, "nmi": nmi, "expert_distance": 0.1, "cluster_usage": share}

    follows = [[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]]
    records = [{"method": "DMU MoE", "layers": {"vision.3": layer(follows, 0.6), "text.3": layer(follows, 0.5)}}]
    write_specialisation({0: records, 1: records}, tmp_path)
    seed, read = moe_experts.read_seed(tmp_path / "specialisation.json", None)
    assert seed == "0" and read == records
    _assert_png(moe_experts.main([str(tmp_path / "specialisation.json"), "--out", str(tmp_path / "m.png")]), (300, 200))
    with pytest.raises(ValueError, match=r"has no seed '7' \(seeds: 0, 1\)"):
        moe_experts.read_seed(tmp_path / "specialisation.json", "7")
