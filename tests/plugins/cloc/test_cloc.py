"""CLOCPrompter: permutation-equivariant box embeddings, the sinusoidal prompt, CLOC's losses by definition."""

from __future__ import annotations

import math

import pytest
import torch

import clipadapt
from clipadapt.models.dense import encode_regions
from clipadapt.tasks import RegionTextAlignment
from clipadapt_plugins.cloc import Prompter, cloc_region_loss, grounding_loss, sinusoidal_corners

BOXES = [
    torch.tensor([[0.0, 0.0, 24.0, 40.0], [30.0, 10.0, 64.0, 64.0], [5.0, 5.0, 20.0, 12.0]]),
    torch.tensor([[8.0, 16.0, 48.0, 56.0], [0.0, 30.0, 64.0, 60.0]]),
]


def _model(**kwargs) -> clipadapt.CLIP:
    torch.manual_seed(0)
    return clipadapt.create_model("tiny-vit", plugins=[dict(type="CLOCPrompter", **kwargs)]).eval()


def _images() -> torch.Tensor:
    torch.manual_seed(1)
    return torch.randn(2, 3, 64, 64)


def test_prompter_output_is_permutation_equivariant_over_boxes() -> None:
    model = _model()
    with torch.no_grad():
        base = encode_regions(model, _images(), BOXES)
        perms = [torch.tensor([2, 0, 1]), torch.tensor([1, 0])]
        shuffled = encode_regions(model, _images(), [b[p] for b, p in zip(BOXES, perms, strict=True)])
        # Images swapped with their boxes: the same regions come out in the new order.
        swapped = encode_regions(model, _images().flip(0), BOXES[::-1])
    torch.testing.assert_close(shuffled, torch.cat([base[:3][perms[0]], base[3:][perms[1]]]), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(swapped, torch.cat([base[3:], base[:3]]), atol=1e-5, rtol=1e-5)
    assert base.shape == (5, model.embed_dim) and (base[0] - base[1]).abs().max() > 1e-4  # boxes matter


def test_prompter_is_a_single_head_layer_over_prompts_and_vit_tokens() -> None:
    torch.manual_seed(0)
    prompter = Prompter(width=16, embed_dim=8)
    assert prompter.block.attn.num_heads == 1
    tokens = torch.randn(2, 5, 16)
    boxes = torch.tensor([[0.1, 0.2, 0.5, 0.9]])
    prompts = prompter.box_prompts(boxes)  # [1, 2, 16]
    want = prompter.norm(prompter.block(torch.cat([prompts, tokens[1:]], 1)).mean(1)) @ prompter.proj
    torch.testing.assert_close(prompter(boxes, tokens, torch.tensor([1])), want)


def test_sinusoidal_corners_follow_the_2d_position_encoding() -> None:
    box = torch.tensor([[0.25, 0.5, 0.75, 1.0]])
    enc = sinusoidal_corners(box, width=8, temperature=100.0)  # 2 frequencies: 1 and 100 ** -0.5
    assert enc.shape == (1, 2, 8)
    freqs = [1.0, 100.0**-0.5]
    for corner, (x, y) in enumerate([(0.25, 0.5), (0.75, 1.0)]):
        want = []
        for value in (x, y):
            angles = [2 * math.pi * value * f for f in freqs]
            want += [math.sin(a) for a in angles] + [math.cos(a) for a in angles]
        assert enc[0, corner].tolist() == pytest.approx(want, abs=1e-6)


def test_prompter_head_starts_as_the_towers_head() -> None:
    model = _model()
    prompter = model.plugins["cloc"].prompter
    torch.testing.assert_close(prompter.proj, model.visual.proj, atol=0, rtol=0)
    torch.testing.assert_close(prompter.norm.weight, model.visual.ln_post.weight, atol=0, rtol=0)


def test_cloc_loss_ignores_near_duplicate_negatives_by_definition() -> None:
    regions = torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]], requires_grad=True)
    texts = torch.nn.functional.normalize(torch.tensor([[1.0, 0.0], [0.99, 0.1], [0.0, 1.0]]), dim=1)
    texts.requires_grad_(True)
    scale = 10.0
    r, t = regions.tolist(), texts.tolist()
    dup = [[sum(a * b for a, b in zip(t[i], t[j], strict=True)) > 0.9 for j in range(3)] for i in range(3)]
    assert dup[0][1] and dup[1][0] and not dup[0][2]

    def ce(pairs: list[tuple[int, int]], target: tuple[int, int]) -> float:
        score = {p: scale * sum(a * b for a, b in zip(r[p[0]], t[p[1]], strict=True)) for p in pairs}
        return -score[target] + math.log(sum(math.exp(v) for v in score.values()))

    rows = [ce([(i, j) for j in range(3) if i == j or not dup[i][j]], (i, i)) for i in range(3)]
    cols = [ce([(j, i) for j in range(3) if i == j or not dup[j][i]], (i, i)) for i in range(3)]
    loss = cloc_region_loss(regions, texts, torch.tensor(scale), threshold=0.9)
    assert loss.item() == pytest.approx((sum(rows) / 3 + sum(cols) / 3) / 2, rel=1e-6)
    loss.backward()  # the duplicate mask has no gradient; the logits do
    assert texts.grad is not None and regions.grad is not None


def test_grounding_loss_is_the_summed_squared_error_per_box() -> None:
    pred = torch.tensor([[0.1, 0.2, 0.5, 0.5], [0.0, 0.0, 1.0, 1.0]])
    target = torch.tensor([[0.0, 0.2, 0.5, 0.7], [0.0, 0.5, 1.0, 1.0]])
    assert grounding_loss(pred, target).item() == pytest.approx(((0.01 + 0.04) + 0.25) / 2)


def test_region_task_with_the_prompter_adds_cloc_and_grounding_losses() -> None:
    torch.manual_seed(0)
    task = RegionTextAlignment(
        "tiny-vit",
        plugins=[dict(type="CLOCPrompter")],
        loss_weights=dict(long=0.0, region=0.0, hard_negative=0.0, hard_batch=0.0, cmr=0.0, tic=0.0),
    ).train()
    samples = {
        "boxes": BOXES,
        "phrases": [["a red circle", "a blue star", "a red circle"], ["a green cross", "a pink ring"]],
        "caption": ["a red circle and a blue star", "a green cross"],
    }
    losses = task(_images(), samples, mode="loss")
    assert set(losses) == {"loss_global", "loss_cloc", "loss_grounding"}
    sum(losses.values()).backward()
    plugin = task.clip.plugins["cloc"]
    assert plugin.box_head[0].weight.grad is not None and plugin.prompter.text_embed.weight.grad is not None
    assert plugin.prompter.box_embed.weight.grad.abs().sum() > 0
    assert plugin.losses({"image_features": torch.zeros(1)}) == {}  # outside a region task: no terms
