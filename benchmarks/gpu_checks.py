"""Numerical parity and SDPA kernel selection on one device: two sections of ``tools/gpu_check.py``.

**Parity tolerance.** Features are compared by their relative error, ``max_rows ||a - b|| / ||b||``
(float64), against ``tol = C * sqrt(L) * (u + u32 * sqrt(K))``:

- ``u`` is the unit roundoff of the compute dtype (fp32 2^-24, bf16 2^-8, fp16 2^-11): under autocast
  each layer rounds its inputs and outputs to that dtype, and two implementations that order or fuse
  operations differently round at different places, so they differ by a few ``u`` per layer;
- ``u32 * sqrt(K)`` is the rounding of fp32 accumulation in a dot product of length ``K`` (the widest
  inner dimension, the MLP's hidden width), in its probabilistic form (sqrt, not the worst-case ``K``);
  tensor cores accumulate in fp32 in every dtype;
- ``sqrt(L)``: independent rounding errors of ``L`` residual blocks add up as a random walk (pre-LN
  blocks add their output to the residual stream, which does not amplify earlier errors much);
- ``C = 4`` covers the few roundings per block (QKV, attention, out projection, two MLP GEMMs).

ViT-B/16 (L = 12, K = 3072): fp32 4.6e-5, fp16 6.8e-3, bf16 5.4e-2. The fp32 check turns TF32 off
(convolutions use it by default on CUDA), since TF32 has the unit roundoff of fp16.

**Kernel selection.** Each path runs once with every SDPA backend enabled, under the profiler, to see
which ``aten::_scaled_dot_product_*`` op ran, and once with only flash and only memory-efficient
attention enabled (``torch.nn.attention.sdpa_kernel``): an error means that kernel cannot serve the
path. A bf16/fp16 path on CUDA that ran the math kernel is a finding.
"""

from __future__ import annotations

import argparse
import math
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from .plugin_rows import build_long_clip
from .prompt_rows import build_maple
from .rows import Bench

UNIT_ROUNDOFF = {"fp32": 2.0**-24, "bf16": 2.0**-8, "fp16": 2.0**-11}
TOLERANCE_FACTOR = 4.0
# Substrings of the aten op that SDPA dispatched to, and the backend each names.
SDPA_OPS = (
    ("_scaled_dot_product_flash_attention_for_cpu", "flash (cpu)"),
    ("_scaled_dot_product_flash_attention", "flash"),
    ("_scaled_dot_product_efficient_attention", "efficient"),
    ("_scaled_dot_product_cudnn_attention", "cudnn"),
    ("_scaled_dot_product_attention_math", "math"),
)


def tolerance(dtype: str, depth: int, inner: int) -> float:
    """Relative feature tolerance of ``depth`` blocks whose widest dot product has length ``inner``."""
    return TOLERANCE_FACTOR * math.sqrt(depth) * (UNIT_ROUNDOFF[dtype] + UNIT_ROUNDOFF["fp32"] * math.sqrt(inner))


def relative_error(ours: torch.Tensor, theirs: torch.Tensor) -> float:
    a, b = ours.double().flatten(1), theirs.double().flatten(1)
    return ((a - b).norm(dim=1) / b.norm(dim=1).clamp_min(1e-30)).max().item()


def make_bench(model: str, device: str, batch: int, num_classes: int, seed: int = 0) -> Bench:
    args = argparse.Namespace(model=model, device=device, dtype="fp32", seed=seed, batch=batch, num_classes=num_classes)
    args.compile = False
    return Bench(args)


def _tower_size(cfg: Any, tower: str) -> tuple[int, int]:
    c = cfg.vision if tower == "image" else cfg.text
    return c.layers, int(c.width * c.mlp_ratio)


def _compare(
    name: str, tower: str, dtype: str, ours: torch.Tensor, theirs: torch.Tensor, depth: int, inner: int
) -> dict[str, Any]:
    err, tol = relative_error(ours, theirs), tolerance(dtype, depth, inner)
    return {
        "name": name,
        "tower": tower,
        "dtype": dtype,
        "relative_error": err,
        "tolerance": tol,
        "max_abs_diff": (ours.float() - theirs.float()).abs().max().item(),
        "ok": bool(err <= tol),
    }


def parity_checks(
    models: list[str], device: str, dtypes: list[str], batch: int, num_classes: int, report: Callable[[dict], None]
) -> None:
    """clipadapt against open_clip (and MaPLe against the original), each dtype; ``report`` gets each result."""
    torch.backends.cudnn.allow_tf32 = False  # TF32 convolutions would make the fp32 check an fp16-class one
    torch.backends.cuda.matmul.allow_tf32 = False
    for index, model in enumerate(models):
        bench = make_bench(model, device, batch, num_classes)
        bench.clip.eval()
        bench.reference.eval()
        pairs = _base_pairs(bench)
        if index == 0:  # the plugins on the first model only
            try:
                pairs += _plugin_pairs(bench)
            except Exception as err:  # a plugin that does not build must not hide the base model's checks
                report({"name": "plugins", "tower": "-", "dtype": "-", "ok": False, "error": repr(err)[:500]})
        for name, tower, ours, theirs in pairs:
            depth, inner = _tower_size(bench.cfg, tower)
            if name.endswith("MoE block"):
                depth = 1
            for dtype in dtypes:
                try:
                    with torch.inference_mode(), bench.autocast(dtype):
                        a, b = ours(), theirs()
                    report(_compare(name, tower, dtype, a, b, depth, inner))
                except Exception as err:  # one failing check must not hide the others
                    report({"name": name, "tower": tower, "dtype": dtype, "ok": False, "error": repr(err)[:500]})
        del bench


