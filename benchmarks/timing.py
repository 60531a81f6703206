"""Timing that is fair to both sides: interleaved samples, paired ratios, activation memory, host load."""

from __future__ import annotations

import math
import os
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any


def _sync(device: Any) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _time_once(fn: Callable[[], Any], inner: int, device: Any) -> float:
    """Seconds per call of ``inner`` calls; on CUDA between two events recorded on the stream, synchronised."""
    _sync(device)
    if device.type == "cuda":
        import torch

        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(inner):
            fn()
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / 1e3 / inner  # elapsed_time is in milliseconds
    begin = time.perf_counter()
    for _ in range(inner):
        fn()
    return (time.perf_counter() - begin) / inner


# Dense bf16 tensor-core peaks (TFLOP/s, no sparsity) from the vendors' data sheets, by a substring of
# ``torch.cuda.get_device_name()``; first match wins, so the specific names come before the general ones.
PEAK_BF16_TFLOPS = (
    ("H200", 989.0),
    ("H100 PCIe", 756.0),
    ("H100 SXM", 989.0),
    ("H100 80GB HBM3", 989.0),  # how the SXM part names itself
    ("A100", 312.0),
)


def peak_bf16_tflops(device_name: str) -> float | None:
    """The card's dense bf16 peak in TFLOP/s, or None for a card not in :data:`PEAK_BF16_TFLOPS`."""
    return next((peak for key, peak in PEAK_BF16_TFLOPS if key in device_name), None)


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
