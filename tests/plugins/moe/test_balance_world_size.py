"""The balance loss is scaled as CLIP-MoE's ``train_moe.py`` scales it, at world sizes 1 and 2 (gloo).

The original (``clipmoe/model_clipmoe.py`` and ``train/train_moe.py``): each tower's
``load_balancing_loss_func`` is divided by the world size, and the total is
``0.01 * (L_image + L_text_long / 2 + L_text_short / 2)`` (the short term is off by default).
"""

from __future__ import annotations

import os

import pytest
import torch
import torch.distributed as torch_dist
import torch.multiprocessing as mp
import torch.nn.functional as F

from clipadapt.models import TextOutput, VisionOutput
from clipadapt_plugins.moe import MoEUpcycle
from clipadapt_plugins.moe.layer import ROUTER_AUX_KEY, RouterRecord

TOP_K, EXPERTS = 2, 4


def _records(seed: int, tokens: int) -> list[RouterRecord]:
    generator = torch.Generator().manual_seed(seed)
    logits = [torch.randn(tokens, EXPERTS, generator=generator) for _ in range(2)]  # two MoE layers
    return [RouterRecord(x, torch.softmax(x, -1).topk(TOP_K, -1).indices) for x in logits]


def _original_balance(gate_logits: torch.Tensor) -> torch.Tensor:
    """CLIP-MoE's ``load_balancing_loss_func``, written from its code (pooled tokens of all layers)."""
    weights = F.softmax(gate_logits, dim=-1)
    _, selected = torch.topk(weights, TOP_K, dim=-1)
    expert_mask = F.one_hot(selected, EXPERTS)  # [T, k, E]
    tokens_per_expert = expert_mask.float().mean(dim=0)  # [k, E]
    router_prob_per_expert = weights.mean(dim=0)  # [E]
    return (tokens_per_expert * router_prob_per_expert.unsqueeze(0)).sum() * EXPERTS


def _outputs(rank: int) -> dict:
    image, text = _records(10 + rank, 12), _records(20 + rank, 7)
    return {
        "image_output": VisionOutput(torch.zeros(3, 4), None, {ROUTER_AUX_KEY: image}),
        "text_output": TextOutput(torch.zeros(3, 4), None, None, {ROUTER_AUX_KEY: text}),
    }


def _expected(rank: int, world_size: int) -> float:
    outputs = _outputs(rank)
    image = torch.cat([r.logits for r in outputs["image_output"].aux[ROUTER_AUX_KEY]])
    text = torch.cat([r.logits for r in outputs["text_output"].aux[ROUTER_AUX_KEY]])
    image_loss = _original_balance(image) / world_size  # image_routerLoss_long /= dist.get_world_size()
    text_loss = _original_balance(text) / world_size
    return float(0.01 * (image_loss + text_loss / 2))  # beta * (L_image + L_text_long / 2), no short text


def _rank(rank: int, world_size: int, init_file: str, out_dir: str) -> None:
    torch_dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world_size)
    try:
        loss = MoEUpcycle().losses(_outputs(rank))["loss_moe_balance"]
        torch.save(loss.detach(), os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        torch_dist.destroy_process_group()


@pytest.mark.slow  # spawns gloo processes
@pytest.mark.parametrize("world_size", [1, 2])
def test_balance_loss_is_scaled_as_the_original(tmp_path, world_size):
    mp.spawn(_rank, args=(world_size, str(tmp_path / "init"), str(tmp_path)), nprocs=world_size, join=True)
    for rank in range(world_size):
        loss = torch.load(tmp_path / f"rank{rank}.pt")
        # fp32 sums of a few dozen terms of size ~1: relative error ~1e-6
        assert float(loss) == pytest.approx(_expected(rank, world_size), rel=1e-5)


def test_options_give_the_plain_sum_at_any_world_size():
    outputs = _outputs(0)
    plain = MoEUpcycle(balance_tower_weights=dict(text=1.0), balance_world_size_scaling=False).losses(outputs)
    image = torch.cat([r.logits for r in outputs["image_output"].aux[ROUTER_AUX_KEY]])
    text = torch.cat([r.logits for r in outputs["text_output"].aux[ROUTER_AUX_KEY]])
    expected = 0.01 * (_original_balance(image) + _original_balance(text))
    assert float(plain["loss_moe_balance"]) == pytest.approx(float(expected), rel=1e-5)


def test_expert_dropout_is_active_in_training_only():
    from clipadapt.models.transformer import MLP
    from clipadapt_plugins.moe.layer import SparseMoE

    layer = SparseMoE(MLP(8, 32, torch.nn.GELU), 8, 4, 2, dropout=0.5)
    assert set(layer.state_dict()) == set(SparseMoE(MLP(8, 32, torch.nn.GELU), 8, 4, 2).state_dict())
    x = torch.randn(2, 5, 8)
    layer.eval()
    torch.testing.assert_close(layer(x), layer(x))
    layer.train()
    assert not torch.equal(layer(x), layer(x))


def test_the_recipe_composes_longclips_frozen_stretch_under_moe(tiny_weights) -> None:
    from mmengine.config import Config

    from clipadapt.tasks import ImageTextContrastive
    from tests.helpers import ROOT

    recipe = Config.fromfile(str(ROOT / "configs/moe/clipmoe_vit-b-16_4x2_1xb100_sharegpt4v.py")).model
    plugins = [dict(p) for p in recipe.plugins]
    assert [p["type"] for p in plugins] == ["LongCLIP", "MoEUpcycle"]
    assert (recipe.label_smoothing, recipe.max_logit_scale, plugins[1]["expert_dropout"]) == (0.1, None, 0.1)
    plugins[1] |= dict(vision_layers=1, text_layers=1)  # the tiny towers: one block each
    task = ImageTextContrastive("tiny-vit", pretrained=str(tiny_weights), plugins=plugins, label_smoothing=0.1)
    assert task.clip.context_length == 248  # the long captions are read at 248 tokens
    trainable = {n for n, p in task.clip.named_parameters() if p.requires_grad}
    assert trainable and all(n.endswith(".gate.weight") for n in trainable)  # the stretch stays frozen


def test_the_contrastive_task_smooths_its_labels(tiny_weights) -> None:
    from clipadapt.tasks import ImageTextContrastive, clip_loss

    torch.manual_seed(0)
    task = ImageTextContrastive("tiny-vit", pretrained=str(tiny_weights), label_smoothing=0.1).eval()
    images, captions = torch.randn(3, 3, 64, 64), ["a red circle", "a blue star", "a green square"]
    with torch.no_grad():
        loss = task(images, {"caption": captions}, mode="loss")["loss_contrastive"]
        image = task.clip.encode_image(images, normalize=True)
        text = task.clip.encode_text(task.tokenize(captions), normalize=True)
        scale = task.clip.logit_scale.exp()
    # CLIP-MoE's model_clipmoe.py: (CE(i2t, label_smoothing=0.1) + CE(t2i, label_smoothing=0.1)) / 2
    torch.testing.assert_close(loss, clip_loss(image, text, scale, label_smoothing=0.1))
    assert not torch.allclose(loss, clip_loss(image, text, scale))
