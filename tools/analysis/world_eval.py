"""What a CLIP reads in the synthetic world: zero-shot top-1, colour and shape accuracy, scene retrieval R@1.

    python tools/analysis/world_eval.py                                 # the cached tiny CLIP, plain/test
    python tools/analysis/world_eval.py --weights run/tiny.pt --domain warm --split val

Prints one JSON object (percentages; see ``clipadapt.evaluation.world.evaluate_world``). The world is
the default one under ``$CLIPADAPT_DATA`` (generated when missing) unless ``--world`` names a root.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", help="open_clip state dict of a tiny-vit CLIP (default: the cached tiny CLIP)")
    parser.add_argument("--model", default="tiny-vit", help="model config name or JSON path")
    parser.add_argument("--world", help="synthetic world root (default: the default world, generated when missing)")
    parser.add_argument("--domain", default="plain")
    parser.add_argument("--split", default="test", choices=("val", "test"))
    args = parser.parse_args(argv)

    import torch

    import clipadapt
    from clipadapt.datasets.synthetic import ensure_synthetic_world
    from clipadapt.engine import ensure_tiny_clip, world_dir
    from clipadapt.evaluation.world import evaluate_world

    torch.set_num_threads(min(2, torch.get_num_threads()))
    weights = args.weights or ensure_tiny_clip()
    world = args.world or ensure_synthetic_world(world_dir())
    model = clipadapt.create_model(args.model, pretrained=str(weights)).eval()
    tokenizer = clipadapt.get_tokenizer(args.model, model=model)
    result = {"weights": str(weights), "domain": args.domain, "split": args.split}
    result |= {k: round(v, 2) for k, v in evaluate_world(model, tokenizer, world, args.domain, args.split).items()}
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
