"""The sparse MoE layer of CLIP-MoE: a router, top-k routing, and experts dispatched by grouping tokens.

Routing follows ``OpenSparseLLMs/CLIP-MoE`` (``clipmoe/model_clipmoe.py``): ``softmax`` of the router
logits in fp32, the top-k probabilities, renormalised to sum to one, cast back to the tokens' dtype.
There is no noise and no token dropping (no capacity limit).

Dispatch never runs an expert on a token that did not choose it: the ``T x k`` (token, slot) pairs are
sorted by expert, each expert runs once on exactly its tokens, and the outputs are scaled by their
routing weights and scattered back (:func:`grouped_dispatch`).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["ROUTER_AUX_KEY", "RouterRecord", "SparseMoE", "grouped_dispatch", "load_balancing_loss", "route"]

# Where the layers record their router logits in a tower's ``TowerContext.aux`` (a list, block order).
ROUTER_AUX_KEY = "moe_router"


@dataclass
class RouterRecord:
    """One MoE layer's routing of one forward pass, over the routed (non-padding) tokens only.

    Attributes:
        logits: Router logits [T, E], in the dtype the router ran in.
        indices: Chosen experts [T, k], best first.
        token_index: Where the routed tokens sit among the layer's ``B * N`` tokens [T]; None = all of them.
        tokens_per_sample: N, the tokens of one sample (0 when unknown).
    """

    logits: torch.Tensor
    indices: torch.Tensor
    token_index: torch.Tensor | None = None
    tokens_per_sample: int = 0

    def sample_index(self) -> torch.Tensor:
        """The sample (row of the batch) of each routed token [T]."""
        if self.tokens_per_sample <= 0:
            raise ValueError("this RouterRecord does not know its tokens per sample")
        if self.token_index is None:
            return torch.arange(self.logits.shape[0], device=self.logits.device) // self.tokens_per_sample
        return self.token_index // self.tokens_per_sample


def route(logits: torch.Tensor, top_k: int, dtype: torch.dtype | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-k routing of CLIP-MoE: fp32 softmax, top-k, renormalise, cast back.

    Args:
        logits: Router logits [T, E].
        top_k: Experts per token.
        dtype: Dtype of the returned weights (the tokens' dtype); None = that of ``logits``.

    Returns:
        ``weights`` [T, k] (rows sum to one) and ``indices`` [T, k] (int64).
    """
    if not 1 <= top_k <= logits.shape[-1]:
        raise ValueError(f"top_k must be in [1, {logits.shape[-1]}] for {logits.shape[-1]} experts, got {top_k}")
    probs = torch.softmax(logits, dim=-1, dtype=torch.float32)
    weights, indices = torch.topk(probs, top_k, dim=-1)
    weights = weights / weights.sum(dim=-1, keepdim=True)
    return weights.to(dtype or logits.dtype), indices


def grouped_dispatch(
    tokens: torch.Tensor, weights: torch.Tensor, indices: torch.Tensor, experts: nn.ModuleList
) -> torch.Tensor:
    """``sum_k weights[t, k] * experts[indices[t, k]](tokens[t])``, each expert run on its own tokens only.

    The (token, slot) pairs are sorted by expert; one gather lays the tokens out expert by expert, each
    expert runs once on its contiguous slice, and one ``index_add`` scatters the weighted outputs back
    (two pairs of the same token add up). One gather and one scatter in all, whatever E is.

    Args:
        tokens: [T, C].
        weights: Routing weights [T, k].
        indices: Chosen experts [T, k].
        experts: The E expert modules, each [n, C] -> [n, C].

    Returns:
        [T, C] in the dtype of ``tokens``.
    """
    top_k = indices.shape[-1]
    flat_expert = indices.reshape(-1)  # [T * k]: (token, slot) pairs, token-major
    order = torch.argsort(flat_expert, stable=True)  # pairs grouped by expert
    counts = torch.bincount(flat_expert, minlength=len(experts)).tolist()  # one host sync per layer
    token_index = order // top_k  # [T * k]: the token of each sorted pair
    grouped = tokens.index_select(0, token_index)  # [T * k, C], expert 0's tokens first
    outputs = [expert(chunk) for expert, chunk in zip(experts, grouped.split(counts)) if chunk.shape[0]]
    y = torch.cat(outputs) * weights.reshape(-1)[order, None]  # [T * k, C]
    return torch.zeros_like(tokens).index_add_(0, token_index, y.to(tokens.dtype))


