"""Rows about load rather than speed: evaluation memory that must not grow with the data set.

``eval_stream`` evaluates the zero-shot tiny-CLIP config with ``tools/test.py`` (the real runner path: data
loader with workers, model, metric) on a synthetic world of ``--eval-images`` test images, and on a tenth
of them, each in its own process, and reports each run's peak resident memory. Streaming evaluation keeps
the peak flat: ``ratio`` = peak RSS of the small run / peak RSS of the large run (1.0 = bounded).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from .rows import Bench

ROOT = Path(__file__).resolve().parents[1]
ZERO_SHOT = ROOT / "configs" / "zeroshot" / "zeroshot_tiny-vit_synthetic-dark.py"

# Run tools/test.py in this process and report its peak RSS (KiB on Linux) as the last stdout line.
_PROBE = """
import resource, runpy, sys
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
print("PEAK_RSS_KIB", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def _evaluate(images_per_class: int, work: Path, workers: int) -> dict[str, float]:
    """One ``tools/test.py`` run on a world with ``images_per_class`` test images per class: RSS, time, count."""
    from clipadapt.datasets.synthetic import ensure_synthetic_world

    world = dict(domains=["dark"], per_class_train=1, per_class_val=1, per_class_test=images_per_class)
    world |= dict(scenes_train=0, scenes_val=0, scenes_test=0)
    root = ensure_synthetic_world(work / f"world_{images_per_class}", progress=False, **world)
    options = [f"synthetic_world.{k}={json.dumps(v).replace(' ', '')}" for k, v in world.items()]
    options += ["model.pretrained=None", "test_dataloader.batch_size=256", f"test_dataloader.num_workers={workers}"]
    out = work / f"metrics_{images_per_class}.json"
    cmd = [sys.executable, "-c", _PROBE, str(ROOT / "tools" / "test.py"), str(ZERO_SHOT)]
    cmd += ["--work-dir", str(work / f"eval_{images_per_class}"), "--out", str(out), "--cfg-options", *options]
    env = dict(os.environ, CLIPADAPT_DATA=str(root), CLIPADAPT_CACHE=str(work / "cache"))
    start = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=3600)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"eval_stream: tools/test.py failed:\n{done.stderr[-3000:]}")
    peak = next(line for line in reversed(done.stdout.splitlines()) if line.startswith("PEAK_RSS_KIB"))
    count = sum(1 for _ in json.loads((root / "split_synthetic_dark.json").read_text())["test"])
    return {"peak_mib": int(peak.split()[1]) / 1024, "seconds": seconds, "images": count}


def eval_stream_row(bench: Bench) -> dict[str, Any]:
    """Peak RSS of a streaming evaluation of ``--eval-images`` images against one of a tenth as many."""
    classes = 64  # the default world's classes
    large = max(2, math.ceil(bench.args.eval_images / classes))
    small = max(1, large // 10)
    with tempfile.TemporaryDirectory() as tmp:
        runs = {n: _evaluate(n, Path(tmp), bench.args.eval_workers) for n in (small, large)}
    big, little = runs[large], runs[small]
    row = bench.common("eval_stream") | {
        "unit": "MiB peak RSS (lower is better; ratio = small run / large run)",
        "clipadapt": big["peak_mib"],
        "baseline": little["peak_mib"],
        "ratio": little["peak_mib"] / big["peak_mib"],
        "images": big["images"],
        "baseline_images": little["images"],
        "images_per_s": big["images"] / big["seconds"],
        "num_workers": bench.args.eval_workers,
        "baseline_kind": f"the same evaluation on {little['images']} images",
    }
    return row
