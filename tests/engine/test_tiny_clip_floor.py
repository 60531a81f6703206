"""The floor under every demonstration: the tiny base CLIP reads colour and shape on a seen domain.

Loads the tiny CLIP that `make test` finds cached (``$CLIPADAPT_CACHE``) or pretrains it (minutes, once;
the file name carries the recipe, so a model of an older recipe is never what is measured), and
evaluates it zero-shot on the default world's ``plain`` test split (640 images, 10 per class; one image
is 0.16 points). Accuracy only: the time it took is never checked.
"""

from __future__ import annotations

import pytest

# What the default recipe must keep. Measured (docs/synthetic-world.md) it reads colour (about 99 %) but
# not shape (chance is 12.5 %), so the floors guard colour and the plumbing (a broken model, tokenizer or
# world reads colour at chance, 12.5 %, and top-1 at 1.6 %), with a margin of many images.
FLOORS = {"colour": 90.0, "shape": 10.0, "top1": 8.0}
# Issue 15's goal, not reached by a recipe of at most 8 minutes on two cores yet: reported as xfail until
# a recipe reaches it (then XPASS, and FLOORS should rise to it).
GOAL = {"colour": 95.0, "shape": 85.0, "top1": 80.0}


@pytest.fixture(scope="module")
def plain_test() -> dict[str, float]:
    import torch

    import clipadapt
    from clipadapt.datasets.synthetic import ensure_synthetic_world
    from clipadapt.engine import ensure_tiny_clip, world_dir
    from clipadapt.engine.world_eval import evaluate_world

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


@pytest.mark.slow
@pytest.mark.xdist_group("tiny_clip")
@pytest.mark.xfail(reason="issue 15's goal is not reached in 8 minutes yet (docs/synthetic-world.md)", strict=False)
def test_the_tiny_clip_reaches_the_goal(plain_test: dict[str, float]) -> None:
    for key, goal in GOAL.items():
        assert plain_test[key] >= goal, (key, plain_test)
