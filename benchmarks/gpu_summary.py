"""The Markdown summary of a ``tools/gpu_check.py`` report: one table per section, then the findings."""

from __future__ import annotations

from typing import Any


def _fmt(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "**no**"
    if isinstance(value, float):
        return f"{value:.3g}" if value == 0 or 1e-3 <= abs(value) < 1e5 else f"{value:.2e}"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return "" if value is None else str(value).replace("|", "/")


def _table(head: list[str], rows: list[list[Any]]) -> list[str]:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    return lines + ["| " + " | ".join(_fmt(v) for v in row) + " |" for row in rows]


def _status(data: dict[str, Any]) -> str:
    return f"status: {data['status']}, {data['seconds']:.0f} s of {data['limit_s']:.0f} s"


def summary(report: dict[str, Any]) -> str:
    meta, sections = report["meta"], report["sections"]
    card = meta.get("device_name", meta["device"])
    lines = [
        f"# GPU check: {card}",
        "",
        f"{meta['date']}; torch {meta.get('torch')}, CUDA {meta.get('cuda')}; commit {meta.get('commit', '?')}; "
        f"{meta.get('seconds', 0):.0f} s of a {meta['budget_s']:.0f} s budget.",
    ]
    if meta.get("missing_packages"):
        lines.append(f"Missing Python packages: {', '.join(meta['missing_packages'])}.")
    if "parity" in sections:
        data = sections["parity"]
        lines += [
            "",
            "## Parity (relative feature error, tolerance C sqrt(L) (u + u32 sqrt(K)))",
            "",
            _status(data),
            "",
        ]
        rows = [
            [
                r["name"],
                r["tower"],
                r["dtype"],
                r.get("relative_error"),
                r.get("tolerance"),
                r.get("max_abs_diff"),
                r.get("error", r["ok"]),
            ]
            for r in data["results"]
        ]
        lines += _table(["model", "tower", "dtype", "rel. error", "tolerance", "max abs diff", "ok"], rows)
    if "kernels" in sections:
        data = sections["kernels"]
        lines += ["", "## SDPA kernel selection", "", _status(data), ""]
        rows = [[r["path"], r["dtype"], r["default"], r["flash_only"], r["efficient_only"]] for r in data["results"]]
        lines += _table(["path", "dtype", "ran (all enabled)", "flash only", "mem-efficient only"], rows)
    if "train" in sections:
        data = sections["train"]
        lines += ["", "## Training with --amp, and resume", "", _status(data), ""]
        for r in data["results"]:
            resume = r["resume"]
            lines += [
                f"- {r['config']} on {r['base']}, {r['epochs']} epochs, {r['iterations']} iterations: loss "
                f"{r['loss_first']:.4g} -> {r['loss_last']:.4g} (falls: {_fmt(r['loss_falls'])})",
                f"- resumed from epoch 1: weights differ by {resume['relative_diff']:.3g} of the largest weight "
                f"(tolerance {r['resume_tolerance']:g}), bit-identical: {_fmt(resume['bit_identical'])}, "
                f"losses of {r['resumed_steps']} resumed steps differ by at most {r['resumed_loss_max_abs_diff']:.3g}",
            ]
    if "bench" in sections:
        lines += _bench(sections["bench"])
    if report.get("goals"):
        lines += ["", "## Goals (issue 21)", ""]
        rows = [[g["row"], g["dtype"], g["compile"], g["ratio"], g["goal"], g["met"]] for g in report["goals"]]
        lines += _table(["row", "dtype", "compile", "ratio", "goal", "met"], rows)
    lines += ["", "## Findings", ""]
    lines += [f"- {f}" for f in report.get("findings", [])] or ["None."]
    return "\n".join(lines) + "\n"


def _bench(data: dict[str, Any]) -> list[str]:
    lines = ["", "## Benchmark (tools/benchmark.py)", "", _status(data), ""]
    lines.append(
        "Goals (issue 21, ViT-B-16 on CUDA): image forward >= 1.0x open_clip at its fastest setting (autocast or "
        "weights cast to the dtype, whichever is faster), text forward and the CoOp and MaPLe steps >= 2x."
    )
    for run in data["results"]:
        lines += ["", f"**{run['dtype']}, compile={run['compile']}**: {run['status']}", ""]
        rows = []
        for r in run["rows"]:
            notes = []
            if "ratio_vs_fastest" in r:
                notes.append(f"vs open_clip fastest {_fmt(r['ratio_vs_fastest'])}")
                notes.append(f"{_fmt(r['clipadapt_tflops'])} TFLOP/s")
                if "clipadapt_fraction_of_peak" in r:
                    notes.append(f"{_fmt(r['clipadapt_fraction_of_peak'])} of bf16 peak {r['peak_bf16_tflops']:g}")
            if "clipadapt_peak_mem_mib" in r:
                notes.append(f"peak MiB {_fmt(r['clipadapt_peak_mem_mib'])} / {_fmt(r['baseline_peak_mem_mib'])}")
            rows.append(
                [r["name"], r["clipadapt"], r["baseline"], r["unit"], r["ratio"], r.get("goal"), "; ".join(notes)]
            )
        lines += _table(["row", "clipadapt", "baseline", "unit", "ratio", "goal", "notes"], rows)
    return lines
