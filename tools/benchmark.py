#!/usr/bin/env python
"""clipadapt against open_clip: same random weights, same inputs, same run, as ratios.

A benchmark, not a test: it prints a table (or, with ``--json``, one JSON object per row) and
asserts nothing about speed. Every row has ``name``, ``clipadapt``, ``baseline``, ``unit`` and
``ratio`` = clipadapt / baseline, higher is better for clipadapt, plus what the row needs.

Rows:

``image_forward``
    Image tower forward in inference (``torch.inference_mode``, eval): images/s.
``text_forward``
    Text tower forward over 100 class prompts ``"a photo of a {classname}."``: texts/s.
    open_clip runs all ``context_length`` tokens under its float causal mask; clipadapt runs only up
    to the longest end-of-text token of the batch.
``prompt_forward_backward``
    One CoOp step without the optimizer update: a learned text context (``n_ctx`` tokens replacing
    positions 1..n_ctx of the 100 class prompts, i.e. the words "a photo of a") and a batch of
    images through the frozen image tower (no gradient needed there: the tower is frozen and has no
    prompts, as in CoOp), cosine logits, cross-entropy, backward. Gradients reach only the context.
    clipadapt: ``create_model`` with a tiny plugin that uses the public ``embed_hook`` on the text
    tower. Baseline: CoOp's original ``PromptLearner``/``TextEncoder`` on open_clip (token embeddings
    precomputed, context concatenated between the SOS prefix and the class suffix, all 77 tokens,
    ``model.transformer(x, attn_mask=model.attn_mask)``, ``ln_final``, argmax pooling, projection).
    Unit: steps/s.
``maple_forward_backward``
    One MaPLe training step without the optimizer update (``n_ctx`` 2, depth ``--maple-depth``, 9 as
    in base-to-novel, capped at the tower depth): coupled deep prompts in both towers, a batch of
    images and the 100 class prompts, cosine logits, cross-entropy, backward to the prompt learner.
    clipadapt: ``create_model(..., plugins=[MaPLe(...)])``. Baseline: the original ``CustomCLIP``
    computation (:class:`OriginalMaPLe`) on open_clip: full 77-token prompts, deep prompts written
    into the sequence between ``nn.MultiheadAttention`` blocks. Steps/s, plus the activation memory
    autograd saves for backward (``*_saved_mib``, ``memory_ratio`` = baseline / clipadapt) and, on
    CUDA, the allocator peak. Both sides start from the same prompt values: loss, text features and
    gradients are compared.
``long_text_forward``
    Long-CLIP: text encoding at context 248 (positions stretched by the ``LongCLIP`` plugin) of 28
    class prompts and 4 long captions (~200 tokens). clipadapt runs to the longest end-of-text token;
    ``clipadapt_no_truncation`` is the same model over all 248 positions; the baseline is open_clip at
    248 positions with the same weights (the exported model). Texts/s.
``region_pooling``
    FG-CLIP / CLOC region features: 64 boxes on each of 16 dense maps (ViT-B/16: 512 x 14 x 14), one
    batched ``torchvision.ops.roi_align`` call (``clipadapt.models.dense.pool_boxes``) against a
    per-box loop of single-box ``roi_align`` calls. Boxes/s.
``moe_block``
    CLIP-MoE: one upcycled MLP (4 experts, top-2, grouped dispatch) against two dense MLP calls on
    the same image tokens, forward and backward. ``ratio`` = dense time / MoE time (goal >= 0.8, i.e.
    the MoE costs at most 1.25x the two dense calls). Tokens/s.
``eval_stream`` (only when named in ``--rows``)
    Load: ``tools/test.py`` evaluates the zero-shot tiny-CLIP config on ``--eval-images`` synthetic test
    images and on a tenth of them, each in its own process; peak RSS of each. ``ratio`` = small / large
    (1.0 = memory does not grow with the data set: the evaluation streams).
``dist_sharding``, ``dist_loss`` (only when named in ``--rows``)
    Sharded (FSDP2) against DDP full fine-tuning on 2 gloo ranks: state memory per rank, peak RSS,
    steps/s; the contrastive loss's memory at a global batch of 4,096, full against large-batch.
    See :mod:`benchmarks.dist_rows`.
``image_forward_efficiency``
    Achieved model FLOP/s of clipadapt's image forward (FLOPs counted analytically from the config:
    2 x MACs of the patch embedding, every block and the head) divided by the FLOP/s of one large
    square GEMM (``torch.mm``, ``--gemm-size``) in the benchmark dtype, measured interleaved with
    the model in the same run. ``clipadapt`` = model FLOP/s, ``baseline`` = GEMM FLOP/s, ``ratio``
    = the fraction; ``open_clip_fraction`` is open_clip's. ``linears_fraction`` is the rate of the
    tower's linear layers alone (exact shapes, nothing else) over the GEMM's: the eager ceiling of any
    implementation of this model at this batch; ``fraction_of_linears`` is clipadapt against it.

Method: both models get identical random weights (open_clip's initialisation, loaded into
clipadapt through ``clipadapt.models.checkpoint.from_open_clip``); ``parity_max_abs_diff`` reports
the largest difference of their outputs on the benchmark inputs. After warm-up, the callables of a
row are timed interleaved, in an order that alternates every repeat (A B, B A, ...) so slow drift of
a shared machine hits both sides alike; each row reports median throughput. ``ratio_paired`` is
the median of the per-repeat ratios, the more drift-robust figure; ``*_spread`` is (max - min) /
median of a side's samples. ``small_op_ms`` (CPU) times one small elementwise op at the run's
thread count and at one thread: when other processes hold the cores, every multi-threaded op stalls
for milliseconds and the run measures the stalls (the table then says so).

Examples::

    python tools/benchmark.py                                    # ViT-B-16, CPU, fp32, all rows
    python tools/benchmark.py --json --rows text_forward,image_forward
    python tools/benchmark.py --device cuda --dtype bf16 --batch 64 --repeats 20
    python tools/gpu_check.py --out gpu_report                   # every CUDA check, bf16/fp16, eager/compile

On CUDA, samples are timed between CUDA events (synchronised) and rows report the allocator's peak
(``torch.cuda.max_memory_allocated``) of each side. In bf16/fp16, ``image_forward`` also times both
towers with their weights cast to the dtype (open_clip's fastest inference, ``*_pure``):
``ratio_vs_fastest`` = clipadapt's best / open_clip's best, with TFLOP/s and, for a known GPU, the
fraction of its dense bf16 peak.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from collections.abc import Iterator, Sequence
from typing import Any

# benchmarks/ sits beside tools/, outside the installed package (as timm keeps its benchmark.py).
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks import (
    DTYPES,
    Bench,
    class_prompts,
    image_flops,
    saved_for_backward_mib,
    small_op_ms,
    usable_cores,
)
from benchmarks.dist_rows import dist_loss_row, dist_sharding_row
from benchmarks.load_rows import eval_stream_row
from benchmarks.plugin_rows import long_text_row, moe_block_row, region_pooling_row

__all__ = ["ROWS", "class_prompts", "image_flops", "main", "parse_args", "print_table", "run", "saved_for_backward_mib"]

ROWS = (
    "image_forward",
    "image_forward_efficiency",
    "text_forward",
    "prompt_forward_backward",
    "maple_forward_backward",
    "long_text_forward",
    "region_pooling",
    "moe_block",
    "eval_stream",
)
DIST_ROWS = ("dist_sharding", "dist_loss")  # two processes each: named on demand, like eval_stream
DEFAULT_ROWS = ROWS[:-1]  # eval_stream measures memory over a whole evaluation run: ask for it by name


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--model", default="ViT-B-16", help="open_clip config name, clipadapt config or JSON path")
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda[:N]")
    parser.add_argument("--dtype", default="fp32", choices=sorted(DTYPES), help="fp32, or bf16/fp16 via autocast")
    parser.add_argument("--rows", default=",".join(DEFAULT_ROWS), help=f"comma-separated subset of {','.join(ROWS)}")
    parser.add_argument("--eval-images", type=int, default=10000, help="test images of the eval_stream row")
    parser.add_argument("--eval-workers", type=int, default=2, help="data loader workers of the eval_stream row")
    parser.add_argument("--repeats", type=int, default=5, help="timed samples per side and row (median reported)")
    parser.add_argument(
        "--warmup", type=int, default=1, help="untimed calls per side before timing (3 at least with --compile)"
    )
    parser.add_argument("--batch", type=int, default=8, help="images per forward")
    parser.add_argument("--num-classes", type=int, default=100, help="class prompts of the text rows")
    parser.add_argument("--n-ctx", type=int, default=4, help="learned context tokens of prompt_forward_backward")
    parser.add_argument("--maple-depth", type=int, default=9, help="prompt depth J of maple_forward_backward")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: the usable CPU cores)")
    parser.add_argument("--gemm-size", type=int, default=4096, help="square GEMM of the efficiency row")
    parser.add_argument("--min-sample-s", type=float, default=0.2, help="a timed sample lasts at least this long")
    parser.add_argument("--compile", action="store_true", help="torch.compile both sides' forwards")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="one JSON object per row on stdout")
    args = parser.parse_args(argv)
    rows = [r.strip() for r in args.rows.split(",") if r.strip()]
    unknown = sorted(set(rows) - set(ROWS) - set(DIST_ROWS))
    if unknown or not rows:
        parser.error(f"unknown rows {unknown}; choose from {', '.join(ROWS + DIST_ROWS)}")
    args.rows = [r for r in ROWS + DIST_ROWS if r in rows]
    if args.repeats < 1 or args.batch < 1 or args.num_classes < 1 or args.n_ctx < 1:
        parser.error("--repeats, --batch, --num-classes and --n-ctx must be >= 1")
    check_device(parser, args.device)
    return args


def check_device(parser: argparse.ArgumentParser, device: str) -> None:
    """``cpu``, or ``cuda``/``cuda:N`` of a GPU that torch sees; anything else is a usage error."""
    if not re.fullmatch(r"cpu|cuda(:\d+)?", device):
        parser.error(f"--device must be cpu, cuda or cuda:N, got {device!r}")
    if device.startswith("cuda"):
        import torch

        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        index = int(device.partition(":")[2] or 0)
        if index >= count:
            parser.error(f"--device {device}: torch sees {count} CUDA device(s)")


def run(args: argparse.Namespace) -> Iterator[dict[str, Any]]:
    import torch

    threads = args.threads or usable_cores()
    torch.set_num_threads(threads)
    probe = {}
    if args.device == "cpu":
        probe = {"small_op_ms": small_op_ms(threads), "small_op_ms_1_thread": small_op_ms(1)}
    bench = Bench(args)
    rows: list[dict[str, Any]] = []
    if "image_forward" in args.rows or "image_forward_efficiency" in args.rows:
        rows += bench.image_rows("image_forward" in args.rows, "image_forward_efficiency" in args.rows)
    for row in rows:
        yield row | probe
    if "text_forward" in args.rows:
        yield bench.text_row() | probe
    if "prompt_forward_backward" in args.rows:
        yield bench.prompt_row() | probe
    if "maple_forward_backward" in args.rows:
        yield bench.maple_row() | probe
    plugin_rows = {
        "long_text_forward": long_text_row,
        "region_pooling": region_pooling_row,
        "moe_block": moe_block_row,
        "eval_stream": eval_stream_row,
        "dist_sharding": dist_sharding_row,
        "dist_loss": dist_loss_row,
    }
    for name, row in plugin_rows.items():
        if name in args.rows:
            yield row(bench) | probe


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        if value == 0 or 1e-3 <= abs(value) < 1e5:
            return f"{value:.4g}"
        return f"{value:.3e}"
    return str(value)


def print_table(rows: list[dict[str, Any]], file: Any = None) -> None:
    file = file or sys.stdout
    head = ["row", "clipadapt", "baseline", "unit", "ratio", "paired", "goal", "parity", "notes"]
    body = []
    for r in rows:
        notes = []
        if r["name"] == "image_forward_efficiency":
            notes.append(f"open_clip fraction {_fmt(r['open_clip_fraction'])}")
            notes.append(f"linears alone {_fmt(r['linears_fraction'])} of GEMM")
            notes.append(f"{_fmt(r['model_gflop_per_image'])} GFLOP/img, GEMM {r['gemm_size']}^3")
        if r["name"] == "text_forward":
            notes.append(f"{r['clipadapt_tokens']} vs {r['baseline_tokens']} tokens")
        if r["name"] == "prompt_forward_backward":
            notes.append(f"{r['num_classes']} classes, n_ctx {r['n_ctx']}, grad diff {_fmt(r['grad_max_abs_diff'])}")
        if r["name"] == "maple_forward_backward":
            notes.append(f"{r['num_classes']} classes, J={r['depth']}, grad diff {_fmt(r['grad_max_abs_diff'])}")
            notes.append(
                f"saved for backward {_fmt(r['clipadapt_saved_mib'])}/{_fmt(r['baseline_saved_mib'])} MiB "
                f"(x{_fmt(r['memory_ratio'])} less)"
            )
        if r["name"] == "long_text_forward":
            notes.append(f"{r['clipadapt_tokens']} of {r['context_length']} tokens")
            notes.append(f"no truncation {_fmt(r['clipadapt_no_truncation'])} texts/s")
        if r["name"] in ("region_pooling", "moe_block"):
            notes.append(f"baseline: {r['baseline_kind']}")
        if "clipadapt_spread" in r:
            notes.append(f"spread {_fmt(r['clipadapt_spread'])}/{_fmt(r['baseline_spread'])}")
        if "ratio_vs_fastest" in r:
            notes.append(f"vs open_clip fastest {_fmt(r['ratio_vs_fastest'])}, {_fmt(r['clipadapt_tflops'])} TFLOP/s")
            if "clipadapt_fraction_of_peak" in r:
                notes.append(f"{_fmt(r['clipadapt_fraction_of_peak'])} of {r['device_name']} bf16 peak")
        if "clipadapt_peak_mem_mib" in r:
            notes.append(f"peak MiB {_fmt(r['clipadapt_peak_mem_mib'])}/{_fmt(r['baseline_peak_mem_mib'])}")
        body.append(
            [
                r["name"],
                _fmt(r["clipadapt"]),
                _fmt(r["baseline"]),
                r["unit"],
                _fmt(r["ratio"]),
                _fmt(r.get("ratio_paired", "")),
                _fmt(r.get("goal", "")),
                _fmt(r.get("parity_max_abs_diff", "")),
                "; ".join(notes),
            ]
        )
    widths = [max(len(str(x)) for x in col) for col in zip(head, *body)]
    for line in [head, ["-" * w for w in widths], *body]:
        print("  ".join(str(x).ljust(w) for x, w in zip(line, widths)).rstrip(), file=file)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    rows = []
    start = time.perf_counter()
    for row in run(args):
        rows.append(row)
        if args.json:
            print(json.dumps(row), flush=True)
        else:
            print(f"[{time.perf_counter() - start:6.1f}s] {row['name']} done", file=sys.stderr, flush=True)
    if not args.json:
        r0 = rows[0]
        print(
            f"clipadapt vs open_clip: {args.model}, {r0['device']}, {args.dtype}, {r0['threads']} threads, "
            f"batch {args.batch}, {args.repeats} repeats, compile={args.compile}; higher ratio = clipadapt faster"
        )
        print_table(rows)
        load = max((r.get("host_load_1m", 0.0) for r in rows), default=0.0)
        if r0.get("small_op_ms", 0.0) > 5 * r0.get("small_op_ms_1_thread", float("inf")):
            print(
                f"warning: a small op takes {r0['small_op_ms']:.2f} ms at {r0['threads']} threads but "
                f"{r0['small_op_ms_1_thread']:.2f} ms at 1: other processes hold the cores and every parallel op "
                "stalls; these timings measure the stalls. Rerun on an idle machine or with --threads 1"
            )
        elif load > r0["threads"]:
            print(
                f"note: host load average {load:.1f} exceeds {r0['threads']} threads: timings are contended, and "
                "multi-threaded small ops stall on descheduled threads; --threads 1 is more robust on a busy host"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
