"""Knowledge-preserved stretching (KPS) of a text positional embedding, and its frozen-prefix parametrization.

Long-CLIP's ``load_from_clip`` stretches OpenAI CLIP's 77 positions to 248: the first 20 rows are kept,
rows 20..76 are spread out at ratio 4 with linear interpolation between neighbours, and the last 4 rows
are extrapolated from the final segment. In closed form, new position ``p`` reads the old table at

    x(p) = p                            for p < keep
    x(p) = keep + (p - keep) / ratio    otherwise

linearly interpolated between rows ``floor(x)`` and ``floor(x) + 1``, and extended along the last
segment (rows ``S - 2``, ``S - 1``) for ``x > S - 1``. This is neither the paper's ``floor(pos / ratio)``
nor open_clip's ``resize_text_pos_embed`` (``F.interpolate`` over all rows).
"""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["FrozenPrefix", "stretch_positions", "stretched_length"]


def stretched_length(source: int, keep: int, ratio: float) -> int:
    """``keep + ratio * (source - keep)``: 248 for Long-CLIP's 77, 20, 4.

    Raises:
        ValueError: the length is not a whole number of positions.
    """
    length = keep + ratio * (source - keep)
    if not math.isclose(length, round(length), abs_tol=1e-9):
        raise ValueError(
            f"keep={keep} + ratio={ratio} * ({source} - {keep}) = {length} positions is not a whole number; "
            "pass context_length explicitly"
        )
    return round(length)


def _check(source: int, keep: int, ratio: float) -> None:
    if source < 2:
        raise ValueError(f"stretching needs at least 2 source positions, got {source}")
    if not 0 <= keep <= source - 1:
        raise ValueError(f"keep must be in [0, {source - 1}] for {source} source positions, got {keep}")
    if not ratio >= 1:
        raise ValueError(f"ratio must be >= 1 (stretching, not shrinking), got {ratio}")


def stretch_positions(
    positions: torch.Tensor, keep: int = 20, ratio: float = 4.0, length: int | None = None
) -> torch.Tensor:
    """Long-CLIP's knowledge-preserved stretching, generalised to any keep length, ratio and source length.

    Computed in float64 as ``(1 - w) * row[i] + w * row[i + 1]`` and cast back, so the kept rows
    (``p < keep``) and the anchor rows (``x(p)`` a whole number, e.g. ``new[20 + 4 i] = old[20 + i]``
    and ``new[244] = old[76]``) equal the source rows bit for bit; the others match the original's
    loop within rounding.

    Args:
        positions: The positional embedding ``[S, D]``.
        keep: Leading rows copied unchanged (Long-CLIP: 20).
        ratio: Stretch of the rows from ``keep`` on (Long-CLIP: 4).
        length: Rows of the result; default ``keep + ratio * (S - keep)`` (248 for 77, 20, 4).
            Rows past ``x = S - 1`` are extrapolated along the last segment.

    Returns:
        ``[length, D]`` in the dtype and on the device of ``positions``, without gradient history.
    """
    if positions.dim() != 2:
        raise ValueError(f"positions must be [positions, width], got shape {tuple(positions.shape)}")
    source = positions.shape[0]
    _check(source, keep, ratio)
    length = stretched_length(source, keep, ratio) if length is None else int(length)
    if length < source:
        raise ValueError(f"the stretched length {length} is shorter than the {source} source positions")
    table = positions.detach().to(torch.float64)
    p = torch.arange(length, dtype=torch.float64, device=positions.device)
    x = torch.where(p < keep, p, keep + (p - keep) / ratio)
    lower = x.floor().clamp(0, source - 2).long()  # segment start; the last segment extends past S - 1
    w = (x - lower).unsqueeze(1)  # [length, 1]; 0 on kept and anchor rows, > 1 when extrapolating
    out = (1 - w) * table[lower] + w * table[lower + 1]
    out[:keep] = table[:keep]
    return out.to(positions.dtype)


class FrozenPrefix(nn.Module):
    """A parametrization (``torch.nn.utils.parametrize``): ``[frozen rows; trainable rows]``.

    Long-CLIP keeps two tables, the frozen stretched ``positional_embedding`` and a trainable copy
    ``positional_embedding_res``, and adds ``pe * mask[:keep] + pe_res * mask[keep:]``. Storing the
    first ``keep`` rows as a buffer and training only the rest gives the same forward values, the same
    gradients and the same AdamW updates (including weight decay) for the rows that are used, while the
    tensor that the text tower reads stays one ``[length, D]`` table.

    Args:
        kept: The frozen leading rows ``[keep, D]``.
    """

    def __init__(self, kept: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("kept", kept.detach().clone())

    @property
    def keep(self) -> int:
        return self.kept.shape[0]

    def forward(self, trainable: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.kept.to(trainable.dtype), trainable])  # [keep + N, D]

    def right_inverse(self, value: torch.Tensor) -> torch.Tensor:
        """Assigning a full table keeps its trainable rows; its first ``keep`` rows must equal the frozen ones."""
        if value.shape[0] < self.keep or not torch.equal(value[: self.keep].to(self.kept.dtype), self.kept):
            raise ValueError(f"the first {self.keep} positions are frozen and cannot be assigned new values")
        return value[self.keep :]
