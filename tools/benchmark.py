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
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import statistics
import sys
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

ROWS = (
    "image_forward",
    "image_forward_efficiency",
    "text_forward",
    "prompt_forward_backward",
    "maple_forward_backward",
)
DTYPES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}

# The goals for the ratio, on CPU, fp32, ViT-B-16 (reported only for that setting).
GOALS = {
    "text_forward": 4.0,
    "prompt_forward_backward": 1.5,
    "maple_forward_backward": 2.0,
    "image_forward": 1.0,
    "image_forward_efficiency": 0.9,
}

# 100 class names of realistic, varying length (Caltech-101 / ImageNet style, as CoOp's datasets
# name them), so that the longest prompt sets clipadapt's truncation as in a real few-shot run.
CLASSNAMES = (
    "face", "leopard", "motorbike", "accordion", "airplane", "anchor", "ant", "barrel", "bass", "beaver",
    "binocular", "bonsai", "brain", "brontosaurus", "buddha", "butterfly", "camera", "cannon", "car side",
    "ceiling fan", "cellphone", "chair", "chandelier", "cougar body", "cougar face", "crab", "crayfish",
    "crocodile", "crocodile head", "cup", "dalmatian", "dollar bill", "dolphin", "dragonfly",
    "electric guitar", "elephant", "emu", "euphonium", "ewer", "ferry", "flamingo", "flamingo head",
    "garfield", "gerenuk", "gramophone", "grand piano", "hawksbill", "headphone", "hedgehog", "helicopter",
    "ibis", "inline skate", "joshua tree", "kangaroo", "ketch", "lamp", "laptop", "llama", "lobster",
    "lotus", "mandolin", "mayfly", "menorah", "metronome", "minaret", "nautilus", "octopus", "okapi",
    "pagoda", "panda", "pigeon", "pizza", "platypus", "pyramid", "revolver", "rhino", "rooster",
    "saxophone", "schooner", "scissors", "scorpion", "sea horse", "snoopy", "soccer ball", "stapler",
    "starfish", "stegosaurus", "stop sign", "strawberry", "sunflower", "tick", "trilobite", "umbrella",
    "watch", "water lilly", "wheelchair", "wild cat", "windsor chair", "wrench", "yin yang",
)  # fmt: skip
# A few long ImageNet names replace short ones, so the batch has the spread of a real label set.
LONG_CLASSNAMES = (
    "greater swiss mountain dog", "soft-coated wheaten terrier", "yellow lady's slipper",
    "black-footed ferret", "hen-of-the-woods mushroom", "american staffordshire terrier",
)  # fmt: skip
PROMPT_TEMPLATE = "a photo of a {}."


