"""The rows: each times clipadapt against its baseline on the same weights and inputs, in one run."""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import time
from collections.abc import Callable, Iterator
from typing import Any

from .inputs import PROMPT_TEMPLATE, class_prompts, image_flops, load_same_weights, open_clip_reference
from .timing import Samples, _spread, _sync, interleaved, saved_for_backward_mib, throughput_fields

DTYPES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}

GOALS = {
    "text_forward": 4.0,
    "prompt_forward_backward": 1.5,
    "maple_forward_backward": 2.0,
    "image_forward": 1.0,
    "image_forward_efficiency": 0.9,
    "moe_block": 0.8,  # the MoE block at most 1.25x the cost of two dense MLP calls
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
        reference_setting = a.model == "ViT-B-16" and self.device.type == "cpu" and a.dtype == "fp32"
        if reference_setting and not a.compile and name in GOALS:
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
            return classification_loss(image_features, text_features, logit_scale, labels)

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
            return classification_loss(image_features, text_features, logit_scale, labels)

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
