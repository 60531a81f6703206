"""clipadapt in minutes on a laptop CPU: zero-shot CLIP, then a plugin trained on a few shots, before and after.

    make quickstart                                      # or: python tools/quickstart.py
    python tools/quickstart.py --config configs/coop/coop_tiny-vit_1xb4_synthetic-warm-b2n.py --domain warm

1. generates the synthetic world (coloured shapes on several backgrounds) unless it is cached;
2. builds the tiny base CLIP (contrastive pretraining on the world, with a progress bar and its ETA)
   unless it is cached;
3. evaluates the plugin config's model without its plugins (zero-shot CLIP, hand templates) on the
   test split of the chosen domain (tools/test.py);
4. trains the plugin on that domain's few shots with tools/train.py, and evaluates the checkpoint;
5. prints the before/after table (top-1, top-5, the gain, chance), where the logs, TensorBoard events
   and checkpoint are, and the three commands to run next.

What it shows is :data:`DEMO`, the one place to change. It needs no MMDetection and imports none.
Caches: $CLIPADAPT_CACHE (default ~/.cache/clipadapt), $CLIPADAPT_DATA (default <cache>/synthetic).
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path
from typing import Any

from clipadapt.engine.paths import load_tool

ROOT = Path(__file__).resolve().parents[1]

# The demo: the plugin config the quickstart trains, and the synthetic world's domain it trains and tests
# on ("dark" is a domain the tiny CLIP's pretraining never sees). The domain picks every data loader's
# split file (split_synthetic_<domain>.json); zero-shot is the same config without plugins, same images.
# Changing it: the README's quickstart paragraph and docs/getting-started.md (steps 3-4, the commands
# after them) describe it; tests/tools/test_quickstart.py follows it by itself.
DEMO = dict(config="configs/vpt/vpt_tiny-vit_1xb32_synthetic-dark-16shot.py", domain="dark")

# What a user runs next: (what for, the command, a note).
NEXT = [
    (
        "your data",
        "python tools/make_split.py imagefolder --root data/mine --train train --test val --out data/mine/split.json",
        "then point a data set config at it, as configs/_base_/datasets/coop/dtd.py does (docs/datasets.md)",
    ),
    (
        "real weights",
        "python tools/train.py configs/maple/maple_vit-b-16_1xb4-5e_imagenet-b2n.py "
        "--cfg-options model.pretrained=/path/to/ViT-B-16.pt",
        "a local open_clip or OpenAI file; MaPLe's recipe on ImageNet in CoOp's layout (docs/getting-started.md)",
    ),
    (
        "another plugin",
        "python tools/quickstart.py --config configs/coop/coop_tiny-vit_1xb4_synthetic-warm-b2n.py --domain warm",
        "any few-shot classification config of configs/ (one page per plugin in docs/plugins/)",
    ),
]


def _step(message: str) -> None:
    print(f"\n==> {message}", flush=True)


def _size(path: Path) -> str:
    size = path.stat().st_size
    return f"{size / 1e6:.1f} MB" if size >= 1e6 else f"{size / 1e3:.0f} KB"


def _as_dict(options: list[str]) -> dict[str, Any]:
    """``key=value`` strings as MMEngine's ``--cfg-options`` parses them."""
    from mmengine.config import DictAction

    parser = argparse.ArgumentParser()
    parser.add_argument("--options", nargs="+", action=DictAction, default={})
    return parser.parse_args(["--options", *options]).options if options else {}


def domain_options(domain: str) -> list[str]:
    """``--cfg-options`` that train, validate and test on the synthetic world's ``domain``."""
    split = f"split_synthetic_{domain}.json"
    return [f"{phase}_dataloader.dataset.split_file={split}" for phase in ("train", "val", "test")]


def describe(cfg: Any) -> str:
    """The table's name for the trained model: its plugins and shots (``+ VPT, 16 shots per class``)."""
    plugins = ", ".join(p["type"] for p in cfg.model.get("plugins") or []) or "fine-tuning"
    shots = cfg.train_dataloader.dataset.get("num_shots")
    return f"+ {plugins}" + (f", {shots} shots per class" if shots else "")


def count_classes(cfg: Any) -> int:
    """Classes of the test split, as the test run sees them (after any base/novel subsampling)."""
    from clipadapt.engine import resolve_uri
    from clipadapt.registry import DATASETS

    world = dict(cfg.get("synthetic_world") or {})
    dataset = copy.deepcopy(cfg.test_dataloader.dataset)
    for key, value in dataset.items():  # synthetic:// paths only: nothing else gets built here
        if isinstance(value, str):
            dataset[key] = resolve_uri(value, world)
    return len(DATASETS.build(dataset).metainfo["classes"])


