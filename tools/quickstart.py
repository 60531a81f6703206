"""clipadapt in five minutes on a laptop CPU: zero-shot CLIP, then a prompt plugin trained on 16 shots.

    make quickstart          # or: python tools/quickstart.py

1. generates the synthetic world (coloured shapes on several backgrounds) unless it is cached;
2. builds the tiny base CLIP (contrastive pretraining on the world's scenes and objects, never on
   its "dark" domain) unless it is cached;
3. evaluates it zero-shot on the dark domain's 64 classes (configs/zeroshot/...);
4. trains VPT prompts on 16 shots per class of the dark domain with tools/train.py
   (configs/vpt/...), and evaluates the checkpoint with tools/test.py;
5. prints the before/after table and where the logs, TensorBoard events and checkpoint are.

Caches: $CLIPADAPT_CACHE (default ~/.cache/clipadapt), $CLIPADAPT_DATA (default <cache>/synthetic).
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]
ZERO_SHOT = ROOT / "configs" / "zeroshot" / "zeroshot_tiny-vit_synthetic-dark.py"
VPT = ROOT / "configs" / "vpt" / "vpt_tiny-vit_1xb32_synthetic-dark-16shot.py"


def _tool(name: str) -> ModuleType:
    """tools/<name>.py as a module (``test`` would clash with the standard library's package)."""
    spec = importlib.util.spec_from_file_location(f"clipadapt_tools_{name}", Path(__file__).parent / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _step(message: str) -> None:
    print(f"\n==> {message}", flush=True)


def _size(path: Path) -> str:
    size = path.stat().st_size
    return f"{size / 1e6:.1f} MB" if size >= 1e6 else f"{size / 1e3:.0f} KB"


def main(argv: list[str] | None = None) -> dict[str, dict[str, float]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--work-dir", default="work_dirs/quickstart", help="where the runs write logs and checkpoints")
    parser.add_argument("--epochs", type=int, help="VPT training epochs (default: the config's)")
    args = parser.parse_args(argv)
    start = time.time()
    work_dir = Path(args.work_dir).resolve()

    from mmengine.config import Config

    from clipadapt.datasets.synthetic import ensure_synthetic_world
    from clipadapt.engine import data_dir, enable_safe_resume, ensure_tiny_clip

    enable_safe_resume()
    _step(f"synthetic world at {data_dir()}")
    ensure_synthetic_world(data_dir(), **(Config.fromfile(str(VPT)).get("synthetic_world") or {}))
    _step("tiny base CLIP")
    print(f"    {ensure_tiny_clip()}  ({time.time() - start:.0f} s so far)", flush=True)

    _step("zero-shot evaluation on the unseen 'dark' domain (64 classes)")
    test_tool = _tool("test")
    before = test_tool.main([str(ZERO_SHOT), "--work-dir", str(work_dir / "zeroshot")])

    _step("training VPT prompts on 16 shots per class (tools/train.py)")
    train_dir = work_dir / "vpt"
    train_args = [str(VPT), "--work-dir", str(train_dir)]
    if args.epochs is not None:
        train_args += ["--cfg-options", f"train_cfg.max_epochs={args.epochs}"]
    _tool("train").main(train_args)
    checkpoint = Path((train_dir / "last_checkpoint").read_text().strip())

    _step("evaluating the trained prompts (tools/test.py)")
    after = test_tool.main([str(VPT), str(checkpoint), "--work-dir", str(work_dir / "vpt_test")])

    rows = [("zero-shot tiny CLIP", before), ("+ VPT prompts, 16 shots", after)]
    print("\n| synthetic 'dark' domain, 64 classes | top-1 | top-5 |")
    print("|---|---:|---:|")
    for name, metrics in rows:
        print(f"| {name} | {metrics['accuracy/top1']:.1f} | {metrics['accuracy/top5']:.1f} |")
    print(f"(chance: top-1 {100 / 64:.1f}, top-5 {500 / 64:.1f})")
    logs = sorted(train_dir.glob("*/*.log"))
    print(f"\nlogs:        {logs[-1] if logs else train_dir}")
    print(f"TensorBoard: tensorboard --logdir {train_dir}")
    print(f"checkpoint:  {checkpoint} ({_size(checkpoint)}: the prompts only, plus a reference to the base weights)")
    print(f"total time:  {time.time() - start:.0f} s")
    return {"zero_shot": dict(before), "vpt": dict(after)}


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
