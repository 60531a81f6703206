"""tools/benchmark.py runs end to end on the tiny model and reports well-formed rows.

No test here asserts a duration or a speed ratio: only that the benchmark measures what it says.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from clipadapt.engine.paths import load_tool

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "tools" / "benchmark.py"


def _load_benchmark():
    return load_tool("benchmark")


benchmark = _load_benchmark()


@pytest.fixture(scope="module")
def json_rows() -> list[dict]:
    cmd = [
        sys.executable, str(SCRIPT), "--model", "tiny-vit", "--repeats", "1", "--json",
        "--gemm-size", "256", "--min-sample-s", "0", "--threads", "1",
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-4000:]
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    return [json.loads(line) for line in lines]  # every stdout line is one JSON object


def _positive_finite(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0


def test_every_row_once(json_rows) -> None:
    assert [row["name"] for row in json_rows] == list(benchmark.DEFAULT_ROWS)
    assert set(benchmark.ROWS) - set(benchmark.DEFAULT_ROWS) == {"eval_stream"}  # named on demand only


def test_rows_have_the_public_keys(json_rows) -> None:
    for row in json_rows:
        for key in ("name", "clipadapt", "baseline", "unit", "ratio"):
            assert key in row, (row["name"], key)
        for key in ("clipadapt", "baseline", "ratio"):
            assert _positive_finite(row[key]), (row["name"], key, row[key])
        assert isinstance(row["unit"], str) and row["unit"]
        assert row["model"] == "tiny-vit" and row["device"] == "cpu" and row["dtype"] == "fp32"
        assert row["threads"] == 1
        assert "goal" not in row  # the goals are stated for ViT-B-16 on CPU only
        assert _positive_finite(row["small_op_ms"]) and _positive_finite(row["small_op_ms_1_thread"])


def test_ratio_is_clipadapt_over_baseline(json_rows) -> None:
    for row in json_rows:
        assert row["ratio"] == pytest.approx(row["clipadapt"] / row["baseline"], rel=1e-9), row["name"]
        if "ratio_paired" in row:
            assert _positive_finite(row["ratio_paired"])


def test_parity_is_small(json_rows) -> None:
    for row in json_rows:
        assert "parity_max_abs_diff" in row, row["name"]
        diff = row["parity_max_abs_diff"]
        assert math.isfinite(diff) and 0 <= diff <= 1e-4, (row["name"], diff)


def test_row_specific_fields(json_rows) -> None:
    rows = {row["name"]: row for row in json_rows}
    text = rows["text_forward"]
    assert text["batch"] == 100 and text["baseline_tokens"] == 77
    assert 1 < text["clipadapt_tokens"] < text["baseline_tokens"]

    prompt = rows["prompt_forward_backward"]
    assert prompt["num_classes"] == 100 and prompt["n_ctx"] == 4
    assert _positive_finite(prompt["grad_max_abs"])
    assert prompt["grad_max_abs_diff"] <= 1e-4 * max(1.0, prompt["grad_max_abs"])
    assert prompt["loss_abs_diff"] <= 1e-4

    maple = rows["maple_forward_backward"]
    assert maple["num_classes"] == 100 and maple["n_ctx"] == 2
    assert maple["depth"] == 4  # J=9 capped at the tiny towers' 4 blocks
    assert _positive_finite(maple["grad_max_abs"]) and maple["trainable_params"] > 0
    assert maple["grad_max_abs_diff"] <= 1e-4 * max(1.0, maple["grad_max_abs"])
    assert maple["loss_abs_diff"] <= 1e-4
    # The original runs all 77 tokens of every class prompt; clipadapt stops at the longest EOT.
    assert maple["baseline_saved_mib"] > maple["clipadapt_saved_mib"] > 0
    assert maple["memory_ratio"] == pytest.approx(maple["baseline_saved_mib"] / maple["clipadapt_saved_mib"])

    long_text = rows["long_text_forward"]
    assert long_text["context_length"] == 248 and long_text["batch"] == 32 and long_text["long_captions"] == 4
    assert 77 < long_text["clipadapt_tokens"] < 248  # the long captions pass 77 tokens; truncation still cuts
    assert _positive_finite(long_text["clipadapt_no_truncation"])

    region = rows["region_pooling"]
    assert region["batch"] == 16 and region["boxes_per_image"] == 64
    assert region["parity_max_abs_diff"] <= 1e-6  # one batched RoIAlign equals the per-box loop

    moe = rows["moe_block"]
    assert (moe["num_experts"], moe["top_k"]) == (4, 2) and moe["width"] == 192
    assert moe["tokens"] == 8 * 65  # the benchmark batch's image tokens (tiny-vit: 8 x 8 patches + CLS)

    eff = rows["image_forward_efficiency"]
    assert eff["unit"] == "FLOP/s" and eff["gemm_size"] == 256
    assert _positive_finite(eff["open_clip_fraction"]) and _positive_finite(eff["open_clip_flops_per_s"])
    assert eff["open_clip_fraction"] == pytest.approx(eff["open_clip_flops_per_s"] / eff["baseline"], rel=1e-9)
    for key in ("linears_flops_per_s", "linears_fraction", "fraction_of_linears"):
        assert _positive_finite(eff[key]), key
    assert eff["fraction_of_linears"] == pytest.approx(eff["clipadapt"] / eff["linears_flops_per_s"], rel=1e-9)
    assert eff["model_gflop_per_image"] == pytest.approx(benchmark.image_flops(_cfg("tiny-vit")) / 1e9)


def _cfg(name: str):
    from clipadapt.models.config import load_model_config

    return load_model_config(name)


def test_flop_count_of_vit_b_16() -> None:
    # open_clip's docs/model_profile.csv: 35.13 GFLOP per image for ViT-B-16 at 224.
    assert benchmark.image_flops(_cfg("ViT-B-16")) / 1e9 == pytest.approx(35.13, abs=0.02)


def test_table_output(capsys) -> None:
    import torch

    threads = torch.get_num_threads()
    args = ["--model", "tiny-vit", "--repeats", "1", "--rows", "text_forward", "--min-sample-s", "0", "--threads", "1"]
    try:
        assert benchmark.main(args) == 0
    finally:
        torch.set_num_threads(threads)
    out = capsys.readouterr().out
    assert "text_forward" in out and "texts/s" in out and "ratio" in out


def test_unknown_row_is_refused() -> None:
    with pytest.raises(SystemExit):
        benchmark.parse_args(["--rows", "image_forward,warp_speed"])


def test_device_is_validated() -> None:
    import torch

    assert benchmark.parse_args([]).device == "cpu"  # the default
    for bad in ("gpu", "cuda:x", "cuda0", "cpu:1"):
        with pytest.raises(SystemExit):
            benchmark.parse_args(["--device", bad])
    if not torch.cuda.is_available():  # a usage error up front, not a failure after the models are built
        with pytest.raises(SystemExit):
            benchmark.parse_args(["--device", "cuda"])
    with pytest.raises(SystemExit):
        benchmark.parse_args(["--device", f"cuda:{torch.cuda.device_count()}"])


def test_class_prompts_vary_in_length() -> None:
    prompts = benchmark.class_prompts(100)
    assert len(prompts) == len(set(prompts)) == 100
    assert all(p.startswith("a photo of a ") and p.endswith(".") for p in prompts)
    lengths = {len(p.split()) for p in prompts}
    assert min(lengths) == 5 and max(lengths) >= 8


def test_saved_for_backward_counts_activations_not_resident_tensors() -> None:
    import torch

    weight = torch.randn(256, 256, requires_grad=True)

    def forward():
        hidden = weight.exp()  # exp saves its output: 256 x 256 fp32 = 0.25 MiB
        return (hidden * 2).sum(), None  # a scalar multiply saves nothing

    assert benchmark.saved_for_backward_mib(forward, resident=[weight]) == pytest.approx(0.25)
    # mm saves both of its inputs; the resident weight is not counted, the activation is.
    x = torch.randn(64, 256)
    assert benchmark.saved_for_backward_mib(lambda: ((weight.exp() @ weight).sum(), None), [weight]) == (
        pytest.approx(0.25)
    )
    assert benchmark.saved_for_backward_mib(lambda: ((x @ weight).sum(), None), [weight]) == pytest.approx(1 / 16)
    assert benchmark.saved_for_backward_mib(lambda: ((x @ weight).sum(), None), [weight, x]) == 0.0


@pytest.mark.slow
def test_eval_stream_reports_peak_memory_of_two_real_evaluations() -> None:
    cmd = [
        sys.executable, str(SCRIPT), "--model", "tiny-vit", "--rows", "eval_stream", "--json", "--threads", "1",
        "--eval-images", "640", "--eval-workers", "2",
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-4000:]
    (row,) = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    assert row["name"] == "eval_stream" and row["images"] == 640 and row["baseline_images"] == 64
    assert _positive_finite(row["clipadapt"]) and _positive_finite(row["baseline"])  # MiB of each run
    assert row["ratio"] == pytest.approx(row["baseline"] / row["clipadapt"])
    assert _positive_finite(row["images_per_s"]) and row["num_workers"] == 2
