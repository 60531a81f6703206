"""tools/model_zoo.py: a quick run's own outputs become the table and the PNG, and the docs page shows the record.

The quick run trains the four prompt learners for one epoch on a 4-class world from a random-init tiny
CLIP (seconds); its table must be the one computed from the ``results.csv`` that run wrote, not the
recorded data. The model-zoo page must hold, verbatim, the table the script renders from the recorded data
for every experiment, and reference every plot.
"""

from __future__ import annotations

import csv
import json
import statistics
from pathlib import Path

import open_clip
import pytest
import torch
from PIL import Image

from clipadapt.engine import tiny_clip_path
from clipadapt.engine.paths import load_tool

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "model-zoo.md"


def _load_zoo():
    return load_tool("model_zoo")


zoo = _load_zoo()


@pytest.mark.slow
def test_quick_prompt_run_produces_its_own_table_and_plot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    torch.manual_seed(0)
    config = json.loads((ROOT / "clipadapt" / "model_configs" / "tiny-vit.json").read_text())
    torch.save(open_clip.model.CLIP(**config).state_dict(), cache / tiny_clip_path().name)
    monkeypatch.setenv("CLIPADAPT_CACHE", str(cache))
    monkeypatch.setenv("CLIPADAPT_DATA", str(tmp_path / "world"))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    work, plots = tmp_path / "zoo", tmp_path / "plots"
    results = zoo.main(["--run", "--quick", "--only", "prompt", "--work-dir", str(work), "--plots", str(plots)])

    run_csv = work / "prompt" / "results.csv"
    assert results["prompt"]["source"] == str(work / "prompt")  # the run's outputs, not the recorded data
    with open(run_csv, newline="") as handle:
        runs = [r for r in csv.DictReader(handle) if r["seed"] != "mean"]
    methods = ["zeroshot", "maple", "coop", "cocoop", "ivlp", "promptsrc", "vpt"]
    assert [r["method"].split("_")[0] for r in runs] == methods
    assert {r["seed"] for r in runs} == {"1"}  # --quick: one seed
    rows = results["prompt"]["rows"]
    assert [r["method"] for r in rows] == ["zero-shot CLIP", "MaPLe", "CoOp", "CoCoOp", "IVLP", "PromptSRC", "VPT"]
    for row, run in zip(rows, runs):
        base, novel = float(run["base"]), float(run["novel"])
        assert row["base"] == pytest.approx(base, abs=0.005) and row["novel"] == pytest.approx(novel, abs=0.005)
        hm = statistics.harmonic_mean([base, novel]) if base and novel else 0.0
        assert row["hm"] == pytest.approx(hm, abs=0.005)
    table = results["prompt"]["table"]
    assert table.splitlines()[0] == "| method | base | novel | HM | seeds |"
    assert table.splitlines()[3].startswith(f"| MaPLe | {zoo._cell(rows[1]['base'])} | ")

    png = plots / "zoo_prompt.png"
    assert results["prompt"]["plot"] == str(png)
    with Image.open(png) as image:
        assert image.format == "PNG" and image.size[0] >= 400 and image.size[1] >= 300
        assert len(image.convert("RGB").getcolors(maxcolors=1 << 20) or range(99)) > 20  # something is drawn


def test_page_tables_match_the_recorded_data(tmp_path: Path) -> None:
    page = PAGE.read_text()
    for name in zoo.EXPERIMENTS:
        record = zoo.collect(name, tmp_path / "no-runs")  # no work dirs: the recorded data
        assert record["source"].startswith("docs/assets/data/"), record["source"]
        assert zoo.table(name, record["rows"]) in page, f"the {name} table of docs/model-zoo.md is not the record's"
        assert f"](assets/plots/zoo_{name}.png)" in page
        assert (ROOT / "docs" / "assets" / "plots" / f"zoo_{name}.png").is_file()
    recorded = {r["method"]: r for r in zoo.collect("moe", tmp_path)["rows"]}
    assert recorded["DMU MoE"]["steps"] == recorded["Dense MLP fine-tuning"]["steps"] == 100  # the same budget


