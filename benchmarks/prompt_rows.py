"""The prompt-learning rows: a CoOp step and a MaPLe step, each against the original way on open_clip."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .baselines import OriginalMaPLe, text_context_plugin
from .inputs import load_same_weights
from .rows import Bench, classification_loss
from .timing import saved_for_backward_mib, throughput_fields


def prompt_row(bench: Bench) -> dict[str, Any]:
    torch = bench.torch
    import clipadapt

    n_ctx = bench.args.n_ctx
    width = bench.cfg.text.width
    ctx_init = torch.empty(n_ctx, width).normal_(std=0.02, generator=torch.Generator().manual_seed(2))
    ctx_init = ctx_init.to(bench.device)

    # clipadapt: the base model with a CoOp-like plugin written against the public hook API.
    coop = clipadapt.create_model(bench.args.model, plugins=[text_context_plugin(ctx_init)], device=bench.device)
    load_same_weights(coop, bench.reference)
    coop.train()
    ctx_ours = coop.plugins["bench_ctx"].ctx
    trainable = [name for name, p in coop.named_parameters() if p.requires_grad]
    if trainable != ["plugins.bench_ctx.ctx"]:
        raise RuntimeError(f"expected only the context to train, got {trainable}")

    # Baseline: CoOp's PromptLearner + TextEncoder, on open_clip with frozen weights.
    ref = bench.reference.train().requires_grad_(False)
    ctx_theirs = torch.nn.Parameter(ctx_init.clone())
    with torch.no_grad():
        embedding = ref.token_embedding(bench.tokens)
    prefix, suffix = embedding[:, :1], embedding[:, 1 + n_ctx :]
    eot = bench.tokens.argmax(dim=-1)
    rows = torch.arange(bench.tokens.shape[0], device=bench.device)
    images, labels, tokens = bench.images, bench.labels, bench.tokens

    def loss_of(image_features: torch.Tensor, text_features: torch.Tensor, logit_scale: torch.Tensor):
        return classification_loss(image_features, text_features, logit_scale, labels)

    def forward_ours() -> tuple[torch.Tensor, torch.Tensor]:
        with bench.autocast():
            return loss_of(coop.encode_image(images), coop.encode_text(tokens), coop.logit_scale)

    def forward_theirs() -> tuple[torch.Tensor, torch.Tensor]:
        with bench.autocast():
            image_features = ref.encode_image(images)
            n = tokens.shape[0]
            x = torch.cat([prefix, ctx_theirs.unsqueeze(0).expand(n, -1, -1), suffix], dim=1)
            x = x + ref.positional_embedding.to(x.dtype)
            x = ref.transformer(x, attn_mask=ref.attn_mask)
            x = ref.ln_final(x)
            text_features = x[rows, eot] @ ref.text_projection
            return loss_of(image_features, text_features, ref.logit_scale)

    fwd_ours, fwd_theirs = bench.maybe_compile(forward_ours), bench.maybe_compile(forward_theirs)

    def step(fwd: Callable[[], Any], ctx: torch.nn.Parameter) -> Callable[[], Any]:
        def call() -> tuple[torch.Tensor, torch.Tensor]:
            ctx.grad = None
            loss, text_features = fwd()
            loss.backward()
            return loss.detach(), text_features.detach()

        return call

    fns = {"clipadapt": step(fwd_ours, ctx_ours), "open_clip": step(fwd_theirs, ctx_theirs)}
    out, first_s = bench.first_calls(fns)
    (loss_a, feat_a), (loss_b, feat_b) = out["clipadapt"], out["open_clip"]
    diff = (feat_a.float() - feat_b.float()).abs().max().item()
    grad_diff = (ctx_ours.grad.float() - ctx_theirs.grad.float()).abs().max().item()
    grad_scale = ctx_theirs.grad.float().abs().max().item()
    samples = bench.time(fns, first_s)
    row = bench.common("prompt_forward_backward") | {
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


def build_maple(bench: Bench, depth: int) -> tuple[Any, OriginalMaPLe]:
    """clipadapt with MaPLe (``n_ctx`` 2) on the bench's weights, and the original computation from the same prompts."""
    import clipadapt
    from clipadapt_plugins.maple import MaPLe

    depth = min(depth, bench.cfg.text.layers, bench.cfg.vision.layers)
    maple = clipadapt.create_model(
        bench.args.model, plugins=[MaPLe(n_ctx=2, depth=depth, ctx_init="a photo of a")], device=bench.device
    )
    load_same_weights(maple, bench.reference)
    # The original's prompt learner, initialised identically (a copy of ours) but owned by the baseline.
    theirs = OriginalMaPLe(bench.reference.requires_grad_(False), maple.plugins["maple"], bench.tokens)
    return maple, theirs


def maple_row(bench: Bench) -> dict[str, Any]:
    """One MaPLe training step (forward, loss, backward; no optimizer update) both ways."""
    torch = bench.torch
    maple, theirs = build_maple(bench, bench.args.maple_depth)
    maple.train()
    bench.reference.train()
    depth = theirs.depth
    ours = [p for p in maple.parameters() if p.requires_grad]
    images, labels, tokens = bench.images, bench.labels, bench.tokens

    def loss_of(image_features: torch.Tensor, text_features: torch.Tensor, logit_scale: torch.Tensor):
        return classification_loss(image_features, text_features, logit_scale, labels)

    def forward_ours() -> tuple[torch.Tensor, torch.Tensor]:
        with bench.autocast():
            return loss_of(maple.encode_image(images), maple.encode_text(tokens), maple.logit_scale)

    def forward_theirs() -> tuple[torch.Tensor, torch.Tensor]:
        with bench.autocast():
            image_features, text_features = theirs(images)
            return loss_of(image_features, text_features, bench.reference.logit_scale)

    def step(fwd: Callable[[], Any], params: list[torch.nn.Parameter]) -> Callable[[], Any]:
        def call() -> tuple[torch.Tensor, torch.Tensor]:
            for p in params:
                p.grad = None
            loss, text_features = fwd()
            loss.backward()
            return loss.detach(), text_features.detach()

        return call

    fwd_ours, fwd_theirs = bench.maybe_compile(forward_ours), bench.maybe_compile(forward_theirs)
    fns = {"clipadapt": step(fwd_ours, ours), "open_clip": step(fwd_theirs, list(theirs.parameters()))}
    resident = [*maple.parameters(), *maple.buffers(), *bench.reference.parameters(), *bench.reference.buffers()]
    resident += [*theirs.parameters(), theirs.prefix, theirs.suffix, images, tokens]
    saved = {
        "clipadapt": saved_for_backward_mib(forward_ours, resident),
        "open_clip": saved_for_backward_mib(forward_theirs, resident),
    }
    out, first_s = bench.first_calls(fns)
    (loss_a, feat_a), (loss_b, feat_b) = out["clipadapt"], out["open_clip"]
    grad_a = torch.cat([p.grad.flatten() for p in ours])
    grad_b = torch.cat([p.grad.flatten() for p in theirs.parameters()])
    samples = bench.time(fns, first_s)
    row = bench.common("maple_forward_backward") | {
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
    bench.reference.eval()
    return row
