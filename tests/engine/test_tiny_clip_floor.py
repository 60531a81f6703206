"""The floor under every demonstration: the tiny base CLIP reads colour and shape on a seen domain.

Loads the tiny CLIP that `make test` finds cached (``$CLIPADAPT_CACHE``) or pretrains it (minutes, once;
the file name carries the recipe, so a model of an older recipe is never what is measured), and
evaluates it zero-shot on the default world's ``plain`` test split (640 images, 10 per class; one image
is 0.16 points). Accuracy only: the time it took is never checked.
"""

from __future__ import annotations

import pytest

# What the default recipe must keep. Measured (docs/synthetic-world.md) it reads colour (98-99.8 %) and
# shape (28.8 % on one kind of machine, 21.1 % on another; chance 12.5 %); a build of the same recipe cut to
# 900 steps read shape at 18.6 %, so builds vary by several points (another CPU or thread count changes the
# float order, and the run with it). The shape
# floor sits 22 images above chance (one image is 0.16 points): a model that reads colour but guesses the
# shape, as the recipe before format version 3 did (12-13 %), fails. Issue 15's goal (shape 85 %, top-1
# 80 %) is out of reach of an 8-minute recipe on two cores; the frontier measured is in the docs.
FLOORS = {"colour": 90.0, "shape": 16.0, "top1": 15.0}


@pytest.fixture(scope="module")
def plain_test() -> dict[str, float]:
    import torch

    import clipadapt
    from clipadapt.datasets.synthetic import ensure_synthetic_world
    from clipadapt.engine import ensure_tiny_clip, world_dir
    from clipadapt.evaluation.world import evaluate_world

    weights = ensure_tiny_clip(progress=False)
    world = ensure_synthetic_world(world_dir(), progress=False)
    torch.manual_seed(0)
    model = clipadapt.create_model("tiny-vit", pretrained=str(weights)).eval()
    return evaluate_world(model, clipadapt.get_tokenizer("tiny-vit", model=model), world, "plain", "test")


@pytest.mark.slow
@pytest.mark.xdist_group("tiny_clip")
def test_the_tiny_clip_keeps_its_floor(plain_test: dict[str, float]) -> None:
    assert plain_test["images"] == 640
    for key, floor in FLOORS.items():
        assert plain_test[key] >= floor, (key, plain_test)
