"""The rows: each times clipadapt against its baseline on the same weights and inputs, in one run."""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

from .inputs import class_prompts, image_flops, load_same_weights, open_clip_reference
from .timing import (
    Samples,
    _spread,
    _sync,
    interleaved,
    peak_bf16_tflops,
    throughput_fields,
)

DTYPES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}

GOALS = {
    "text_forward": 4.0,
    "prompt_forward_backward": 1.5,
    "maple_forward_backward": 2.0,
    "image_forward": 1.0,
    "image_forward_efficiency": 0.9,
    "moe_block": 0.8,  # the MoE block at most 1.25x the cost of two dense MLP calls
}
# Issue 21's goals on a GPU (ViT-B-16, bf16 or fp16, eager or compiled): image forward at least open_clip's
# fastest setting, text and prompt-learning steps at least twice the original's throughput.
GPU_GOALS = {
    "image_forward": 1.0,
    "text_forward": 2.0,
    "prompt_forward_backward": 2.0,
    "maple_forward_backward": 2.0,
}


def classification_loss(image_features: Any, text_features: Any, logit_scale: Any, labels: Any) -> tuple[Any, Any]:
    """CLIP's prompt-learning loss: cross-entropy of scaled cosine logits; also the normalised text features."""
    import torch

    image_features = image_features / image_features.norm(dim=-1, keepdim=True)
    text_features = text_features / text_features.norm(dim=-1, keepdim=True)
    logits = logit_scale.exp() * image_features @ text_features.t()
    return torch.nn.functional.cross_entropy(logits.float(), labels), text_features


