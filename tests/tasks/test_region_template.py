"""The region task builds its class text features with a prompt plugin's template (CoOp's learned
context), as the prompt classifier does, not with its own hand templates."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from clipadapt.tasks import RegionTextAlignment

CLASSES = ["red circle", "blue star", "green square"]


def test_region_task_uses_coops_learned_template() -> None:
    torch.manual_seed(0)
    own_template = "{} on a plain background, twice."
    task = RegionTextAlignment(
        "tiny-vit", plugins=[dict(type="CoOp", n_ctx=4)], classnames=CLASSES, templates=[own_template]
    ).eval()
    coop = task.clip.plugins["coop"]
    assert coop.text_template == "X X X X {}."
    with torch.no_grad():
        features = task.class_text_features()
        # by hand: CoOp's prompts through the hooked text tower, normalised (one template: no averaging)
        prompts = [coop.text_template.format(name) for name in CLASSES]
        expected = F.normalize(task.clip.encode_text(task.tokenize(prompts)), dim=-1)
        own = F.normalize(task.clip.encode_text(task.tokenize([own_template.format(n) for n in CLASSES])), dim=-1)
    torch.testing.assert_close(features, expected, rtol=1e-5, atol=1e-6)
    assert not torch.allclose(features, own, atol=1e-3)  # not the task's own template

    # The learned context moves the class features (a fresh cache after train()).
    with torch.no_grad():
        for p in coop.parameters():
            p.add_(torch.randn_like(p))
    task.train().eval()
    with torch.no_grad():
        moved = task.class_text_features()
        again = F.normalize(task.clip.encode_text(task.tokenize(prompts)), dim=-1)
    torch.testing.assert_close(moved, again, rtol=1e-5, atol=1e-6)
    assert not torch.allclose(moved, features, atol=1e-3)
