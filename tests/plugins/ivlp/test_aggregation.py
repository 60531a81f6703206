"""GaussianPromptAggregationHook on a tiny MMEngine runner: the weighted average, and resuming."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from mmengine.hooks import Hook
from mmengine.model import BaseModel
from mmengine.runner import Runner
from torch import nn

from clipadapt.engine import enable_safe_resume
from clipadapt.registry import HOOKS
from clipadapt_plugins.ivlp import GaussianPromptAggregationHook

pytestmark = pytest.mark.usefixtures("clipadapt_scope")


class Toy(BaseModel):
    """A trainable prompt-like vector and a frozen weight."""

    def __init__(self) -> None:
        super().__init__()
        self.prompt = nn.Parameter(torch.zeros(3))
        self.frozen = nn.Parameter(torch.ones(3), requires_grad=False)

    def forward(self, inputs: torch.Tensor, data_samples=None, mode: str = "tensor"):
        loss = ((inputs @ (self.prompt * self.frozen)) - 1).pow(2).mean()
        return {"loss": loss}


class Record(Hook):
    """Records the trainable vector after each epoch, before the aggregation hook."""

    priority = "HIGHEST"

    def __init__(self) -> None:
        self.seen: dict[int, torch.Tensor] = {}

    def after_train_epoch(self, runner) -> None:
        self.seen[runner.epoch + 1] = runner.model.prompt.detach().clone()


class Crash(Hook):
    priority = "LOWEST"  # after the checkpoint of the epoch is written

    def __init__(self, after: int) -> None:
        self.after = after

    def after_train_epoch(self, runner) -> None:
        if runner.epoch + 1 == self.after:
            raise KeyboardInterrupt


def _runner(work_dir: Path, name: str, hooks: list[Hook], max_epochs: int = 4, **kwargs) -> Runner:
    torch.manual_seed(0)
    data = [dict(inputs=torch.randn(3)) for _ in range(4)]
    return Runner(
        model=Toy(),
        work_dir=str(work_dir),
        experiment_name=name,
        train_dataloader=dict(
            dataset=data, sampler=dict(type="DefaultSampler", shuffle=False), batch_size=2,
            collate_fn=dict(type="default_collate"),
        ),
        optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.1, momentum=0.9)),
        train_cfg=dict(by_epoch=True, max_epochs=max_epochs),
        default_hooks=dict(checkpoint=dict(type="CheckpointHook", interval=1), logger=dict(type="LoggerHook")),
        custom_hooks=hooks,
        default_scope="mmengine",
        **kwargs,
    )  # fmt: skip


def _expected(seen: dict[int, torch.Tensor], mean: float, std: float) -> torch.Tensor:
    weights = {e: math.exp(-0.5 * ((e - mean) / std) ** 2) for e in seen}  # PromptSRC's Gaussian, normalised
    return sum(w * seen[e] for e, w in weights.items()) / sum(weights.values())


def test_loads_the_gaussian_weighted_average_after_the_last_epoch(tmp_path: Path) -> None:
    record = Record()
    runner = _runner(tmp_path, "full", [record, GaussianPromptAggregationHook(mean=3, std=1)])
    runner.train()
    assert sorted(record.seen) == [1, 2, 3, 4] and not torch.equal(record.seen[1], record.seen[4])
    expected = _expected(record.seen, 3, 1)
    torch.testing.assert_close(runner.model.prompt.detach(), expected)
    assert torch.equal(runner.model.frozen, torch.ones(3))  # frozen parameters are left alone
    last = torch.load(tmp_path / "epoch_4.pth", weights_only=False)  # the last checkpoint holds the aggregate
    torch.testing.assert_close(last["state_dict"]["prompt"], expected)
    assert int(last["gpa"]["epochs"]) == 4 and bool(last["gpa"]["loaded"])


def test_far_off_epochs_do_not_underflow() -> None:
    hook = GaussianPromptAggregationHook(mean=15, std=1)
    assert math.exp(hook.log_weight(1)) < 1e-42  # PromptSRC's weight of epoch 1 of 20
    hook = GaussianPromptAggregationHook(mean=500, std=1)  # every weight underflows to 0 in float64
    assert math.exp(hook.log_weight(5)) == 0.0

    class FakeRunner:
        epoch, max_epochs = 0, 2
        model = Toy()
        logger = type("L", (), {"info": staticmethod(print), "warning": staticmethod(print)})

    runner = FakeRunner()
    for epoch, value in ((0, 1.0), (1, 2.0)):
        runner.epoch = epoch
        runner.model.prompt.data.fill_(value)
        hook.after_train_epoch(runner)
    # weights relative to the largest: epoch 1 gets e^-498.5, so the average is epoch 2's value, not 0/0
    torch.testing.assert_close(runner.model.prompt.detach(), torch.full((3,), 2.0))


def test_resume_continues_the_aggregate(tmp_path: Path) -> None:
    enable_safe_resume()  # MMEngine's checkpoints load with weights_only=True and an allow-list
    reference = Record()
    _runner(tmp_path / "ref", "ref", [reference, GaussianPromptAggregationHook(mean=2.5, std=1)]).train()

    first = _runner(tmp_path / "run", "first", [GaussianPromptAggregationHook(mean=2.5, std=1), Crash(after=2)])
    with pytest.raises(KeyboardInterrupt):
        first.train()
    resumed = _runner(
        tmp_path / "run", "resumed", [GaussianPromptAggregationHook(mean=2.5, std=1)],
        load_from=str(tmp_path / "run" / "epoch_2.pth"), resume=True,
    )  # fmt: skip
    resumed.train()
    torch.testing.assert_close(resumed.model.prompt.detach(), _expected(reference.seen, 2.5, 1))

    # load_from without resume starts a fresh aggregate: epochs 1..4 of the new run only
    fresh_record = Record()
    fresh = _runner(
        tmp_path / "fresh", "fresh", [fresh_record, GaussianPromptAggregationHook(mean=2.5, std=1)],
        load_from=str(tmp_path / "run" / "epoch_2.pth"),
    )  # fmt: skip
    fresh.train()
    torch.testing.assert_close(fresh.model.prompt.detach(), _expected(fresh_record.seen, 2.5, 1))


def test_registered_and_validated() -> None:
    assert HOOKS.get("GaussianPromptAggregationHook") is GaussianPromptAggregationHook
    with pytest.raises(ValueError, match="std must be > 0"):
        GaussianPromptAggregationHook(std=0)
