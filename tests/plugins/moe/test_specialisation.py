"""Expert specialisation statistics: routing entropy, usage per cluster, distances between experts."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from clipadapt_plugins.moe import MoEUpcycle
from clipadapt_plugins.moe.layer import ROUTER_AUX_KEY, SparseMoE
from clipadapt_plugins.moe.specialisation import RoutingTally, expert_distance, specialisation
from clipadapt_plugins.moe.tables import write_specialisation

WIDTH, EXPERTS = 4, 4


def _layer(gate: torch.Tensor) -> SparseMoE:
    torch.manual_seed(0)
    mlp = nn.Sequential(nn.Linear(WIDTH, 8), nn.GELU(), nn.Linear(8, WIDTH))
    layer = SparseMoE(mlp, WIDTH, EXPERTS, top_k=2)
    with torch.no_grad():
        layer.gate.weight.copy_(gate)
    return layer


def _route(layer: SparseMoE, x: torch.Tensor, mask: torch.Tensor | None = None) -> dict[str, list]:
    records: list = []
    layer.set_routing(mask, records)
    layer(x)
    return {ROUTER_AUX_KEY: records}


def test_a_router_that_follows_the_cluster_scores_nmi_one() -> None:
    # Cluster 0's tokens point along e0, cluster 1's along e1; the router's first choice is expert 0 for
    # e0 and expert 1 for e1, so the cluster decides the first expert.
    layer = _layer(torch.tensor([[4.0, 0, 0, 0], [0, 4.0, 0, 0], [1.0, 1.0, 0, 0], [0, 0, 0, 0]]))
    x = torch.zeros(4, 3, WIDTH)  # 4 samples of 3 tokens
    x[:2, :, 0] = 1.0
    x[2:, :, 1] = 1.0
    tally = RoutingTally({"vision": ["vision.0"]}, EXPERTS, num_clusters=2)
    tally.add("vision", _route(layer, x), torch.tensor([0, 0, 1, 1]))
    stats = tally.summary()["vision.0"]
    assert stats["tokens"] == 12 and stats["cluster_sizes"] == [12, 12]  # 6 tokens x 2 slots per cluster
    assert stats["nmi"] == pytest.approx(1.0, abs=1e-12)
    # Both clusters send their second slot to expert 2 (logit 1 against 0): shares 1/2, 0, 1/2, 0 and 0, 1/2, 1/2, 0.
    assert stats["cluster_usage"] == [[0.5, 0.0, 0.5, 0.0], [0.0, 0.5, 0.5, 0.0]]
    assert stats["usage"] == pytest.approx([0.25, 0.25, 0.5, 0.0])
    assert stats["usage_entropy"] == pytest.approx(1.5 * math.log(2) / math.log(4))


def test_a_router_with_no_preference_has_entropy_one_and_ignores_the_cluster() -> None:
    layer = _layer(torch.zeros(EXPERTS, WIDTH))  # equal logits: uniform softmax, the same top-2 everywhere
    x = torch.randn(4, 3, WIDTH)
    tally = RoutingTally({"vision": ["vision.0"]}, EXPERTS, num_clusters=2)
    tally.add("vision", _route(layer, x), torch.tensor([0, 1, 0, 1]))
    stats = tally.summary()["vision.0"]
    assert stats["token_entropy"] == pytest.approx(1.0, abs=1e-6)  # float32 softmax of equal logits
    assert stats["nmi"] == 0.0 and stats["cluster_usage"][0] == stats["cluster_usage"][1]


def test_unrouted_text_tokens_are_not_counted_and_routed_ones_keep_their_sample() -> None:
    layer = _layer(torch.randn(EXPERTS, WIDTH, generator=torch.Generator().manual_seed(1)))
    x = torch.randn(3, 5, WIDTH)
    mask = torch.arange(5)[None, :] <= torch.tensor([1, 4, 0])[:, None]  # tokens up to each EOT
    aux = _route(layer, x, mask)
    assert aux[ROUTER_AUX_KEY][0].sample_index().tolist() == [0, 0, 1, 1, 1, 1, 1, 2]
    tally = RoutingTally({"text": ["text.0"]}, EXPERTS, num_clusters=3)
    tally.add("text", aux, torch.tensor([2, 0, 1]))  # sample 0 is cluster 2, sample 1 cluster 0, sample 2 cluster 1
    stats = tally.summary()["text.0"]
    assert stats["tokens"] == 8 and stats["cluster_sizes"] == [10, 2, 4]


def test_records_must_match_the_layers() -> None:
    tally = RoutingTally({"vision": ["vision.0", "vision.1"]}, EXPERTS, num_clusters=2)
    layer = _layer(torch.zeros(EXPERTS, WIDTH))
    with pytest.raises(ValueError, match=r"vision: 1 router records for the MoE layers \['vision.0', 'vision.1'\]"):
        tally.add("vision", _route(layer, torch.randn(2, 3, WIDTH)), torch.tensor([0, 1]))


def test_expert_distance_is_zero_for_copies_and_relative_otherwise() -> None:
    layer = _layer(torch.zeros(EXPERTS, WIDTH))
    assert expert_distance(layer) == 0.0  # upcycled: four copies of one MLP
    flat = [torch.cat([p.detach().reshape(-1) for p in e.parameters()]) for e in layer.experts]
    with torch.no_grad():
        for p in layer.experts[3].parameters():
            p.mul_(2.0)  # expert 3 = 2 w: distance ||w|| to each of the three others, 0 among them
    norm = float(flat[0].norm())
    expected = (3 * norm) / 6 / ((3 * norm + 2 * norm) / 4)
    assert expert_distance(layer) == pytest.approx(expected, rel=1e-6)


def test_specialisation_of_an_upcycled_clip_and_its_table(tiny_base, tmp_path) -> None:
    import copy

    clip = copy.deepcopy(tiny_base)
    moe = MoEUpcycle(num_experts=EXPERTS, top_k=2, vision_layers=1, text_layers=1)
    clip.attach(moe)
    images = torch.randn(3, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    text = torch.zeros(3, 77, dtype=torch.long)
    text[:, 0], text[:, 1:4] = 49406, 320
    text[torch.arange(3), torch.tensor([4, 5, 6])] = 49407  # EOT at 4, 5, 6
    with torch.no_grad():
        outputs = {"vision": clip.forward_image(images), "text": clip.forward_text(text)}
    stats = specialisation(moe.layers, [(outputs, torch.tensor([0, 1, 1]))], num_clusters=2)
    assert sorted(stats) == ["text.3", "vision.3"]
    assert stats["vision.3"]["tokens"] == 3 * 65 and stats["text.3"]["tokens"] == 5 + 6 + 7
    assert stats["vision.3"]["expert_distance"] == 0.0  # identical experts before any training

    per_seed = {s: [{"method": "Upcycled, untrained", "layers": stats}] for s in (0, 1)}
    rows = write_specialisation(per_seed, tmp_path)
    assert [(r["method"], r["layer"]) for r in rows] == [
        ("Upcycled, untrained", "vision.3"),
        ("Upcycled, untrained", "text.3"),
    ]
    assert rows[0]["nmi"][1] == 0.0  # two equal seeds: std 0
    assert "| Upcycled, untrained | vision.3 |" in (tmp_path / "specialisation.md").read_text()