def class_prompts(count: int = 100) -> list[str]:
    names = list(LONG_CLASSNAMES) + [n for n in CLASSNAMES if n not in LONG_CLASSNAMES]
    names = (names * (count // len(names) + 1))[:count]
    return [PROMPT_TEMPLATE.format(n) for n in names]


# --------------------------------------------------------------------------------------- timing
def _sync(device: Any) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _time_once(fn: Callable[[], Any], inner: int, device: Any) -> float:
    _sync(device)
    start = time.perf_counter()
    for _ in range(inner):
        fn()
    _sync(device)
    return (time.perf_counter() - start) / inner


@dataclass
class Samples:
    seconds: list[float]  # per call, one entry per repeat
    peak_mem_mib: float | None = None  # CUDA: peak allocation during a call, above what was allocated before


def interleaved(
    fns: dict[str, Callable[[], Any]],
    *,
    warmup: int,
    repeats: int,
    device: Any,
    min_sample_s: float,
    first_s: dict[str, float] | None = None,
) -> dict[str, Samples]:
    """Time each callable ``repeats`` times, interleaved; the order alternates every repeat.

    ``first_s`` holds the duration of calls already made (the parity check is the first warm-up call);
    a callable without one gets an extra warm-up call. Each sample calls a callable ``inner`` times,
    ``inner`` chosen after warm-up so that a sample lasts at least ``min_sample_s`` (one call for a big
    model on a CPU, several for tiny models or on a GPU).
    """
    import torch

    inner = {}
    for key, fn in fns.items():
        last = (first_s or {}).get(key)
        for _ in range(warmup if last is not None else max(warmup, 1)):
            last = _time_once(fn, 1, device)
        inner[key] = max(1, math.ceil(min_sample_s / max(last, 1e-9)))
    out = {key: Samples([]) for key in fns}
    keys = list(fns)
    for rep in range(repeats):
        order = keys if rep % 2 == 0 else keys[::-1]  # A B, B A, ...: linear drift cancels
        for key in order:
            if device.type == "cuda":
                base = torch.cuda.memory_allocated(device)
                torch.cuda.reset_peak_memory_stats(device)
            out[key].seconds.append(_time_once(fns[key], inner[key], device))
            if device.type == "cuda":
                peak = (torch.cuda.max_memory_allocated(device) - base) / 2**20
                out[key].peak_mem_mib = max(out[key].peak_mem_mib or 0.0, peak)
    return out


def _spread(values: Sequence[float]) -> float:
    return (max(values) - min(values)) / statistics.median(values)


def throughput_fields(ours: Samples, theirs: Samples, work: float) -> dict[str, Any]:
    """Median throughput (``work`` units per call) of both sides, their ratio and the paired ratio."""
    a = [work / s for s in ours.seconds]
    b = [work / s for s in theirs.seconds]
    fields: dict[str, Any] = {
        "clipadapt": statistics.median(a),
        "baseline": statistics.median(b),
        "ratio_paired": statistics.median(x / y for x, y in zip(a, b)),
        "clipadapt_spread": _spread(a),
        "baseline_spread": _spread(b),
    }
    fields["ratio"] = fields["clipadapt"] / fields["baseline"]
    if ours.peak_mem_mib is not None and theirs.peak_mem_mib is not None:
        fields["clipadapt_peak_mem_mib"] = ours.peak_mem_mib
        fields["baseline_peak_mem_mib"] = theirs.peak_mem_mib
    return fields


# --------------------------------------------------------------------------------------- models
def open_clip_reference(name: str) -> Any:
    """open_clip's model for ``name`` (a zoo name, or a clipadapt/JSON config), random weights."""
    import open_clip

    if name in open_clip.list_models():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return open_clip.create_model(name, pretrained=None)
    from clipadapt.models.config import load_model_config

    cfg = {k: v for k, v in load_model_config(name).source.items() if k != "name"}
    cls = open_clip.model.CustomTextCLIP if cfg.pop("custom_text", False) else open_clip.model.CLIP
    return cls(**cfg)


def load_same_weights(clip: Any, reference: Any) -> None:
    """Copy open_clip's weights into clipadapt through the checkpoint converter, strictly."""
    from clipadapt.models.checkpoint import from_open_clip

    result = clip.load_state_dict(from_open_clip(reference.state_dict()), strict=False)
    missing = [k for k in result.missing_keys if not k.startswith("plugins.")]
    if missing or result.unexpected_keys:
        raise RuntimeError(f"weights do not fit: missing {missing}, unexpected {result.unexpected_keys}")


def image_flops(cfg: Any) -> float:
    """FLOPs (2 x MACs) of one image through the vision tower, counted from the config.

    Patch embedding + per block (QKV, out proj, MLP: (4 + 2 mlp_ratio) N D^2; QK^T and AV: 2 N^2 D)
    + the projection of the pooled token. Norms, softmax and activations are not counted.
    ViT-B/16 at 224: 17.56 GMAC = 35.1 GFLOP.
    """
    v = cfg.vision
    patches = v.grid_size**2
    tokens = patches + 1
    d = v.width
    hidden = int(d * v.mlp_ratio)
    stem = patches * 3 * v.patch_size**2 * d
    block = 4 * tokens * d * d + 2 * tokens * d * hidden + 2 * tokens * tokens * d
    head = d * cfg.embed_dim
    return 2.0 * (stem + v.layers * block + head)


# ----------------------------------------------------------------------------------------- rows
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
    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self.args.dtype == "fp32":
            return contextlib.nullcontext()
        return self.torch.autocast(self.device.type, dtype=self.dtype)

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
        if a.model == "ViT-B-16" and self.device.type == "cpu" and a.dtype == "fp32" and not a.compile:
            row["goal"] = GOALS[name]
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
        out, first_s = self.first_calls({"clipadapt": fns["clipadapt"], "open_clip": fns["open_clip"]})
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
        torch = self.torch
        import clipadapt

        n_ctx = self.args.n_ctx
        width = self.cfg.text.width
        ctx_init = torch.empty(n_ctx, width).normal_(std=0.02, generator=torch.Generator().manual_seed(2))
        ctx_init = ctx_init.to(self.device)

        # clipadapt: the base model with a CoOp-like plugin written against the public hook API.
        coop = clipadapt.create_model(self.args.model, plugins=[_text_context_plugin(ctx_init)], device=self.device)
        load_same_weights(coop, self.reference)
        coop.train()
        ctx_ours = coop.plugins["bench_ctx"].ctx
        trainable = [name for name, p in coop.named_parameters() if p.requires_grad]
        if trainable != ["plugins.bench_ctx.ctx"]:
            raise RuntimeError(f"expected only the context to train, got {trainable}")

        # Baseline: CoOp's PromptLearner + TextEncoder, on open_clip with frozen weights.
        ref = self.reference.train().requires_grad_(False)
        ctx_theirs = torch.nn.Parameter(ctx_init.clone())
        with torch.no_grad():
            embedding = ref.token_embedding(self.tokens)
        prefix, suffix = embedding[:, :1], embedding[:, 1 + n_ctx :]
        eot = self.tokens.argmax(dim=-1)
        rows = torch.arange(self.tokens.shape[0], device=self.device)
        images, labels, tokens = self.images, self.labels, self.tokens

        def loss_of(image_features: torch.Tensor, text_features: torch.Tensor, logit_scale: torch.Tensor):
            image_features = image_features / image_features.norm(dim=-1, keepdim=True)
            text_features = text_features / text_features.norm(dim=-1, keepdim=True)
            logits = logit_scale.exp() * image_features @ text_features.t()
            return torch.nn.functional.cross_entropy(logits.float(), labels), text_features

        def forward_ours() -> tuple[torch.Tensor, torch.Tensor]:
            with self.autocast():
                return loss_of(coop.encode_image(images), coop.encode_text(tokens), coop.logit_scale)

        def forward_theirs() -> tuple[torch.Tensor, torch.Tensor]:
            with self.autocast():
                image_features = ref.encode_image(images)
                n = tokens.shape[0]
                x = torch.cat([prefix, ctx_theirs.unsqueeze(0).expand(n, -1, -1), suffix], dim=1)
                x = x + ref.positional_embedding.to(x.dtype)
                x = ref.transformer(x, attn_mask=ref.attn_mask)
                x = ref.ln_final(x)
                text_features = x[rows, eot] @ ref.text_projection
                return loss_of(image_features, text_features, ref.logit_scale)

        fwd_ours, fwd_theirs = self.maybe_compile(forward_ours), self.maybe_compile(forward_theirs)

        def step(fwd: Callable[[], Any], ctx: torch.nn.Parameter) -> Callable[[], Any]:
            def call() -> tuple[torch.Tensor, torch.Tensor]:
                ctx.grad = None
                loss, text_features = fwd()
                loss.backward()
                return loss.detach(), text_features.detach()

            return call

        fns = {"clipadapt": step(fwd_ours, ctx_ours), "open_clip": step(fwd_theirs, ctx_theirs)}
        out, first_s = self.first_calls(fns)
        (loss_a, feat_a), (loss_b, feat_b) = out["clipadapt"], out["open_clip"]
        diff = (feat_a.float() - feat_b.float()).abs().max().item()
        grad_diff = (ctx_ours.grad.float() - ctx_theirs.grad.float()).abs().max().item()
        grad_scale = ctx_theirs.grad.float().abs().max().item()
        samples = self.time(fns, first_s)
        row = self.common("prompt_forward_backward") | {
            "unit": "steps/s",
            "batch": images.shape[0],
            "num_classes": tokens.shape[0],
            "n_ctx": n_ctx,
            "setup": "CoOp: learned text context, frozen image tower (no grad), CE over class prompts",
        }
        row |= throughput_fields(samples["clipadapt"], samples["open_clip"], 1.0)
        row |= {
            "parity_max_abs_diff": diff,
            "loss_abs_diff": abs(loss_a.item() - loss_b.item()),
            "grad_max_abs_diff": grad_diff,
            "grad_max_abs": grad_scale,
        }
        ref.eval()
        return row

    def maple_row(self) -> dict[str, Any]:
        """One MaPLe training step (forward, loss, backward; no optimizer update) both ways."""
        torch = self.torch
        import clipadapt
        from clipadapt_plugins.maple import MaPLe

        depth = min(self.args.maple_depth, self.cfg.text.layers, self.cfg.vision.layers)
        plugin = MaPLe(n_ctx=2, depth=depth, ctx_init="a photo of a")
        maple = clipadapt.create_model(self.args.model, plugins=[plugin], device=self.device)
        load_same_weights(maple, self.reference)
        maple.train()
        learner = maple.plugins["maple"]
        ours = [p for p in maple.parameters() if p.requires_grad]
        # The original's prompt learner, initialised identically (a copy of ours) but owned by the baseline.
        theirs = OriginalMaPLe(self.reference.train().requires_grad_(False), learner, self.tokens)
        images, labels, tokens = self.images, self.labels, self.tokens

        def loss_of(image_features: torch.Tensor, text_features: torch.Tensor, logit_scale: torch.Tensor):
            image_features = image_features / image_features.norm(dim=-1, keepdim=True)
            text_features = text_features / text_features.norm(dim=-1, keepdim=True)
            logits = logit_scale.exp() * image_features @ text_features.t()
            return torch.nn.functional.cross_entropy(logits.float(), labels), text_features

        def forward_ours() -> tuple[torch.Tensor, torch.Tensor]:
            with self.autocast():
                return loss_of(maple.encode_image(images), maple.encode_text(tokens), maple.logit_scale)

        def forward_theirs() -> tuple[torch.Tensor, torch.Tensor]:
            with self.autocast():
                image_features, text_features = theirs(images)
                return loss_of(image_features, text_features, self.reference.logit_scale)

        def step(fwd: Callable[[], Any], params: list[torch.nn.Parameter]) -> Callable[[], Any]:
            def call() -> tuple[torch.Tensor, torch.Tensor]:
                for p in params:
                    p.grad = None
                loss, text_features = fwd()
                loss.backward()
                return loss.detach(), text_features.detach()

            return call

        fwd_ours, fwd_theirs = self.maybe_compile(forward_ours), self.maybe_compile(forward_theirs)
        fns = {"clipadapt": step(fwd_ours, ours), "open_clip": step(fwd_theirs, list(theirs.parameters()))}
        resident = [*maple.parameters(), *maple.buffers(), *self.reference.parameters(), *self.reference.buffers()]
        resident += [*theirs.parameters(), theirs.prefix, theirs.suffix, images, tokens]
        saved = {
            "clipadapt": saved_for_backward_mib(forward_ours, resident),
            "open_clip": saved_for_backward_mib(forward_theirs, resident),
        }
        out, first_s = self.first_calls(fns)
        (loss_a, feat_a), (loss_b, feat_b) = out["clipadapt"], out["open_clip"]
        grad_a = torch.cat([p.grad.flatten() for p in ours])
        grad_b = torch.cat([p.grad.flatten() for p in theirs.parameters()])
        samples = self.time(fns, first_s)
        row = self.common("maple_forward_backward") | {
            "unit": "steps/s",
            "batch": images.shape[0],
            "num_classes": tokens.shape[0],
            "n_ctx": 2,
            "depth": depth,
            "trainable_params": sum(p.numel() for p in ours),
            "setup": "MaPLe: coupled deep text and vision prompts, CE over class prompts, backward to the prompts",
        }
        row |= throughput_fields(samples["clipadapt"], samples["open_clip"], 1.0)
        row |= {
            "parity_max_abs_diff": (feat_a.float() - feat_b.float()).abs().max().item(),
            "loss_abs_diff": abs(loss_a.item() - loss_b.item()),
            "grad_max_abs_diff": (grad_a.float() - grad_b.float()).abs().max().item(),
            "grad_max_abs": grad_b.float().abs().max().item(),
            "clipadapt_saved_mib": saved["clipadapt"],
            "baseline_saved_mib": saved["open_clip"],
            "memory_ratio": saved["open_clip"] / saved["clipadapt"],
        }
        self.reference.eval()
        return row


def _text_context_plugin(ctx_init: Any) -> Any:
    """A CoOp-style text context as a third party would write it: token positions 1..n_ctx replaced.

    The text embed hook sees token embeddings before the positional embedding is added, as CoOp's
    prompt learner does; ``overwrite_span`` is the building block clipadapt's prompt plugins share.
    """
    import torch
    from torch import nn

    from clipadapt.plugins import Plugin
    from clipadapt.plugins.prompts import overwrite_span

    class BenchTextContext(Plugin):
        prefix = "bench_ctx"
        hook_towers = {"embed": ("text",)}
        text_template = PROMPT_TEMPLATE

        def __init__(self, init: torch.Tensor) -> None:
            super().__init__()
            self.ctx = nn.Parameter(init.clone())

        def embed_hook(self, x: torch.Tensor, context: Any) -> torch.Tensor:
            return overwrite_span(x, self.ctx, 1)

    return BenchTextContext(ctx_init)


def saved_for_backward_mib(forward: Callable[[], Any], resident: Sequence[Any] = ()) -> float:
    """MiB of activations autograd saves for the backward of one ``forward()`` (distinct storages).

    The activation memory of a training step, counted exactly and on any device: on CPU there is no
    allocator peak to read, and on GPU it is the part of the peak that the method controls. Storages
    of the ``resident`` tensors (weights, cached embeddings: held whether or not a step runs) are not
    counted, nor views of them.
    """
    import torch

    skip = {t.untyped_storage().data_ptr() for t in resident}
    storages: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        if storage.data_ptr() not in skip:
            storages[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss, _ = forward()
    del loss
    return sum(storages.values()) / 2**20


class OriginalMaPLe:
    """MaPLe computed the way the original code does it, on open_clip's model (the baseline).

    ``CustomCLIP`` of ``trainers/maple.py``: every class prompt is the full ``context_length`` tokens
    (SOS prefix, learned context, frozen suffix), deep prompts are written into the token sequence
    before blocks ``1..J-1`` of ``nn.MultiheadAttention`` blocks under the float causal mask; vision
    prompts are appended after CLS and patches before ``ln_pre``. The prompt parameters are copies of
    clipadapt's, so both sides start from the same values and must give the same loss and gradients.
    """

    def __init__(self, model: Any, learner: Any, tokens: Any) -> None:
        import copy

        import torch

        self.model = model
        self.n_ctx, self.depth = learner.n_ctx, learner.depth
        self.ctx = torch.nn.Parameter(learner.ctx.detach().clone())
        self.proj = copy.deepcopy(learner.proj)
        self.deep_text = [torch.nn.Parameter(p.detach().clone()) for p in learner.compound_prompts_text]
        self.deep_proj = copy.deepcopy(learner.compound_prompt_projections)
        with torch.no_grad():
            embedding = model.token_embedding(tokens)
        self.prefix, self.suffix = embedding[:, :1], embedding[:, 1 + self.n_ctx :]
        self.eot = tokens.argmax(dim=-1)

    def parameters(self) -> Iterator[Any]:
        yield self.ctx
        yield from self.proj.parameters()
        yield from self.deep_text
        yield from self.deep_proj.parameters()

    def __call__(self, images: Any) -> tuple[Any, Any]:
        import torch

        deep_vision = [proj(p) for proj, p in zip(self.deep_proj, self.deep_text)]
        model, visual, n = self.model, self.model.visual, self.n_ctx
        # Image encoder (VisionTransformer_MaPLe.forward).
        x = visual.conv1(images).flatten(2).transpose(1, 2)
        cls = visual.class_embedding.to(x.dtype).expand(x.shape[0], 1, -1)
        x = torch.cat([cls, x], dim=1) + visual.positional_embedding.to(x.dtype)
        x = torch.cat([x, self.proj(self.ctx).expand(x.shape[0], -1, -1).to(x.dtype)], dim=1)
        x = visual.ln_pre(x)
        for i, block in enumerate(visual.transformer.resblocks):
            if 0 < i < self.depth:
                x = torch.cat([x[:, :-n], deep_vision[i - 1].expand(x.shape[0], -1, -1).to(x.dtype)], dim=1)
            x = block(x)
        image_features = visual.ln_post(x[:, 0]) @ visual.proj
        # Text encoder (TextEncoder.forward) over all class prompts at full length.
        count = self.prefix.shape[0]
        x = torch.cat([self.prefix, self.ctx.expand(count, -1, -1), self.suffix], dim=1)
        x = x + model.positional_embedding.to(x.dtype)
        for i, block in enumerate(model.transformer.resblocks):
            if 0 < i < self.depth:
                x = torch.cat([x[:, :1], self.deep_text[i - 1].expand(count, -1, -1).to(x.dtype), x[:, 1 + n :]], 1)
            x = block(x, attn_mask=model.attn_mask)
        x = model.ln_final(x)
        text_features = x[torch.arange(count, device=x.device), self.eot] @ model.text_projection
        return image_features, text_features


# ------------------------------------------------------------------------------------------ CLI
def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--model", default="ViT-B-16", help="open_clip config name, clipadapt config or JSON path")
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    parser.add_argument("--dtype", default="fp32", choices=sorted(DTYPES), help="fp32, or bf16/fp16 via autocast")
    parser.add_argument("--rows", default=",".join(ROWS), help=f"comma-separated subset of {','.join(ROWS)}")
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
    unknown = sorted(set(rows) - set(ROWS))
    if unknown or not rows:
        parser.error(f"unknown rows {unknown}; choose from {', '.join(ROWS)}")
    args.rows = [r for r in ROWS if r in rows]
    if args.repeats < 1 or args.batch < 1 or args.num_classes < 1 or args.n_ctx < 1:
        parser.error("--repeats, --batch, --num-classes and --n-ctx must be >= 1")
    return args


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def small_op_ms(threads: int) -> float:
    """Median time of one small elementwise op (an add of two [1500, 512] tensors) at ``threads`` threads.

    On an idle machine this takes ~0.1 ms at any thread count; when other processes occupy the cores,
    every multi-threaded op waits for a descheduled thread (milliseconds), which dominates models
    with many small ops. The rows report it next to the single-thread time to flag such runs.
    """
    import torch

    saved = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        x, y = torch.randn(1500, 512), torch.randn(1500, 512)
        times = []
        for i in range(60):
            start = time.perf_counter()
            torch.add(x, y)
            if i >= 10:
                times.append(time.perf_counter() - start)
        return statistics.median(times) * 1e3
    finally:
        torch.set_num_threads(saved)


def run(args: argparse.Namespace) -> Iterator[dict[str, Any]]:
    import torch

    threads = args.threads or usable_cores()
    torch.set_num_threads(threads)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("--device cuda but torch sees no CUDA device")
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
        if "clipadapt_spread" in r:
            notes.append(f"spread {_fmt(r['clipadapt_spread'])}/{_fmt(r['baseline_spread'])}")
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
