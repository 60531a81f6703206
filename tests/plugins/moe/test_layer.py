"""The MoE layer against its definitions: routing, grouped dispatch, the load-balancing loss."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from clipadapt_plugins.moe import SparseMoE, grouped_dispatch, load_balancing_loss, route


def _experts(num: int, width: int = 8, hidden: int = 16) -> nn.ModuleList:
    torch.manual_seed(1)
    return nn.ModuleList(
        nn.Sequential(nn.Linear(width, hidden), nn.GELU(), nn.Linear(hidden, width)) for _ in range(num)
    )


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_route_is_the_renormalised_top_k_of_the_fp32_softmax(dtype: torch.dtype) -> None:
    torch.manual_seed(0)
    logits = (3 * torch.randn(50, 4)).to(dtype)
    weights, indices = route(logits, top_k=2)
    probs = torch.softmax(logits.float(), dim=-1)
    expected_indices = probs.topk(2, dim=-1).indices
    assert torch.equal(indices, expected_indices)
    chosen = probs.gather(1, indices)
    assert weights.dtype == dtype
    torch.testing.assert_close(weights, (chosen / chosen.sum(-1, keepdim=True)).to(dtype), atol=0, rtol=0)
    tolerance = 1e-6 if dtype == torch.float32 else 1e-2
    torch.testing.assert_close(weights.float().sum(-1), torch.ones(50), atol=tolerance, rtol=0)
    assert (weights[:, 0] >= weights[:, 1]).all()  # best first


def test_route_casts_to_the_requested_dtype_and_checks_top_k() -> None:
    weights, _ = route(torch.randn(5, 4, dtype=torch.bfloat16), top_k=1, dtype=torch.float32)
    assert weights.dtype == torch.float32 and torch.equal(weights, torch.ones(5, 1))
    with pytest.raises(ValueError, match=r"top_k must be in \[1, 4\]"):
        route(torch.randn(5, 4), top_k=5)


def _naive(tokens: torch.Tensor, weights: torch.Tensor, indices: torch.Tensor, experts: nn.ModuleList) -> torch.Tensor:
    """Every expert on every token, masked to the chosen experts: the definition, at E times the cost."""
    out = torch.zeros_like(tokens)
    for e, expert in enumerate(experts):
        gate = (weights * (indices == e)).sum(-1, keepdim=True)  # [T, 1]: 0 where e was not chosen
        out = out + gate * expert(tokens)
    return out


@pytest.mark.parametrize("top_k", [1, 2, 3])
def test_grouped_dispatch_equals_all_experts_masked_to_the_choices(top_k: int) -> None:
    experts = _experts(4)
    torch.manual_seed(2)
    tokens = torch.randn(37, 8, requires_grad=True)
    logits = torch.randn(37, 4, requires_grad=True)
    weights, indices = route(logits, top_k)
    got = grouped_dispatch(tokens, weights, indices, experts)
    want = _naive(tokens, weights, indices, experts)
    torch.testing.assert_close(got, want, atol=1e-6, rtol=1e-5)
    # The gradients (tokens, router logits, expert weights) agree as well.
    grad = torch.randn_like(got)
    params = [tokens, logits, *experts.parameters()]
    got_grads = torch.autograd.grad(got, params, grad, retain_graph=True)
    want_grads = torch.autograd.grad(want, params, grad)
    for a, b in zip(got_grads, want_grads):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


def test_each_expert_runs_once_on_exactly_its_tokens() -> None:
    experts = _experts(4)
    seen: list[int] = [0] * 4
    calls: list[int] = [0] * 4
    for e, expert in enumerate(experts):

        def count(module, args, e=e):
            seen[e] += args[0].shape[0]
            calls[e] += 1

        expert.register_forward_pre_hook(count)
    # Expert 3 is never chosen: it must not run at all.
    indices = torch.tensor([[0, 1], [1, 2], [0, 2], [2, 0], [1, 0]])
    weights = torch.full((5, 2), 0.5)
    grouped_dispatch(torch.randn(5, 8), weights, indices, experts)
    assert seen == [4, 3, 3, 0]
    assert calls == [1, 1, 1, 0]


def _balance_by_definition(logits: torch.Tensor, top_k: int) -> float:
    """E * sum_{k, e} f[k, e] * P[e], with explicit loops over the tokens."""
    tokens, num_experts = logits.shape
    probs = torch.softmax(logits.double(), dim=-1)
    choices = probs.topk(top_k, dim=-1).indices
    total = 0.0
    for k in range(top_k):
        for e in range(num_experts):
            f = sum(1.0 for t in range(tokens) if choices[t, k] == e) / tokens
            p = sum(float(probs[t, e]) for t in range(tokens)) / tokens
            total += f * p
    return num_experts * total


def test_load_balancing_loss_equals_its_definition_on_fixed_logits() -> None:
    logits = torch.tensor(
        [
            [2.0, 0.5, -1.0, 0.0],
            [0.1, 1.5, 0.3, -0.2],
            [3.0, 2.5, 0.0, 0.0],
            [-1.0, 0.0, 1.0, 2.0],
            [0.0, 0.2, 0.1, 0.3],
        ]
    )
    for top_k in (1, 2, 3):
        assert float(load_balancing_loss(logits, top_k)) == pytest.approx(_balance_by_definition(logits, top_k), 1e-6)
    indices = route(logits, 2)[1]
    assert float(load_balancing_loss(logits, 2, indices)) == pytest.approx(_balance_by_definition(logits, 2), 1e-6)


@pytest.mark.parametrize("top_k", [1, 2, 4])
def test_load_balancing_loss_is_top_k_for_uniform_routing_and_larger_when_collapsed(top_k: int) -> None:
    uniform = torch.zeros(12, 4)  # every expert equally likely
    assert float(load_balancing_loss(uniform, top_k)) == pytest.approx(top_k, abs=1e-6)
    # Balanced choices (each expert first for a quarter of the tokens) with symmetric probabilities.
    balanced = torch.eye(4).repeat(3, 1) * 2.0
    assert float(load_balancing_loss(balanced, top_k)) == pytest.approx(top_k, abs=1e-6)
    collapsed = torch.tensor([[4.0, 3.0, 2.0, 1.0]]).repeat(12, 1)
    if top_k < 4:
        assert float(load_balancing_loss(collapsed, top_k)) > top_k + 0.1


def test_load_balancing_loss_gradient_pushes_toward_balance() -> None:
    logits = torch.tensor([[3.0, 0.0, 0.0, 0.0]]).repeat(8, 1).requires_grad_(True)
    load_balancing_loss(logits, 1).backward()
    # Descent lowers the favourite's logit and raises the others'.
    assert (logits.grad[:, 0] > 0).all() and (logits.grad[:, 1:] < 0).all()


def test_sparse_moe_rejects_bad_sizes() -> None:
    mlp = nn.Linear(8, 8)
    with pytest.raises(ValueError, match="num_experts >= 2"):
        SparseMoE(mlp, 8, num_experts=1, top_k=1)
    with pytest.raises(ValueError, match=r"top_k must be in \[1, num_experts=4\]"):
        SparseMoE(mlp, 8, num_experts=4, top_k=5)


def test_sparse_moe_with_identical_experts_is_the_dense_mlp_for_any_router() -> None:
    torch.manual_seed(3)
    mlp = nn.Sequential(nn.Linear(8, 32), nn.GELU(), nn.Linear(32, 8))
    layer = SparseMoE(mlp, 8, num_experts=4, top_k=2)
    x = torch.randn(3, 5, 8)
    for seed in range(3):
        torch.manual_seed(seed)
        nn.init.normal_(layer.gate.weight, std=10.0)
        torch.testing.assert_close(layer(x), mlp(x), atol=1e-6, rtol=1e-5)


def test_sparse_moe_mask_routes_only_the_marked_tokens() -> None:
    torch.manual_seed(4)
    layer = SparseMoE(nn.Linear(8, 8), 8, num_experts=3, top_k=2)
    x = torch.randn(2, 4, 8)
    mask = torch.tensor([[True, True, False, False], [True, True, True, True]])
    records: list = []
    layer.set_routing(mask, records)
    y = layer(x)
    assert records[0].logits.shape == (6, 3) and records[0].indices.shape == (6, 2)
    assert torch.equal(y[0, 2:], torch.zeros(2, 8))  # padding: zero update, the residual passes it through
    layer.set_routing(None, None)
    torch.testing.assert_close(y[mask], layer(x)[mask])  # the routed tokens are unaffected by the mask
    layer.set_routing(torch.ones(2, 3, dtype=torch.bool), None)
    with pytest.raises(RuntimeError, match=r"routing mask \(2, 3\) does not fit tokens \(2, 4\)"):
        layer(x)
