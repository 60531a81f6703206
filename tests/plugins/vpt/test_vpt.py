"""VPT's token layout, trainable set and adapter checkpoint."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import clipadapt
from clipadapt.models import TowerContext
from clipadapt.plugins import Plugin


class BlockInputs(Plugin):
    """Records what each vision block receives (attached after VPT, so it sees VPT's tokens)."""

    prefix = "probe"
    hook_towers = {"block": ("vision",)}

    def __init__(self) -> None:
        super().__init__()
        self.inputs: list[torch.Tensor] = []

    def block_hook(self, index: int, x: torch.Tensor, context: TowerContext) -> torch.Tensor:
        self.inputs.append(x.detach().clone())
        return x


@pytest.mark.parametrize("depth", [1, 3])
def test_prompt_tokens_are_injected_then_carried(depth: int) -> None:
    probe = BlockInputs()
    model = clipadapt.create_model("tiny-vit", plugins=[dict(type="VPT", num_tokens=3, depth=depth), probe]).eval()
    vpt = model.plugins["vpt"]
    with torch.no_grad():
        model.encode_image(torch.randn(2, 3, 64, 64))
    assert [x.shape[1] for x in probe.inputs] == [1 + 64 + 3] * 4
    block0 = model.visual.transformer.resblocks[0]
    for index, x in enumerate(probe.inputs):
        prompts = x[:, -3:]
        if 0 < index < depth:
            torch.testing.assert_close(prompts, vpt.prompts[index].expand(2, -1, -1))
        elif index == 0:
            torch.testing.assert_close(prompts, model.visual.ln_pre(vpt.prompts[0]).expand(2, -1, -1))
        else:  # carried: the previous block's outputs at the prompt positions
            with torch.no_grad():
                carried = model.visual.transformer.resblocks[index - 1](probe.inputs[index - 1])[:, -3:]
            torch.testing.assert_close(prompts, carried, atol=1e-6, rtol=1e-5)
    assert block0 is model.visual.transformer.resblocks[0]


def test_prompts_change_the_image_features_only() -> None:
    torch.manual_seed(0)
    base = clipadapt.create_model("tiny-vit").eval()
    model = clipadapt.create_model("tiny-vit", plugins=[dict(type="VPT", num_tokens=4)]).eval()
    model.load_state_dict(base.state_dict(), strict=False)
    images = torch.randn(2, 3, 64, 64)
    tokens = clipadapt.get_tokenizer(model=model)(["a red circle"])
    with torch.no_grad():
        assert not torch.allclose(model.encode_image(images), base.encode_image(images))
        torch.testing.assert_close(model.encode_text(tokens), base.encode_text(tokens), atol=0, rtol=0)


def test_adapter_is_small_and_references_the_base(tiny_pair, tmp_path: Path) -> None:
    _, _, weights = tiny_pair
    model = clipadapt.create_model("tiny-vit", pretrained=weights, plugins=[dict(type="VPT", num_tokens=4, depth=2)])
    for name in ("a.pt", "a.safetensors"):
        path = clipadapt.save_adapter(model, tmp_path / name)
        assert path.stat().st_size < 16_000 < weights.stat().st_size
        meta, state = clipadapt.adapter.read_adapter(path)
        assert list(state) == ["plugins.vpt.prompts"]
        assert meta["base"]["path"] == str(weights.resolve())
        assert meta["plugins"] == [{"type": "VPT", "num_tokens": 4, "depth": 2}]


def test_adapter_onto_a_base_of_other_width_names_the_mismatch(tmp_path: Path) -> None:
    model = clipadapt.create_model("tiny-vit", plugins=[dict(type="VPT", num_tokens=4)])
    path = clipadapt.save_adapter(model, tmp_path / "a.pt")
    other = clipadapt.create_model(
        {**model.cfg.source, "vision_cfg": {**model.cfg.source["vision_cfg"], "width": 128}},
        plugins=[dict(type="VPT", num_tokens=4)],
    )
    with pytest.raises(
        clipadapt.models.checkpoint.CheckpointMismatchError,
        match=r"plugins.vpt.prompts: adapter \(1, 4, 192\) vs model \(1, 4, 128\)",
    ):
        clipadapt.load_adapter(path, model=other)