def _plugin_pairs(bench: Bench) -> list[tuple[str, str, Callable[[], Any], Callable[[], Any]]]:
    """MaPLe (J = 9) against the original computation, Long-CLIP at 248 tokens, MoE-upcycled towers and block."""
    import clipadapt
    from clipadapt_plugins.moe.layer import SparseMoE

    maple, original = build_maple(bench, depth=9)
    maple.eval()
    long_ours, long_theirs, long = build_long_clip(bench)
    with tempfile.TemporaryDirectory() as tmp:  # upcycled at load: experts are copies of the loaded MLPs
        path = Path(tmp) / "base.pt"
        torch.save(bench.reference.state_dict(), path)
        moe = clipadapt.create_model(
            bench.args.model, pretrained=str(path), plugins=[dict(type="MoEUpcycle")], device=bench.device
        ).eval()
    mlp = bench.clip.visual.transformer.resblocks[-1].mlp
    block = SparseMoE(mlp, bench.cfg.vision.width, 4, 2).to(bench.device).eval()
    shape = (bench.images.shape[0], bench.cfg.vision.grid_size**2 + 1, bench.cfg.vision.width)
    tokens = torch.randn(shape, generator=torch.Generator().manual_seed(7)).to(bench.device)
    images, texts, reference = bench.images, bench.tokens, bench.reference
    return [
        ("MaPLe", "image", lambda: maple.encode_image(images), lambda: original(images)[0]),
        ("MaPLe", "text", lambda: maple.encode_text(texts), lambda: original(images)[1]),
        ("Long-CLIP 248", "text", lambda: long_ours.encode_text(long), lambda: long_theirs.encode_text(long)),
        ("MoE (4 experts, top-2)", "image", lambda: moe.encode_image(images), lambda: reference.encode_image(images)),
        ("MoE (4 experts, top-2)", "text", lambda: moe.encode_text(texts), lambda: reference.encode_text(texts)),
        ("MoE block", "image", lambda: block(tokens), lambda: mlp(tokens)),
    ]  # fmt: skip


def _base_pairs(bench: Bench) -> list[tuple[str, str, Callable[[], Any], Callable[[], Any]]]:
    clip, reference, images, texts = bench.clip, bench.reference, bench.images, bench.tokens
    return [
        (bench.args.model, "image", lambda: clip.encode_image(images), lambda: reference.encode_image(images)),
        (bench.args.model, "text", lambda: clip.encode_text(texts), lambda: reference.encode_text(texts)),
    ]


def sdpa_backends(fn: Callable[[], Any]) -> list[str]:
    """The SDPA backends that ``fn`` ran, read from the aten ops the profiler recorded."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    names = {event.key for event in prof.key_averages()}
    found = []
    for name in sorted(names):
        for op, backend in SDPA_OPS:
            if op in name:
                found.append(backend)
                break
    return sorted(set(found))


def _only(backend: Any, fn: Callable[[], Any]) -> str:
    from torch.nn.attention import sdpa_kernel

    try:
        with sdpa_kernel([backend]):
            fn()
        return "ok"
    except RuntimeError as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else repr(err)
        return f"error: {first[:300]}"


def kernel_checks(model: str, device: str, dtypes: list[str], batch: int, report: Callable[[dict], None]) -> None:
    """Which SDPA kernel serves the vision tower, the causal text tower and prompted towers (MaPLe, with backward)."""
    from torch.nn.attention import SDPBackend

    bench = make_bench(model, device, batch, num_classes=100)
    bench.clip.eval()
    maple, _ = build_maple(bench, depth=9)
    maple.train()
    params = [p for p in maple.parameters() if p.requires_grad]
    images, tokens = bench.images, bench.tokens  # 100 class prompts: the longest EOT sets the text length

    def backward(y: torch.Tensor) -> None:
        for p in params:
            p.grad = None
        y.float().square().mean().backward()

    paths: dict[str, Callable[[], Any]] = {
        "vision tower (inference)": lambda: bench.clip.encode_image(images),
        "causal text tower (inference)": lambda: bench.clip.encode_text(tokens),
        "prompted text tower (MaPLe, forward + backward)": lambda: backward(maple.encode_text(tokens)),
        "prompted vision tower (MaPLe, forward + backward)": lambda: backward(maple.encode_image(images)),
    }
    for dtype in dtypes:
        for path, fn in paths.items():

            def run(fn: Callable[[], Any] = fn, dtype: str = dtype, path: str = path) -> None:
                with bench.autocast(dtype):
                    if "inference" in path:
                        with torch.inference_mode():
                            fn()
                    else:
                        fn()

            result: dict[str, Any] = {"path": path, "dtype": dtype}
            try:
                result["default"] = sdpa_backends(run)
            except Exception as err:
                result["default"] = [f"error: {err!r}"[:300]]
            result["flash_only"] = _only(SDPBackend.FLASH_ATTENTION, run)
            result["efficient_only"] = _only(SDPBackend.EFFICIENT_ATTENTION, run)
            result["findings"] = kernel_findings(result, torch.device(device).type)
            report(result)


def kernel_findings(result: dict[str, Any], device_type: str) -> list[str]:
    """What in one kernel result needs fixing: a fused-capable path on the math kernel, or no fused kernel at all."""
    findings = []
    if device_type != "cuda":
        return findings
    low_precision = result["dtype"] in ("bf16", "fp16")
    if low_precision and "math" in result["default"]:
        findings.append(f"{result['path']} {result['dtype']}: SDPA fell back to the math kernel")
    if low_precision and result["flash_only"] != "ok" and result["efficient_only"] != "ok":
        findings.append(f"{result['path']} {result['dtype']}: neither flash nor memory-efficient attention serves it")
    return findings
