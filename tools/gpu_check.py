#!/usr/bin/env python
"""Every CUDA path of clipadapt, checked on one GPU in under 8 minutes: a JSON report and a Markdown summary.

    python tools/gpu_check.py --out gpu_report                      # on a CUDA machine: all four sections
    python tools/gpu_check.py --out gpu_report --sections parity,kernels --budget-s 120
    python tools/gpu_check.py --out /tmp/dry --device cpu            # dry run: tiny model, small shapes

Sections, in the order they run (each in its own process, under its own time limit; a section that
fails or runs out of time is recorded in the report and the next one runs):

``parity``
    clipadapt against open_clip on the same random weights (ViT-B-16 and ViT-B-16-quickgelu), images and
    texts, fp32 / bf16 / fp16; MaPLe against the original computation, Long-CLIP at 248 tokens, MoE-upcycled
    towers and one MoE block. Relative feature error against a stated tolerance
    (:mod:`benchmarks.gpu_checks` explains it).
``kernels``
    Which SDPA backend serves the vision tower, the causal text tower and MaPLe-prompted towers (forward
    and backward), and whether flash-only and memory-efficient-only contexts can serve each.
``train``
    ``tools/train.py --amp`` on a tiny config: the loss falls; a run resumed from epoch 1 ends where the
    uninterrupted run ended (:mod:`benchmarks.train_check`).
``bench``
    ``tools/benchmark.py --device cuda`` in bf16 and fp16, eager and ``torch.compile``, against the issue's
    goals (image forward >= 1.0x open_clip at its fastest setting, text and prompt steps >= 2x).

The time budget (``--budget-s``) is shared: each section gets its share of what is left when it starts,
so time a section does not use passes to the next ones. Nothing here asserts a speed.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

# benchmarks/ sits beside tools/, outside the installed package (as timm keeps its benchmark.py).
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

ROOT = Path(__file__).resolve().parents[1]
SECTIONS = ("parity", "kernels", "train", "bench")
SHARES = {"parity": 0.2, "kernels": 0.1, "train": 0.25, "bench": 0.45}
NEEDED = ("torch", "torchvision", "open_clip", "mmengine", "einops", "ftfy", "regex")
# The shapes of a real run (CUDA) and of the dry run (CPU: the tiny model, small batches, one benchmark run).
PLANS: dict[str, dict[str, Any]] = {
    "cuda": {
        "models": ["ViT-B-16", "ViT-B-16-quickgelu"],
        "dtypes": ["fp32", "bf16", "fp16"],
        "kernel_dtypes": ["bf16", "fp16", "fp32"],
        "batch": 8,
        "num_classes": 100,
        "bench_model": "ViT-B-16",
        "bench_args": ["--batch", "128", "--num-classes", "1000", "--repeats", "5", "--min-sample-s", "0.1"],
        "bench_runs": [  # in order of priority: the budget may end before the last
            (
                "bf16",
                False,
                "image_forward,image_forward_efficiency,text_forward,prompt_forward_backward,"
                "maple_forward_backward,long_text_forward,region_pooling,moe_block",
            ),
            ("bf16", True, "image_forward,text_forward"),
            ("fp16", False, "image_forward,text_forward,prompt_forward_backward,maple_forward_backward"),
            ("fp16", True, "image_forward,text_forward"),
            ("bf16", True, "prompt_forward_backward,maple_forward_backward"),  # compiles forward and backward
        ],
    },
    "cpu": {
        "models": ["tiny-vit"],
        "dtypes": ["fp32", "bf16"],
        "kernel_dtypes": ["bf16"],
        "batch": 2,
        "num_classes": 32,
        "bench_model": "tiny-vit",
        "bench_args": [
            "--batch",
            "2",
            "--num-classes",
            "32",
            "--repeats",
            "1",
            "--min-sample-s",
            "0",
            "--threads",
            "1",
        ],
        "bench_runs": [("bf16", False, "image_forward,text_forward")],
    },
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="folder for report.json and summary.md")
    parser.add_argument("--device", default="cuda", help="cuda[:N] (the check) or cpu (a dry run, small shapes)")
    parser.add_argument("--sections", default=",".join(SECTIONS), help=f"comma-separated subset of {SECTIONS}")
    parser.add_argument("--budget-s", type=float, default=450.0, help="seconds for all sections together")
    parser.add_argument("--tiny-clip", help="a cached tiny-vit-synthetic.pt: train VPT prompts on it (else CLIP)")
    parser.add_argument("--scratch", help="folder for checkpoints and logs (default: a new temporary folder)")
    parser.add_argument("--worker", choices=SECTIONS, help=argparse.SUPPRESS)  # run one section (child process)
    parser.add_argument("--deadline", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    if not sections or set(sections) - set(SECTIONS):
        parser.error(f"--sections: choose from {', '.join(SECTIONS)}, got {args.sections!r}")
    args.sections = [s for s in SECTIONS if s in sections]
    if args.device != "cpu" and not args.device.startswith("cuda"):
        parser.error(f"--device must be cuda, cuda:N or cpu, got {args.device!r}")
    if args.budget_s <= 0:
        parser.error("--budget-s must be positive")
    args.plan = PLANS["cpu" if args.device == "cpu" else "cuda"]
    return args


def bootstrap_imports(scratch: Path) -> None:
    """Make ``clipadapt`` and ``clipadapt_plugins`` importable from this checkout, here and in child processes.

    A GPU machine gets the working tree without an installed package: the checkout goes on the path, and
    ``clipadapt_plugins`` (the ``plugins/`` folder, installed under that name) through a symbolic link.
    """
    paths = [str(ROOT)]
    if importlib.util.find_spec("clipadapt_plugins") is None:
        link = scratch / "shim" / "clipadapt_plugins"
        link.parent.mkdir(parents=True, exist_ok=True)
        if not link.exists():
            link.symlink_to(ROOT / "plugins", target_is_directory=True)
        paths.append(str(link.parent))
    sys.path[:0] = [p for p in paths if p not in sys.path]
    os.environ["PYTHONPATH"] = os.pathsep.join([*paths, *filter(None, [os.environ.get("PYTHONPATH")])])


# ------------------------------------------------------------------------------------ sections (workers)
def _save(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1, default=str))
    tmp.replace(path)


def run_worker(args: argparse.Namespace, scratch: Path) -> None:
    """One section in this process; its results go to ``scratch/<section>.json`` after every step."""
    plan, section, path = args.plan, args.worker, scratch / f"{args.worker}.json"
    data: dict[str, Any] = {"results": []}

    def report(result: dict[str, Any]) -> None:
        data["results"].append(result)
        _save(path, data)

    _save(path, data)
    if section == "parity":
        from benchmarks.gpu_checks import parity_checks

        parity_checks(plan["models"], args.device, plan["dtypes"], plan["batch"], plan["num_classes"], report)
    elif section == "kernels":
        from benchmarks.gpu_checks import kernel_checks

        kernel_checks(plan["models"][0], args.device, plan["kernel_dtypes"], plan["batch"], report)
    elif section == "train":
        from benchmarks.train_check import train_check

        report(train_check(scratch / "train", args.deadline, args.device == "cpu", args.tiny_clip))
    else:
        for dtype, compiled, rows in plan["bench_runs"]:
            report(bench_run(args, dtype, compiled, rows))


def bench_run(args: argparse.Namespace, dtype: str, compiled: bool, rows: str) -> dict[str, Any]:
    """One ``tools/benchmark.py --json`` run; the rows it printed before a timeout are kept."""
    plan = args.plan
    cmd = [sys.executable, str(ROOT / "tools" / "benchmark.py"), "--json", "--device", args.device]
    cmd += ["--model", plan["bench_model"], "--dtype", dtype, "--rows", rows, *plan["bench_args"]]
    if compiled:
        cmd += ["--compile", "--warmup", "3"]
    result: dict[str, Any] = {"dtype": dtype, "compile": compiled, "command": " ".join(cmd[1:]), "rows": []}
    left = args.deadline - time.time() - 2.0
    if left < 15:
        return result | {"status": "skipped: no time left"}
    start = time.perf_counter()
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=left, cwd=ROOT)
        stdout, status = done.stdout, "ok" if done.returncode == 0 else f"failed ({done.returncode})"
        stderr = done.stderr
    except subprocess.TimeoutExpired as err:
        stdout, stderr, status = err.stdout or "", err.stderr or "", f"timed out after {left:.0f} s"
    stdout = stdout.decode() if isinstance(stdout, bytes) else stdout
    stderr = stderr.decode() if isinstance(stderr, bytes) else stderr
    for line in stdout.splitlines():
        with contextlib.suppress(json.JSONDecodeError):  # a line cut off by the timeout is dropped
            result["rows"].append(json.loads(line))
    result |= {"status": status, "seconds": time.perf_counter() - start}
    if status != "ok":
        result["stderr_tail"] = stderr[-2000:]
    return result


# ------------------------------------------------------------------------------------ the parent process
def run_section(args: argparse.Namespace, section: str, limit: float, scratch: Path) -> dict[str, Any]:
    """Run one section as a child process under ``limit`` seconds; kill its process group past the limit."""
    deadline = time.time() + limit - 5.0  # the worker plans to end 5 s before it is killed
    cmd = [sys.executable, str(Path(__file__).resolve()), "--out", args.out, "--device", args.device]
    cmd += ["--worker", section, "--deadline", str(deadline), "--scratch", str(scratch)]
    if args.tiny_clip:
        cmd += ["--tiny-clip", args.tiny_clip]
    log = scratch / f"{section}.log"
    start = time.perf_counter()
    with open(log, "w") as handle:
        child = subprocess.Popen(cmd, stdout=handle, stderr=subprocess.STDOUT, cwd=ROOT, start_new_session=True)
        try:
            code = child.wait(timeout=limit)
            status = "ok" if code == 0 else f"failed (exit {code})"
        except subprocess.TimeoutExpired:
            os.killpg(child.pid, signal.SIGKILL)  # the worker and the benchmark or training runs it started
            child.wait()
            status = f"timed out after {limit:.0f} s"
    path = scratch / f"{section}.json"
    data = json.loads(path.read_text()) if path.is_file() else {"results": []}
    data |= {"status": status, "seconds": time.perf_counter() - start, "limit_s": limit}
    if status != "ok":
        data["log_tail"] = log.read_text(errors="replace")[-3000:]
    return data


def environment(device: str) -> dict[str, Any]:
    meta: dict[str, Any] = {"device": device, "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())}
    meta["missing_packages"] = [name for name in NEEDED if importlib.util.find_spec(name) is None]
    try:
        import torch

        meta |= {"torch": torch.__version__, "cuda": torch.version.cuda}
        if device.startswith("cuda") and torch.cuda.is_available():
            meta["device_name"] = torch.cuda.get_device_name(torch.device(device))
    except ImportError:
        pass
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        git = ["git", "rev-parse", "HEAD"]
        meta["commit"] = subprocess.run(git, capture_output=True, text=True, cwd=ROOT, timeout=10).stdout.strip()
    return meta


def findings(sections: dict[str, Any]) -> list[str]:
    """What the report says needs fixing, one line each."""
    out = []
    for name, data in sections.items():
        if data["status"] != "ok":
            out.append(f"{name}: section {data['status']}")
    for r in sections.get("parity", {}).get("results", []):
        if not r.get("ok"):
            what = r.get("error") or f"relative error {r['relative_error']:.3g} > tolerance {r['tolerance']:.3g}"
            out.append(f"parity {r['name']} {r['tower']} {r['dtype']}: {what}")
    for r in sections.get("kernels", {}).get("results", []):
        out += [f"kernels: {f}" for f in r.get("findings", [])]
    for r in sections.get("train", {}).get("results", []):
        if not r.get("loss_falls"):
            out.append(f"train: the loss did not fall ({r.get('loss_first')} -> {r.get('loss_last')})")
        if "deterministic_error" in r:
            out.append("train: deterministic=True refused an op, so the runs were compared without it (see the report)")
        if not r.get("resume_equal"):
            out.append(f"train: the resumed run differs from the uninterrupted one ({r.get('resume')})")
    for run in sections.get("bench", {}).get("results", []):
        if run["status"] != "ok":
            out.append(f"bench: the {run['dtype']} run with compile={run['compile']}: {run['status']}")
    for goal in goals(sections.get("bench", {})):
        if not goal["met"]:
            what = f"{goal['row']} {goal['dtype']} compile={goal['compile']}"
            out.append(f"bench: {what}: ratio {goal['ratio']:.3g} < goal {goal['goal']}")
    return out


def goals(bench: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's goals for each benchmark row that states one (image forward: against open_clip's fastest)."""
    out = []
    for run in bench.get("results", []):
        for row in run["rows"]:
            if "goal" in row:
                ratio = row.get("ratio_vs_fastest", row["ratio"])
                out.append(
                    {"row": row["name"], "dtype": row["dtype"], "compile": row["compile"], "ratio": ratio}
                    | {"goal": row["goal"], "met": bool(ratio >= row["goal"])}
                )
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    scratch = Path(args.scratch or tempfile.mkdtemp(prefix="gpu_check_"))
    scratch.mkdir(parents=True, exist_ok=True)
    bootstrap_imports(scratch)
    if args.worker:
        run_worker(args, scratch)
        return 0
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {"meta": environment(args.device) | {"budget_s": args.budget_s}, "sections": {}}
    report["meta"] |= {"plan": {k: v for k, v in args.plan.items()}, "scratch": str(scratch)}
    if args.device.startswith("cuda") and "device_name" not in report["meta"]:
        print("warning: torch sees no CUDA device; every section will fail (use --device cpu for a dry run)")
    start = time.perf_counter()
    for index, section in enumerate(args.sections):
        left = args.budget_s - (time.perf_counter() - start)
        shares = [SHARES[s] for s in args.sections[index:]]
        limit = max(left * SHARES[section] / sum(shares), min(left, 30.0))
        print(f"[{time.perf_counter() - start:6.1f}s] {section}: up to {limit:.0f} s", flush=True)
        report["sections"][section] = run_section(args, section, limit, scratch)
        print(f"[{time.perf_counter() - start:6.1f}s] {section}: {report['sections'][section]['status']}", flush=True)
        _save(out / "report.json", report)
    report["goals"] = goals(report["sections"].get("bench", {}))
    report["findings"] = findings(report["sections"])
    report["meta"]["seconds"] = time.perf_counter() - start
    _save(out / "report.json", report)
    from benchmarks.gpu_summary import summary

    (out / "summary.md").write_text(summary(report))
    print(f"wrote {out / 'report.json'} and {out / 'summary.md'}: {len(report['findings'])} finding(s)")
    for line in report["findings"]:
        print(f"  - {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