def load_balancing_loss(logits: torch.Tensor, top_k: int, indices: torch.Tensor | None = None) -> torch.Tensor:
    """Switch-style auxiliary loss over pooled tokens, as CLIP-MoE's ``load_balancing_loss_func``.

    ``E * sum_{k,e} f[k, e] * P[e]`` with ``p = softmax(logits)`` (fp32), ``f[k, e]`` the fraction of
    tokens whose k-th choice is expert ``e`` and ``P[e]`` the mean router probability of expert ``e``.
    Balanced routing (uniform ``P`` or uniform ``f``) gives exactly ``top_k``; collapse onto few
    experts gives more. Only ``P`` carries a gradient.

    Args:
        logits: Router logits [T, E] of every routed token (all layers of a tower concatenated).
        top_k: Experts per token.
        indices: The chosen experts [T, k]; recomputed from ``logits`` when None.
    """
    num_experts = logits.shape[-1]
    probs = torch.softmax(logits, dim=-1, dtype=torch.float32)  # [T, E]
    if indices is None:
        indices = torch.topk(probs, top_k, dim=-1).indices
    fraction = F.one_hot(indices, num_experts).float().mean(dim=0)  # [k, E]
    mean_prob = probs.mean(dim=0)  # [E]
    return num_experts * (fraction * mean_prob[None]).sum()


class SparseMoE(nn.Module):
    """E experts behind a linear router, in place of a transformer block's MLP.

    Parameter names follow CLIP-MoE: ``experts.{j}.c_fc`` / ``experts.{j}.c_proj`` and ``gate.weight``
    [E, width]. The experts start as copies of ``mlp`` (sparse upcycling); the router is a bias-free
    ``Linear`` with PyTorch's default initialisation, as in the original.

    Which tokens are routed, and where the router logits are recorded, is set per forward pass by
    :meth:`set_routing` (the MoE plugin's block hook does this): text tokens after the end-of-text
    token are left out, and their output is zero (the residual passes them through unchanged; under the
    causal mask they never reach the pooled feature).

    Args:
        mlp: The dense MLP to upcycle ([.., C] -> [.., C]).
        width: Token width C.
        num_experts: E >= 2.
        top_k: Experts per token, 1 <= k <= E.
        dropout: Dropout after each expert's activation (CLIP-MoE's experts: 0.1); 0 = none. The
            parameter names do not change (the dropout shares the activation's slot, ``gelu``).
    """

    def __init__(self, mlp: nn.Module, width: int, num_experts: int, top_k: int, dropout: float = 0.0) -> None:
        super().__init__()
        if num_experts < 2:
            raise ValueError(f"an MoE needs num_experts >= 2, got {num_experts}")
        if not 1 <= top_k <= num_experts:
            raise ValueError(f"top_k must be in [1, num_experts={num_experts}], got {top_k}")
        self.num_experts, self.top_k = num_experts, top_k
        self.experts = nn.ModuleList(copy.deepcopy(mlp) for _ in range(num_experts))
        if dropout > 0:
            for expert in self.experts:
                if not isinstance(getattr(expert, "gelu", None), nn.Module):
                    raise ValueError("SparseMoE dropout needs an MLP with c_fc -> gelu -> c_proj (clipadapt's MLP)")
                expert.gelu = nn.Sequential(expert.gelu, nn.Dropout(dropout))
        self.gate = nn.Linear(width, num_experts, bias=False)
        self._mask: torch.Tensor | None = None  # [B, N] bool: tokens to route; None = all
        self._records: list[Any] | None = None  # where RouterRecords go (a TowerContext.aux list)

    def extra_repr(self) -> str:
        return f"num_experts={self.num_experts}, top_k={self.top_k}"

    def set_routing(self, mask: torch.Tensor | None, records: list[Any] | None) -> None:
        """Tokens to route in the next forward ([B, N] bool, None = all) and the list to record routing in."""
        self._mask, self._records = mask, records

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Tokens [B, N, C] (after ``ln_2``) -> expert mixture [B, N, C]; unrouted tokens get zeros."""
        flat = x.reshape(-1, x.shape[-1])  # [B*N, C]
        mask = self._mask
        if mask is not None and mask.shape != x.shape[:-1]:
            raise RuntimeError(
                f"SparseMoE: the routing mask {tuple(mask.shape)} does not fit tokens {tuple(x.shape[:-1])}; "
                "the mask is set by the MoE plugin's block hook before each block (is the plugin attached, "
                "and its hooks enabled?)"
            )
        selected = mask.reshape(-1).nonzero().squeeze(1) if mask is not None else None  # [T]
        tokens = flat if selected is None else flat[selected]
        logits = self.gate(tokens)  # [T, E]
        weights, indices = route(logits, self.top_k, tokens.dtype)
        y = grouped_dispatch(tokens, weights, indices, self.experts)
        if self._records is not None:
            self._records.append(RouterRecord(logits, indices, selected, x.shape[-2]))
        if selected is not None:
            y = torch.zeros_like(flat).index_copy(0, selected, y)
        return y.reshape(x.shape)
