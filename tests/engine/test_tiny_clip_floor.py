"""The floor under every demonstration: the tiny base CLIP reads colour and shape on a seen domain.

Loads the tiny CLIP that `make test` finds cached (``$CLIPADAPT_CACHE``) or pretrains it (minutes, once;
the file name carries the recipe, so a model of an older recipe is never what is measured), and
evaluates it zero-shot on the default world's ``plain`` test split (640 images, 10 per class). Accuracy
only: the time it took is never checked.
"""

from __future__ import annotations

import pytest

# The floors of issue 15's goal, in percent of the 640 test images (one image is 0.16 points).
SHAPE_FLOOR = 85.0
COLOUR_FLOOR = 95.0


@pytest.mark.slow
@pytest.mark.xdist_group("tiny_clip")
def test_the_tiny_clip_reads_colour_and_shape() -> None:
    import torch

    import clipadapt
    from clipadapt.datasets.synthetic import ensure_synthetic_world
    from clipadapt.engine import ensure_tiny_clip, world_dir
    from clipadapt.engine.world_eval import evaluate_world

    weights = ensure_tiny_clip(progress=False)
    world = ensure_synthetic_world(world_dir(), progress=False)
    torch.manual_seed(0)
    model = clipadapt.create_model("tiny-vit", pretrained=str(weights)).eval()
    result = evaluate_world(model, clipadapt.get_tokenizer("tiny-vit", model=model), world, "plain", "test")
    assert result["images"] == 640
    assert result["colour"] >= COLOUR_FLOOR, result
    assert result["shape"] >= SHAPE_FLOOR, result
