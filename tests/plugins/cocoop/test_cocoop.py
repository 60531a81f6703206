"""CoCoOp: per-image text features, reentrant conditioning, and equality with the original code."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import torch
import torch._dynamo

import clipadapt
import clipadapt_plugins.cocoop  # noqa: F401  (registers CoCoOp)
from clipadapt.models import TowerContext
from clipadapt.plugins import Plugin, PluginCompatibilityError
from clipadapt.tasks import ImageTextContrastive, PromptClassifier
from tests.conftest import open_clip_model, save_state
from tests.plugins.cocoop.reference import OriginalCoCoOp

NAMES = ["red circle", "blue square", "green star"]


def _task(**kwargs) -> PromptClassifier:
    torch.manual_seed(0)
    return PromptClassifier("tiny-vit", plugins=[dict(type="CoCoOp")], classnames=NAMES, **kwargs).eval()


def _images(n: int, size: int = 64, seed: int = 0) -> torch.Tensor:
    torch.manual_seed(seed)
    return torch.randn(n, 3, size, size)


def test_text_features_of_image_i_depend_on_image_i_alone() -> None:
    # text_batch_size=5 does not divide the 3 prompts of an image: calls mix the rows of two images.
    task = _task(text_batch_size=5)
    images = _images(4)
    with torch.no_grad():
        features = torch.nn.functional.normalize(task.clip.encode_image(images), dim=-1)
        batch = task.conditioned_class_features({"image_features": features})  # [4, 3, D]
        rows = torch.cat([task.conditioned_class_features({"image_features": f[None]}) for f in features])
        logits = task(images)
        row_logits = torch.cat([task(image[None]) for image in images])
    assert batch.shape == (4, len(NAMES), task.clip.embed_dim)
    # Unit-norm features: fp32 rounding over a 128-wide, 4-block tower stays far below 1e-5.
    torch.testing.assert_close(batch, rows, atol=1e-5, rtol=0)
    torch.testing.assert_close(logits, row_logits, atol=1e-5 * float(logits.abs().max()), rtol=0)
    # ... and the images do condition the prompts: the rows differ by far more than that tolerance.
    assert float((batch[0] - batch[1]).abs().max()) > 1e-3


class Meet(Plugin):
    """Attached after CoCoOp: holds each text encoding at block 0 until both threads are there."""

    prefix = "meet"
    hook_towers = {"block": ("text",)}

    def __init__(self) -> None:
        super().__init__()
        self.barrier: threading.Barrier | None = None

    def block_hook(self, index: int, x: torch.Tensor, context: TowerContext) -> torch.Tensor:
        if index == 0 and self.barrier is not None:
            self.barrier.wait(timeout=120)  # both encodings are now half-way: CoCoOp's hook ran for both
        return x


def test_two_concurrent_encodings_with_different_conditions_do_not_interfere() -> None:
    torch.manual_seed(0)
    meet = Meet()
    model = clipadapt.create_model("tiny-vit", plugins=[dict(type="CoCoOp"), meet]).eval()
    tokens = clipadapt.get_tokenizer(model=model)([f"a photo of a {n}." for n in NAMES])
    conditions = [{"image_features": torch.randn(1, model.embed_dim).expand(len(NAMES), -1)} for _ in range(2)]
    with torch.no_grad():
        alone = [model.encode_text(tokens, condition=c) for c in conditions]
        results: list[torch.Tensor | BaseException | None] = [None, None]
        meet.barrier = threading.Barrier(2)

        def run(i: int) -> None:
            try:
                with torch.no_grad():
                    results[i] = model.encode_text(tokens, condition=conditions[i])
            except BaseException as err:  # re-raised below through the assertion
                results[i] = err

        threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=300)
        meet.barrier = None
    for result, expected in zip(results, alone):
        assert isinstance(result, torch.Tensor), result
        torch.testing.assert_close(result, expected, atol=1e-6 * float(expected.abs().max()), rtol=0)
    assert float((alone[0] - alone[1]).abs().max()) > 1e-3 * float(alone[0].abs().max())


def test_equals_the_original_cocoop_on_random_vit_b16(tmp_path: Path) -> None:
    reference_model = open_clip_model("ViT-B-16")
    weights = save_state(reference_model, tmp_path / "vit-b-16.pt")
    torch.manual_seed(1)
    task = PromptClassifier("ViT-B-16", pretrained=str(weights), plugins=[dict(type="CoCoOp")], classnames=NAMES)
    plugin = task.clip.plugins["cocoop"]
    tokens = task.tokenizer([f"a photo of a {n}." for n in NAMES])
    reference = OriginalCoCoOp(reference_model, plugin, tokens)
    images = _images(2, size=224, seed=2)
    labels = torch.tensor([0, 2])
    task.train()
    ours = task(images, mode="tensor")
    theirs = reference(images)
    scale = float(theirs.detach().abs().max())
    assert float((ours - theirs).detach().abs().max()) <= 1e-5 * scale  # fp32 on both sides; logits ~ 10
    # The meta-net's bias matters here: without it (plain CoOp context) the logits move by far more.
    with torch.no_grad():
        assert float(plugin.meta_net(torch.ones(1, 512)).abs().max()) > 1e-2
    # Same gradients on the learned context and the meta-net.
    torch.nn.functional.cross_entropy(ours, labels).backward()
    torch.nn.functional.cross_entropy(theirs, labels).backward()
    pairs = [(plugin.ctx, reference.ctx), *zip(plugin.meta_net.parameters(), reference.meta_net.parameters())]
    for mine, original in pairs:
        torch.testing.assert_close(mine.grad, original.grad, atol=1e-4 * float(original.grad.abs().max()), rtol=0)


def test_what_trains_and_the_original_parameter_count() -> None:
    model = clipadapt.create_model("ViT-B-16", plugins=[dict(type="CoCoOp")])
    trainable = {n: p.numel() for n, p in model.named_parameters() if p.requires_grad}
    assert sorted(trainable) == [
        "plugins.cocoop.ctx",
        "plugins.cocoop.meta_net.linear1.bias",
        "plugins.cocoop.meta_net.linear1.weight",
        "plugins.cocoop.meta_net.linear2.bias",
        "plugins.cocoop.meta_net.linear2.weight",
    ]
    # ctx 4 x 512, meta-net 512 -> 32 -> 512: the original PromptLearner's 35,360 parameters.
    assert sum(trainable.values()) == 4 * 512 + (512 * 32 + 32) + (32 * 512 + 512) == 35_360


def test_context_starts_from_the_words_and_the_template_keeps_them() -> None:
    model = clipadapt.create_model("tiny-vit", plugins=[dict(type="CoCoOp")])
    plugin = model.plugins["cocoop"]
    assert plugin.n_ctx == 4 and plugin.text_template == "a photo of a {}."
    words = clipadapt.get_tokenizer(model=model)(["a photo of a"])[0, 1:5]
    torch.testing.assert_close(plugin.ctx, model.text.token_embedding(words))
    random = clipadapt.create_model("tiny-vit", plugins=[dict(type="CoCoOp", ctx_init=None, n_ctx=8)])
    assert random.plugins["cocoop"].text_template == "X X X X X X X X {}."


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (dict(n_ctx=0), ValueError, r"CoCoOp n_ctx must be >= 1, got 0"),
        (dict(n_ctx=3), ValueError, r"n_ctx=3 does not match the 4 tokens of ctx_init='a photo of a'"),
        (dict(meta_hidden=0), ValueError, r"CoCoOp meta_hidden must be >= 1, got 0"),
    ],
)
def test_bad_arguments_are_named(kwargs: dict, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        clipadapt.create_model("tiny-vit", plugins=[dict(type="CoCoOp", **kwargs)])


def test_a_task_that_cannot_condition_refuses_it_at_build_time() -> None:
    with pytest.raises(PluginCompatibilityError, match=r"CoCoOp \('cocoop'\).*'image_features'.*ImageTextContrastive"):
        ImageTextContrastive("tiny-vit", plugins=[dict(type="CoCoOp")])


def test_a_bare_encoding_says_how_to_pass_the_image_features() -> None:
    model = clipadapt.create_model("tiny-vit", plugins=[dict(type="CoCoOp")])
    tokens = clipadapt.get_tokenizer(model=model)(["a photo of a red circle."])
    with pytest.raises(ValueError, match=r"CoCoOp needs the per-call condition 'image_features'.*load_adapter"):
        model.encode_text(tokens)


def test_an_adapter_loads_into_the_task_and_classifies_the_same(tiny_pair, tmp_path: Path) -> None:
    _, _, weights = tiny_pair
    task = PromptClassifier("tiny-vit", pretrained=str(weights), plugins=[dict(type="CoCoOp")], classnames=NAMES)
    with torch.no_grad():
        for p in task.clip.plugins["cocoop"].parameters():
            p.add_(0.05 * torch.randn_like(p))
    path = clipadapt.save_adapter(task.clip, tmp_path / "cocoop.safetensors")
    meta, _ = clipadapt.read_adapter(path)
    fresh = PromptClassifier(meta["model"], pretrained=meta["base"]["path"], plugins=meta["plugins"], classnames=NAMES)
    clipadapt.load_adapter(path, model=fresh.clip)
    images = _images(2)
    with torch.no_grad():
        torch.testing.assert_close(fresh.eval()(images), task.eval()(images), atol=0, rtol=0)


def test_hooks_with_a_condition_trace_without_graph_breaks() -> None:
    model = clipadapt.create_model("tiny-vit", plugins=[dict(type="CoCoOp")]).eval()
    text = model.text
    tokens = clipadapt.get_tokenizer(model=model)([f"a photo of a {n}." for n in NAMES])[:, :10]

    def encode(tokens: torch.Tensor, image_features: torch.Tensor) -> torch.Tensor:
        context = TowerContext(
            "text", 3, tokens=tokens, eot_index=tokens.argmax(-1), condition={"image_features": image_features}
        )
        x = text._run_embed_hooks(text.token_embedding(tokens), context) + text.positional_embedding[:10]
        return text.transformer(x, text.block_hooks, context)

    torch._dynamo.reset()
    explanation = torch._dynamo.explain(encode)(tokens, torch.randn(3, model.embed_dim))
    assert explanation.graph_break_count == 0, explanation.break_reasons


def test_a_training_checkpoint_is_named_and_converts_to_an_adapter(tiny_pair, tmp_path: Path) -> None:
    import numpy as np

    from clipadapt.adapter import adapter_metadata, adapter_state_dict

    _, _, weights = tiny_pair
    task = PromptClassifier("tiny-vit", pretrained=str(weights), plugins=[dict(type="CoCoOp")], classnames=NAMES)
    with torch.no_grad():
        task.clip.plugins["cocoop"].ctx.add_(0.1)
    # What AdapterCheckpointHook leaves in a runner checkpoint: the adapter under 'clip.', the metadata, and
    # the runner's state (numpy values as MMEngine writes them).
    state = {f"clip.{k}": v for k, v in adapter_state_dict(task.clip).items()}
    runner = dict(meta=dict(clipadapt=adapter_metadata(task.clip), epoch=5, seed=np.int64(1)), state_dict=state,
                  optimizer=dict(state={}, param_groups=[]), message_hub=dict(log_scalars=np.arange(3.0)))  # fmt: skip
    checkpoint = tmp_path / "epoch_5.pth"
    torch.save(runner, checkpoint)
    with pytest.raises(ValueError, match=r"epoch_5.pth is a training checkpoint .*adapter_from_checkpoint"):
        clipadapt.load_adapter(checkpoint)
    adapter = clipadapt.adapter_from_checkpoint(checkpoint)
    assert adapter == tmp_path / "epoch_5.adapter.safetensors"
    meta, tensors = clipadapt.read_adapter(adapter)
    assert meta == adapter_metadata(task.clip) and sorted(tensors) == sorted(adapter_state_dict(task.clip))
    fresh = PromptClassifier(meta["model"], pretrained=meta["base"]["path"], plugins=meta["plugins"], classnames=NAMES)
    clipadapt.load_adapter(adapter, model=fresh.clip)
    images = _images(2)
    with torch.no_grad():
        torch.testing.assert_close(fresh.eval()(images), task.eval()(images), atol=0, rtol=0)
    with pytest.raises(ValueError, match=r"is not a training checkpoint"):
        clipadapt.adapter_from_checkpoint(adapter)
