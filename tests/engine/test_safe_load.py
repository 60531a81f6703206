"""MMEngine checkpoints load with torch.load(weights_only=True) after enable_safe_resume, and nothing more."""

from __future__ import annotations

import builtins
import pickle

import numpy as np
import pytest
import torch
from mmengine.logging import HistoryBuffer, MessageHub

from clipadapt.engine import SAFE_GLOBALS, enable_safe_resume


def _runner_like_checkpoint() -> dict:
    hub = MessageHub.get_instance("clipadapt-safe-load-test")
    for i in range(3):
        hub.update_scalar("train/loss", 1.0 / (i + 1))
        hub.update_scalar("train/iter_count", i)
    return {
        "meta": {"epoch": 1, "iter": 3, "seed": 0, "best_score": np.float64(0.5)},
        "state_dict": {"w": torch.ones(2)},
        "message_hub": hub.state_dict(),
    }


def test_runner_checkpoint_round_trip(tmp_path):
    enable_safe_resume()
    path = tmp_path / "ckpt.pth"
    torch.save(_runner_like_checkpoint(), path)
    loaded = torch.load(path, weights_only=True)
    buffer = loaded["message_hub"]["log_scalars"]["train/loss"]
    assert isinstance(buffer, HistoryBuffer)
    assert buffer.mean() == pytest.approx((1 + 1 / 2 + 1 / 3) / 3)
    assert buffer.statistics("current") == pytest.approx(1 / 3)  # statistics methods still work
    assert loaded["meta"]["best_score"] == 0.5
    MessageHub.get_instance("clipadapt-safe-load-restore").load_state_dict(loaded["message_hub"])


def test_getattr_and_object_arrays_stay_refused(tmp_path):
    enable_safe_resume()
    assert builtins.getattr not in SAFE_GLOBALS
    assert type(np.dtype(object)) not in SAFE_GLOBALS
    path = tmp_path / "objects.pth"
    torch.save({"x": np.array([{"a": 1}], dtype=object)}, path)
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path, weights_only=True)