class Bench:
    """The models, inputs and settings shared by the rows of one run."""

    def __init__(self, args: argparse.Namespace) -> None:
        import torch

        import clipadapt

        self.args = args
        self.torch = torch
        self.device = torch.device(args.device)
        self.dtype = getattr(torch, DTYPES[args.dtype])
        torch.manual_seed(args.seed)
        self.reference = open_clip_reference(args.model).to(self.device)
        self.clip = clipadapt.create_model(args.model, device=self.device)
        load_same_weights(self.clip, self.reference)
        self.cfg = self.clip.cfg
        gen = torch.Generator().manual_seed(args.seed + 1)
        size = self.clip.image_size
        self.images = torch.randn(args.batch, 3, size, size, generator=gen).to(self.device)
        self.prompts = class_prompts(args.num_classes)
        self.tokens = clipadapt.get_tokenizer(model=self.clip)(self.prompts).to(self.device)
        self.labels = torch.randint(0, len(self.prompts), (args.batch,), generator=gen).to(self.device)

    # ---------------------------------------------------------------------------------- helpers
    def autocast(self, dtype: str | None = None) -> contextlib.AbstractContextManager[Any]:
        """Autocast to the run's dtype (or ``dtype``: fp32, bf16, fp16); fp32 autocasts nothing."""
        dtype = dtype or self.args.dtype
        if dtype == "fp32":
            return contextlib.nullcontext()
        return self.torch.autocast(self.device.type, dtype=getattr(self.torch, DTYPES[dtype]))

    def maybe_compile(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        return self.torch.compile(fn) if self.args.compile else fn

    def time(self, fns: dict[str, Callable[[], Any]], first_s: dict[str, float] | None = None) -> dict[str, Samples]:
        """Interleaved samples; ``--warmup`` counts the calls already made (in ``first_s``)."""
        a = self.args
        # Compiled callables may recompile on their second or third call (dynamic shapes): warm up longer.
        warmup = max(a.warmup, 3) if a.compile else a.warmup
        warmup = warmup - 1 if first_s else warmup
        return interleaved(
            fns,
            warmup=max(warmup, 0),
            repeats=a.repeats,
            device=self.device,
            min_sample_s=a.min_sample_s,
            first_s=first_s,
        )

    def first_calls(self, fns: dict[str, Callable[[], Any]]) -> tuple[dict[str, Any], dict[str, float]]:
        """Call each callable once (the first warm-up call): its output and its duration."""
        outputs, seconds = {}, {}
        for key, fn in fns.items():
            _sync(self.device)
            start = time.perf_counter()
            outputs[key] = fn()
            _sync(self.device)
            seconds[key] = time.perf_counter() - start
        return outputs, seconds

    def common(self, name: str) -> dict[str, Any]:
        a = self.args
        row: dict[str, Any] = {
            "name": name,
            "model": a.model,
            "device": str(self.device),
            "dtype": a.dtype,
            "threads": self.torch.get_num_threads(),
            "compile": a.compile,
            "repeats": a.repeats,
        }
        if hasattr(os, "getloadavg"):
            row["host_load_1m"] = os.getloadavg()[0]  # above the thread count, timings are contended
        reference_setting = a.model == "ViT-B-16" and self.device.type == "cpu" and a.dtype == "fp32"
        if reference_setting and not a.compile and name in GOALS:
            row["goal"] = GOALS[name]
        if a.model == "ViT-B-16" and self.device.type == "cuda" and a.dtype != "fp32" and name in GPU_GOALS:
            row["goal"] = GPU_GOALS[name]
        return row

    # ------------------------------------------------------------------------------------- rows
    def image_rows(self, want_forward: bool, want_efficiency: bool) -> list[dict[str, Any]]:
        """``image_forward`` and ``image_forward_efficiency``, from one interleaved measurement."""
        torch, images = self.torch, self.images
        self.clip.eval()
        self.reference.eval()
        ours = self.maybe_compile(self.clip.encode_image)
        theirs = self.maybe_compile(self.reference.encode_image)
        fns: dict[str, Callable[[], Any]] = {}
        n = self.args.gemm_size
        if want_efficiency:
            gen = torch.Generator().manual_seed(0)
            a = torch.randn(n, n, generator=gen).to(self.device, self.dtype)
            b = torch.randn(n, n, generator=gen).to(self.device, self.dtype)
            fns["gemm"] = lambda: torch.mm(a, b)
            linears, linear_flops = self.linears_only()

        def run(fn: Callable[[torch.Tensor], torch.Tensor]) -> Callable[[], Any]:
            def call() -> Any:
                with torch.inference_mode(), self.autocast():
                    return fn(images)

            return call

        fns["clipadapt"], fns["open_clip"] = run(ours), run(theirs)  # clipadapt next to GEMM and open_clip
        if want_efficiency:
            fns["linears"] = linears
        pure = self.args.dtype != "fp32"
        if pure:  # weights cast to the dtype, no autocast: open_clip's fastest inference ("pure_bf16")
            fns["clipadapt_pure"], fns["open_clip_pure"] = self.pure_image_forwards()
        firsts = [k for k in ("clipadapt", "open_clip", "clipadapt_pure", "open_clip_pure") if k in fns]
        out, first_s = self.first_calls({k: fns[k] for k in firsts})
        diff = (out["clipadapt"].float() - out["open_clip"].float()).abs().max().item()
        samples = self.time(fns, first_s)
        batch = images.shape[0]
        rows = []
        if want_forward:
            row = self.common("image_forward") | {
                "unit": "images/s",
                "batch": batch,
                "image_size": self.clip.image_size,
            }
            row |= throughput_fields(samples["clipadapt"], samples["open_clip"], batch)
            row["parity_max_abs_diff"] = diff
            if pure:
                row |= self.fastest_fields(samples, out, batch)
            rows.append(row)
        if want_efficiency:
            flops = image_flops(self.cfg)
            model = throughput_fields(samples["clipadapt"], samples["open_clip"], batch * flops)
            gemm_rate = [2.0 * n**3 / s for s in samples["gemm"].seconds]
            gemm = statistics.median(gemm_rate)
            row = self.common("image_forward_efficiency") | {"unit": "FLOP/s", "batch": batch}
            row |= {
                "clipadapt": model["clipadapt"],
                "baseline": gemm,
                "ratio": model["clipadapt"] / gemm,
                "ratio_paired": statistics.median(
                    batch * flops / s / g for s, g in zip(samples["clipadapt"].seconds, gemm_rate)
                ),
                "open_clip_flops_per_s": model["baseline"],
                "open_clip_fraction": model["baseline"] / gemm,
                "gemm_size": n,
                # The tower's own linear layers alone (exact shapes, weights and biases, nothing else):
                # the rate no implementation of this model beats in eager mode.
                "linears_flops_per_s": statistics.median(linear_flops / s for s in samples["linears"].seconds),
                "gemm_spread": _spread(gemm_rate),
                "model_gflop_per_image": flops / 1e9,
                "parity_max_abs_diff": diff,
            }
            row["linears_fraction"] = row["linears_flops_per_s"] / gemm
            row["fraction_of_linears"] = model["clipadapt"] / row["linears_flops_per_s"]
            rows.append(row)
        return rows

    def pure_image_forwards(self) -> tuple[Callable[[], Any], Callable[[], Any]]:
        """Both image towers with their weights cast to the run's dtype, in inference mode without autocast."""
        import copy

        torch = self.torch
        images = self.images.to(self.dtype)
        ours = self.maybe_compile(copy.deepcopy(self.clip).to(self.dtype).eval().encode_image)
        theirs = self.maybe_compile(copy.deepcopy(self.reference).to(self.dtype).eval().encode_image)

        def run(fn: Callable[[Any], Any]) -> Callable[[], Any]:
            def call() -> Any:
                with torch.inference_mode():
                    return fn(images)

            return call

        return run(ours), run(theirs)

    def fastest_fields(self, samples: dict[str, Samples], out: dict[str, Any], batch: int) -> dict[str, Any]:
        """Each side at its fastest setting (autocast or cast weights), their ratio, TFLOP/s against the card's peak."""
        best = {
            side: max(statistics.median(batch / s for s in samples[key].seconds) for key in (side, f"{side}_pure"))
            for side in ("clipadapt", "open_clip")
        }
        flops = image_flops(self.cfg)
        name = self.torch.cuda.get_device_name(self.device) if self.device.type == "cuda" else "cpu"
        fields: dict[str, Any] = {
            "clipadapt_pure": statistics.median(batch / s for s in samples["clipadapt_pure"].seconds),
            "open_clip_pure": statistics.median(batch / s for s in samples["open_clip_pure"].seconds),
            "clipadapt_best": best["clipadapt"],
            "open_clip_fastest": best["open_clip"],
            "ratio_vs_fastest": best["clipadapt"] / best["open_clip"],
            "parity_pure_max_abs_diff": (out["clipadapt_pure"].float() - out["open_clip_pure"].float())
            .abs()
            .max()
            .item(),
            "device_name": name,
            "clipadapt_tflops": best["clipadapt"] * flops / 1e12,
            "open_clip_tflops": best["open_clip"] * flops / 1e12,
        }
        peak = peak_bf16_tflops(name)
        if peak is not None:
            fields["peak_bf16_tflops"] = peak
            fields["clipadapt_fraction_of_peak"] = fields["clipadapt_tflops"] / peak
        return fields

    def linears_only(self) -> tuple[Callable[[], Any], float]:
        """The image tower's linear layers (QKV, out, MLP) on activations of the benchmark's shapes, alone."""
        torch = self.torch
        linears = [
            m
            for block in self.clip.visual.transformer.resblocks
            for m in block.modules()
            if isinstance(m, torch.nn.Linear)
        ]
        rows = self.images.shape[0] * (self.cfg.vision.grid_size**2 + 1)
        gen = torch.Generator().manual_seed(3)
        inputs = {f: torch.randn(rows, f, generator=gen).to(self.device) for f in {m.in_features for m in linears}}
        flops = sum(2.0 * rows * m.in_features * m.out_features for m in linears)

        def call() -> None:
            with torch.inference_mode(), self.autocast():
                for m in linears:
                    torch.nn.functional.linear(inputs[m.in_features], m.weight, m.bias)

        return call, flops

    def text_row(self) -> dict[str, Any]:
        torch, tokens = self.torch, self.tokens
        self.clip.eval()
        self.reference.eval()
        ours = self.maybe_compile(self.clip.encode_text)
        theirs = self.maybe_compile(self.reference.encode_text)

        def run(fn: Callable[[torch.Tensor], torch.Tensor]) -> Callable[[], Any]:
            def call() -> Any:
                with torch.inference_mode(), self.autocast():
                    return fn(tokens)

            return call

        fns = {"clipadapt": run(ours), "open_clip": run(theirs)}
        out, first_s = self.first_calls(fns)
        diff = (out["clipadapt"].float() - out["open_clip"].float()).abs().max().item()
        samples = self.time(fns, first_s)
        row = self.common("text_forward") | {"unit": "texts/s", "batch": tokens.shape[0]}
        row |= throughput_fields(samples["clipadapt"], samples["open_clip"], tokens.shape[0])
        row |= {
            "clipadapt_tokens": int(self.clip.text.eot_index(tokens).max()) + 1,
            "baseline_tokens": tokens.shape[1],
            "parity_max_abs_diff": diff,
        }
        return row

    def prompt_row(self) -> dict[str, Any]:
        from .prompt_rows import prompt_row

        return prompt_row(self)

    def maple_row(self) -> dict[str, Any]:
        from .prompt_rows import maple_row

        return maple_row(self)
