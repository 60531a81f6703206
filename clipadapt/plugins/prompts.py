"""Building blocks for prompt plugins: context initialisation and token replacement.

Shared by CoOp, MaPLe, IVLP and third-party prompt methods, so that each states only where its
prompts go. Token tensors are [B, N, C]; prompt tensors are [n, C] (broadcast over the batch).
"""

from __future__ import annotations

import torch
from einops import repeat

from ..factory import get_tokenizer
from ..models.clip import CLIP
from ..models.hooks import TowerContext

__all__ = ["append_tokens", "check_context_fits", "context_from_words", "overwrite_last", "overwrite_span"]


def context_from_words(clip: CLIP, words: str, n_ctx: int) -> torch.Tensor:
    """Token embeddings of the first ``n_ctx`` tokens of ``words`` (after SOT): [n_ctx, width].

    This is how CoOp and MaPLe initialise learned context from "a photo of a".

    Raises:
        ValueError: ``words`` has fewer than ``n_ctx`` tokens.
    """
    tokens = get_tokenizer(model=clip)([words])[0]
    length = int(tokens.argmax()) - 1  # tokens between SOT and EOT
    if n_ctx > length:
        raise ValueError(f"n_ctx={n_ctx} is longer than the {length} tokens of the context initialisation {words!r}")
    with torch.no_grad():
        return clip.text.token_embedding(tokens[1 : 1 + n_ctx]).detach().clone()


def _batch(prompts: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    if prompts.dim() == 2:
        prompts = repeat(prompts, "n c -> b n c", b=x.shape[0])
    return prompts.to(x.dtype)


def overwrite_span(x: torch.Tensor, prompts: torch.Tensor, start: int) -> torch.Tensor:
    """Tokens ``start .. start+n`` replaced by ``prompts`` ([n, C] or [B, n, C])."""
    n = prompts.shape[-2]
    return torch.cat([x[:, :start], _batch(prompts, x), x[:, start + n :]], dim=1)


def overwrite_last(x: torch.Tensor, prompts: torch.Tensor) -> torch.Tensor:
    """The last ``n`` tokens replaced by ``prompts``."""
    return torch.cat([x[:, : -prompts.shape[-2]], _batch(prompts, x)], dim=1)


def append_tokens(x: torch.Tensor, prompts: torch.Tensor) -> torch.Tensor:
    """``prompts`` appended after the existing tokens."""
    return torch.cat([x, _batch(prompts, x)], dim=1)


def check_context_fits(context: TowerContext, n_ctx: int, owner: str) -> None:
    """Raise unless every text ends after token ``n_ctx``: context at ``1..n_ctx`` must not cover the EOT.

    Skipped while ``torch.compile`` traces: the check reads the tokens on the host, a graph break.
    """
    if torch.compiler.is_compiling():
        return
    assert context.eot_index is not None, "the text tower sets eot_index"
    short = (context.eot_index <= n_ctx).nonzero().flatten().tolist()
    if short:
        raise ValueError(
            f"{owner} replaces tokens 1..{n_ctx} with learned context, but text row(s) {short[:8]} end at or before "
            f"token {n_ctx}; encode class prompts built from the plugin's text_template"
        )
