"""tools/gpu_check.py: its dry run on the CPU writes a report with every section; its parts say what they should.

No test here asserts a duration or a speed.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from clipadapt.engine.paths import load_tool

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "tools" / "gpu_check.py"

gpu_check = load_tool("gpu_check")


def test_tolerance_is_stated_per_dtype_depth_and_width() -> None:
    from benchmarks.gpu_checks import UNIT_ROUNDOFF, relative_error, tolerance

    assert UNIT_ROUNDOFF == {"fp32": 2.0**-24, "bf16": 2.0**-8, "fp16": 2.0**-11}
    # ViT-B/16: 12 blocks, MLP width 3072 (the figures the module docstring and docs/performance.md state).
    assert tolerance("fp32", 12, 3072) == pytest.approx(4.6e-5, rel=0.02)
    assert tolerance("fp16", 12, 3072) == pytest.approx(6.8e-3, rel=0.02)
    assert tolerance("bf16", 12, 3072) == pytest.approx(5.4e-2, rel=0.02)
    assert tolerance("bf16", 12, 3072) > tolerance("fp16", 12, 3072) > tolerance("fp32", 12, 3072)
    assert tolerance("fp16", 48, 3072) == pytest.approx(2 * tolerance("fp16", 12, 3072))

    import torch

    b = torch.tensor([[3.0, 4.0], [1.0, 0.0]])
    a = b + torch.tensor([[0.0, 0.5], [0.0, 0.0]])
    assert relative_error(a, b) == pytest.approx(0.1)  # the worst row: 0.5 / 5


def test_known_cards_have_a_bf16_peak() -> None:
    from benchmarks.timing import peak_bf16_tflops

    assert peak_bf16_tflops("NVIDIA H100 80GB HBM3") == 989.0
    assert peak_bf16_tflops("NVIDIA H100 PCIe") == 756.0
    assert peak_bf16_tflops("NVIDIA H200") == 989.0
    assert peak_bf16_tflops("NVIDIA A100-SXM4-80GB") == 312.0
    assert peak_bf16_tflops("Tesla T4") is None  # unknown: the report omits the fraction


def test_arguments() -> None:
    args = gpu_check.parse_args(["--out", "x", "--sections", "bench,parity", "--device", "cpu", "--budget-s", "60"])
    assert args.sections == ["parity", "bench"]  # always in the script's order
    assert args.plan["models"] == ["tiny-vit"]  # the dry run's small shapes
    assert gpu_check.parse_args(["--out", "x"]).plan["models"] == ["ViT-B-16", "ViT-B-16-quickgelu"]
    for bad in (["--sections", "parity,warp"], ["--device", "tpu"], ["--budget-s", "0"]):
        with pytest.raises(SystemExit):
            gpu_check.parse_args(["--out", "x", *bad])


def test_kernel_findings() -> None:
    from benchmarks.gpu_checks import kernel_findings

    fused = {"path": "p", "dtype": "bf16", "default": ["flash"], "flash_only": "ok", "efficient_only": "ok"}
    assert kernel_findings(fused, "cuda") == []
    math_path = fused | {"default": ["math"], "flash_only": "error: x", "efficient_only": "error: y"}
    assert len(kernel_findings(math_path, "cuda")) == 2  # a silent fallback, and no fused kernel serves it
    assert kernel_findings(math_path | {"dtype": "fp32"}, "cuda") == []  # no flash kernel exists for fp32
    assert kernel_findings(math_path, "cpu") == []  # the dry run finds nothing about CUDA kernels


def test_findings_and_goals_from_a_report() -> None:
    row = {"name": "image_forward", "dtype": "bf16", "compile": False, "ratio": 1.2, "ratio_vs_fastest": 0.9}
    sections = {
        "parity": {"status": "ok", "results": [{"name": "m", "tower": "image", "dtype": "fp16", "ok": False,
                                                "relative_error": 0.1, "tolerance": 0.01}]},
        "bench": {"status": "timed out after 9 s", "results": [{"rows": [row | {"goal": 1.0}], "status": "ok"},
                                                             {"rows": [], "status": "skipped: no time left",
                                                              "dtype": "fp16", "compile": True}]},
    }  # fmt: skip
    (goal,) = gpu_check.goals(sections["bench"])
    assert goal["ratio"] == 0.9 and not goal["met"]  # image forward is held against open_clip's fastest setting
    found = gpu_check.findings(sections)
    assert any(f.startswith("bench: section timed out") for f in found)
    assert any(f.startswith("parity m image fp16") for f in found)
    assert any("image_forward bf16" in f for f in found)
    assert "bench: the fp16 run with compile=True: skipped: no time left" in found


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("gpu_report")
    cmd = [sys.executable, str(SCRIPT), "--device", "cpu", "--out", str(out), "--budget-s", "2400"]
    cmd += ["--scratch", str(out / "scratch")]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=3000, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return out


@pytest.mark.slow
def test_dry_run_reports_every_section(dry_run: Path) -> None:
    report = json.loads((dry_run / "report.json").read_text())
    assert list(report["sections"]) == list(gpu_check.SECTIONS)
    for name, section in report["sections"].items():
        assert section["status"] == "ok", (name, section.get("log_tail"))
        assert section["results"], name
    parity = report["sections"]["parity"]["results"]
    names = {r["name"] for r in parity}
    assert {"tiny-vit", "MaPLe", "Long-CLIP 248", "MoE (4 experts, top-2)", "MoE block"} <= names
    for r in parity:
        assert r["ok"] and 0 <= r["relative_error"] <= r["tolerance"], r
    kernels = report["sections"]["kernels"]["results"]
    assert len(kernels) == 4 and all(r["default"] and r["flash_only"] for r in kernels)
    (train,) = report["sections"]["train"]["results"]
    assert train["amp"] and train["iterations"] > 0 and all(math.isfinite(x) for x in train["losses"])
    assert train["resume"]["bit_identical"] and train["resume_equal"]  # on CPU a resume is exact
    (bench,) = report["sections"]["bench"]["results"]
    assert bench["status"] == "ok" and [r["name"] for r in bench["rows"]] == ["image_forward", "text_forward"]
    image = bench["rows"][0]  # bf16: both towers also with weights cast to bf16 (open_clip's fastest setting)
    assert image["ratio_vs_fastest"] == pytest.approx(image["clipadapt_best"] / image["open_clip_fastest"])
    assert image["clipadapt_tflops"] > 0 and "peak_bf16_tflops" not in image  # no peak is known for a CPU
    summary = (dry_run / "summary.md").read_text()
    for heading in ("## Parity", "## SDPA kernel selection", "## Training", "## Benchmark", "## Findings"):
        assert heading in summary


def test_bootstrap_links_the_plugins_folder_when_not_installed(tmp_path: Path, monkeypatch) -> None:
    import importlib.util

    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.setenv("PYTHONPATH", "/elsewhere")
    real = importlib.util.find_spec

    def find_spec(name: str, *args):
        return None if name == "clipadapt_plugins" else real(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    gpu_check.bootstrap_imports(tmp_path)  # as on a GPU machine: the checkout without an installed package
    link = tmp_path / "shim" / "clipadapt_plugins"
    assert link.resolve() == (ROOT / "plugins").resolve()
    assert str(ROOT) in sys.path and str(link.parent) in sys.path
    assert os.environ["PYTHONPATH"].split(os.pathsep) == [str(ROOT), str(link.parent), "/elsewhere"]  # children too


def test_cuda_plan_asks_the_benchmark_for_rows_it_has() -> None:
    benchmark = load_tool("benchmark")
    plan = gpu_check.PLANS["cuda"]
    for dtype, compiled, rows in plan["bench_runs"]:
        argv = ["--rows", rows, "--dtype", dtype, "--model", plan["bench_model"], *plan["bench_args"]]
        args = benchmark.parse_args(argv + ["--compile"] * compiled)
        assert args.rows and args.num_classes == 1000  # the 1,000 class prompts


def test_a_section_past_its_limit_is_recorded_and_the_report_still_written(tmp_path: Path) -> None:
    cmd = [sys.executable, str(SCRIPT), "--device", "cpu", "--out", str(tmp_path), "--sections", "parity"]
    cmd += ["--budget-s", "2", "--scratch", str(tmp_path / "scratch")]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["sections"]["parity"]["status"] == "timed out after 2 s"
    assert "parity: section timed out after 2 s" in report["findings"]
    assert "## Parity" in (tmp_path / "summary.md").read_text()


def test_training_check_parts(tmp_path: Path) -> None:
    import torch

    from benchmarks.train_check import compare_weights, logged_losses, write_config

    config = write_config(tmp_path, 3, small=False, tiny_clip=None).read_text()
    assert "deterministic=True" in config and "max_epochs=3" in config and "window_size=1" in config
    assert (
        "deterministic=False" in write_config(tmp_path, 3, small=True, tiny_clip=None, deterministic=False).read_text()
    )
    assert "vpt_tiny-vit" in write_config(tmp_path, 2, small=True, tiny_clip="/x/tiny.pt").read_text()

    a = {"w": torch.tensor([1.0, -2.0]), "b": torch.tensor([0.5])}
    assert compare_weights(a, {k: v.clone() for k, v in a.items()})["bit_identical"]
    off = compare_weights(a, {"w": torch.tensor([1.0, -2.002]), "b": torch.tensor([0.5])})
    assert not off["bit_identical"] and off["relative_diff"] == pytest.approx(0.001, rel=1e-3)
    assert not compare_weights(a, {"w": a["w"]})["same_keys"]

    scalars = tmp_path / "run" / "20260101_000000" / "vis_data" / "scalars.json"
    scalars.parent.mkdir(parents=True)
    scalars.write_text('{"loss": 4.1, "step": 1}\n{"lr": 0.1, "step": 1}\n{"loss": 3.9, "step": 2}\n')
    assert logged_losses(tmp_path / "run") == {1: 4.1, 2: 3.9}