def table(domain: str, classes: int, rows: list[tuple[str, dict[str, float]]]) -> str:
    """The before/after Markdown table: top-1 and top-5 of each row, the gain of the last, and chance."""

    def cell(metrics: dict[str, float], key: str) -> str:
        return f"{metrics[key]:.1f}" if key in metrics else "-"

    keys = ("accuracy/top1", "accuracy/top5")
    lines = [f"| synthetic '{domain}' domain, {classes} classes | top-1 | top-5 |", "|---|---:|---:|"]
    lines += [f"| {name} | {cell(m, keys[0])} | {cell(m, keys[1])} |" for name, m in rows]
    (_, before), (_, after) = rows[0], rows[-1]
    gain = [f"{after[k] - before[k]:+.1f}" if k in after and k in before else "-" for k in keys]
    lines.append(f"| **gain** | **{gain[0]}** | **{gain[1]}** |")
    lines.append(f"| chance | {100 / classes:.1f} | {100 * min(5, classes) / classes:.1f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default=DEMO["config"], help="the plugin config to train (default: %(default)s)")
    parser.add_argument("--domain", default=DEMO["domain"], help="the synthetic world's domain (default: %(default)s)")
    parser.add_argument("--work-dir", default="work_dirs/quickstart", help="where the runs write logs and checkpoints")
    parser.add_argument("--epochs", type=int, help="training epochs (default: the config's)")
    parser.add_argument("--cfg-options", nargs="+", default=[], help="key=value overrides for every run")
    args = parser.parse_args(argv)
    start = time.time()
    work_dir = Path(args.work_dir).resolve()
    config = Path(args.config) if Path(args.config).is_file() else ROOT / args.config
    options = domain_options(args.domain) + args.cfg_options
    if args.epochs is not None:
        options.append(f"train_cfg.max_epochs={args.epochs}")

    from mmengine.config import Config

    from clipadapt.datasets.synthetic import ensure_synthetic_world
    from clipadapt.engine import enable_safe_resume, ensure_tiny_clip, world_dir

    enable_safe_resume()
    cfg = Config.fromfile(str(config))
    cfg.merge_from_dict(_as_dict(options))
    world = dict(cfg.get("synthetic_world") or {})
    _step(f"synthetic world at {world_dir(world)}")
    ensure_synthetic_world(world_dir(world), **world)
    tiny = str(cfg.model.get("pretrained", "")).startswith("cache://tiny-vit-synthetic")
    if tiny:
        _step("tiny base CLIP")
        print(f"    {ensure_tiny_clip()}  ({time.time() - start:.0f} s so far)", flush=True)
    classes = count_classes(cfg)

    _step(f"zero-shot evaluation on the '{args.domain}' domain ({classes} classes; tools/test.py)")
    test_tool = load_tool("test")
    zero_shot = [str(config), "--work-dir", str(work_dir / "zeroshot"), "--cfg-options", *options, "model.plugins=[]"]
    before = test_tool.main(zero_shot)

    _step(f"training {describe(cfg)[2:]} (tools/train.py)")
    train_dir = work_dir / "train"
    load_tool("train").main([str(config), "--work-dir", str(train_dir), "--cfg-options", *options])
    checkpoint = Path((train_dir / "last_checkpoint").read_text().strip())

    _step("evaluating the trained checkpoint (tools/test.py)")
    after = test_tool.main(
        [str(config), str(checkpoint), "--work-dir", str(work_dir / "test"), "--cfg-options", *options]
    )

    rows = [("zero-shot tiny CLIP" if tiny else "zero-shot CLIP", dict(before)), (describe(cfg), dict(after))]
    print("\n" + table(args.domain, classes, rows))
    logs = sorted(train_dir.glob("*/*.log"))
    print(f"\nlogs:        {logs[-1] if logs else train_dir}")
    print(f"TensorBoard: tensorboard --logdir {train_dir}")
    print(f"checkpoint:  {checkpoint} ({_size(checkpoint)}: what trained, plus a reference to the base weights)")
    print(f"total time:  {time.time() - start:.0f} s")
    print("\nNext:")
    for what, command, note in NEXT:
        print(f"  {what + ':':<16}{command}\n  {'':<16}{note}")
    return {"zero_shot": dict(before), "trained": dict(after), "classes": classes, "checkpoint": str(checkpoint)}


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