def test_collect_reads_what_the_tools_write(tmp_path: Path) -> None:
    longclip = tmp_path / "longclip"
    longclip.mkdir()
    metrics = {"long_i2t_R@1": 25.5, "long_t2i_R@1": 26.0, "short_i2t_R@1": 21.5, "short_t2i_R@1": 26.0,
               "zeroshot_top1": 12.034}  # fmt: skip
    (longclip / "base.json").write_text(json.dumps({f"longtext/{k}": v for k, v in metrics.items()}))
    # Long-CLIP trains once per seed: its row is the mean of the seeds' files, with their sample std.
    for seed, shift in (("1", 0.0), ("2", 1.0), ("3", 5.0)):
        seeded = {f"longtext/{k}": v + shift for k, v in metrics.items()}
        (longclip / f"longclip_seed{seed}.json").write_text(json.dumps(seeded))
    rows = zoo.collect("longclip", tmp_path)["rows"]
    assert rows[0] == {"method": "base CLIP (77 tokens)", "long_i2t": 25.5, "long_t2i": 26.0, "short_i2t": 21.5,
                       "short_t2i": 26.0, "zeroshot": 12.03}  # fmt: skip
    spread = round(statistics.stdev([0.0, 1.0, 5.0]), 2)  # 2.65
    assert rows[1]["method"] == "Long-CLIP" and rows[1]["seeds"] == 3
    assert rows[1]["long_i2t"] == 27.5 and rows[1]["zeroshot"] == 14.03
    assert rows[1]["long_i2t_std"] == rows[1]["zeroshot_std"] == spread
    assert "| Long-CLIP | 27.5 ± 2.65 | 28.0 ± 2.65 |" in zoo.table("longclip", rows)
    # A run that stopped after seed 2 is incomplete: no table of fewer seeds, an error naming the missing file.
    (longclip / "longclip_seed3.json").unlink()
    with pytest.raises(FileNotFoundError, match=r"longclip_seed3\.json is missing"):
        zoo.metric_rows(longclip, zoo.META["longclip"])
    # A --quick run (QuickSeeds: seed 1 alone) is complete: one seed, no spread.
    (longclip / "longclip_seed2.json").unlink()
    quick = zoo.collect("longclip", tmp_path)["rows"][1]
    assert quick["long_i2t"] == 25.5 and "long_i2t_std" not in quick and "seeds" not in quick
    (longclip / "base.json").write_text(json.dumps({"longtext/long_i2t_R@1": 1.0}))
    with pytest.raises(KeyError, match=r"base\.json has no metric 'longtext/long_t2i_R@1'"):
        zoo.collect("longclip", tmp_path)

    moe = tmp_path / "moe"
    moe.mkdir()
    (moe / "compare.csv").write_text(
        "method,steps,samples,i2t_R@1,t2i_R@1,i2t_R@5,t2i_R@5,activated,total\n"
        "DMU MoE,100,3200,20.5,20.5,60.0,61.0,9430000,10280000\n"
    )
    assert zoo.collect("moe", tmp_path)["rows"] == [
        {"method": "DMU MoE", "steps": 100, "i2t": 20.5, "t2i": 20.5, "activated_M": 9.43, "total_M": 10.28}
    ]


def test_a_per_seed_step_runs_once_per_seed(tmp_path: Path) -> None:
    steps = zoo.plan("longclip", tmp_path, quick=False)
    assert len(steps) == 3 + 3 + 1  # train and test per seed, then the base CLIP's test once
    for seed, step in zip(("1", "2", "3"), steps[:3]):
        command = step()
        assert command[1] == "tools/train.py"
        assert command[command.index("--work-dir") + 1] == f"{tmp_path}/train_seed{seed}"
        assert command[-1] == f"randomness.seed={seed}"
    assert len(zoo.plan("longclip", tmp_path, quick=True)) == 1 + 1 + 1  # QuickSeeds: seed 1
