"""The scale table's arithmetic (clipadapt.engine.scale), on the tiny CLIP and against the measured loss memory."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from clipadapt.engine.scale import count_parameters, loss_bytes, state_bytes, table


def test_counts_cover_every_parameter_and_sharding_divides_the_state():
    count = count_parameters("tiny-vit")
    assert count.blocks == 8 and count.root > 0 and count.total - count.root <= count.blocks * count.largest_block
    ddp = state_bytes(count, 8, sharded=False)
    assert ddp == 16 * count.total  # fp32 parameters, gradients, two AdamW moments
    gathered = 2 * (count.root + 2 * count.largest_block)
    assert state_bytes(count, 8, sharded=True) == pytest.approx(ddp / 8 + gathered)


def test_loss_bytes_match_the_measured_dist_loss_row():
    from benchmarks.dist_rows import dist_loss_row

    row = dist_loss_row(SimpleNamespace(args=SimpleNamespace(dist_global_batch=256), cfg=SimpleNamespace(embed_dim=32)))
    mib = 2**20
    features = 2 * 256 * 32 * 4 / mib  # the scaled feature copies the matrix products keep, beside the logits'
    assert row["baseline"] == pytest.approx(loss_bytes(256, 2, "full") / mib, abs=features)
    assert row["clipadapt"] == pytest.approx(loss_bytes(256, 2, "local") / mib, abs=features)
    assert loss_bytes(32768, 64, "local") * 64 == loss_bytes(32768, 64, "full")


def test_table_rows():
    text = table(["tiny-vit"], [2, 8], per_rank_batch=4)
    assert text.count("| tiny-vit |") == 2 and "| 32 |" in text
