"""PromptClassifier: prompts, logits, losses, and when the class text features are (re)computed."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from clipadapt.registry import MODELS

from .conftest import count_text_calls

CLASSES = ["red circle", "blue square", "green star"]


def build(plugins=(), templates="simple", **kwargs):
    torch.manual_seed(0)
    cfg = dict(
        type="PromptClassifier", model_name="tiny-vit", plugins=list(plugins), classnames=CLASSES, templates=templates
    )
    return MODELS.build(dict(cfg, **kwargs))


def batch(model, images):
    return model.data_preprocessor({"inputs": images, "data_samples": {"label": torch.tensor([0, 1, 2])}})


def test_logits_are_scaled_cosines_of_template_averages(images):
    model = build(templates=["a {}.", "a photo of a {}."]).eval()
    data = batch(model, images)
    with torch.no_grad():
        logits = model(data["inputs"], mode="tensor")
        clip, tok = model.clip, model.tokenizer
        per_template = [
            F.normalize(clip.encode_text(tok([t.format(c) for c in CLASSES])), dim=-1) for t in model.templates
        ]
        text = F.normalize(torch.stack(per_template).mean(0), dim=-1)
        image = F.normalize(clip.encode_image(data["inputs"]), dim=-1)
        expected = clip.logit_scale.exp() * image @ text.t()
    torch.testing.assert_close(logits, expected, atol=1e-5, rtol=1e-5)


def test_predict_and_loss_modes(images):
    model = build(plugins=[dict(type="ToyTextPrompt", with_loss=True)])
    data = batch(model, images)
    losses = model(**data, mode="loss")
    assert set(losses) == {"loss_cls", "loss_toy"}
    model.eval()
    with torch.no_grad():
        logits = model(data["inputs"], mode="tensor")
        preds = model(**data, mode="predict")
    assert len(preds) == 3 and [p["gt_label"] for p in preds] == [0, 1, 2]
    assert preds[0]["pred_score"].shape == (3,)
    assert preds[1]["pred_label"] == int(logits[1].argmax())
    torch.testing.assert_close(
        losses["loss_cls"], F.cross_entropy(logits, torch.tensor([0, 1, 2])), atol=1e-4, rtol=1e-4
    )


def test_frozen_text_features_computed_once(images):
    """VPT hooks only the image tower: one text pass for many training steps and evaluations."""
    model = build(plugins=[dict(type="VPT", num_tokens=2)], templates=["a {}.", "a photo of a {}."])
    assert not model.text_depends_on_parameters()
    calls = count_text_calls(model)
    data = batch(model, images)
    model.train()
    for _ in range(3):
        model(**data, mode="loss")["loss_cls"].backward()
    assert len(calls) == 1  # 3 classes x 2 templates fit one text batch
    model.eval()
    with torch.no_grad():
        for _ in range(3):
            model(**data, mode="predict")
    assert len(calls) == 1
    model.train()  # training resumes: the cache is dropped, computed once again
    model(**data, mode="loss")
    model(**data, mode="loss")
    assert len(calls) == 2
    model.set_classnames(CLASSES[:2])
    model(data["inputs"][:2], {"label": torch.tensor([0, 1])}, mode="loss")
    assert len(calls) == 3
    model.set_classnames(CLASSES[:2])  # unchanged: no recomputation
    model(data["inputs"][:2], {"label": torch.tensor([0, 1])}, mode="loss")
    assert len(calls) == 3


def test_text_hook_recomputes_in_training_once_in_eval(images):
    model = build(plugins=[dict(type="ToyTextPrompt")])
    assert model.text_depends_on_parameters()
    calls = count_text_calls(model)
    data = batch(model, images)
    model.train()
    for _ in range(3):
        losses = model(**data, mode="loss")
        losses["loss_cls"].backward()
    assert len(calls) == 3
    assert model.clip.plugins["toytext"].shift.grad is not None  # gradients reach the text prompt
    model.eval()
    with torch.no_grad():
        for _ in range(4):
            model(**data, mode="predict")
    assert len(calls) == 4
    with torch.no_grad():  # an update between evaluations must not be hidden by the cache
        model.clip.plugins["toytext"].shift.add_(1.0)
    model.train()
    model.eval()
    with torch.no_grad():
        model(**data, mode="predict")
    assert len(calls) == 5


def test_text_batch_size_chunks(images):
    model = build(templates="synthetic", text_batch_size=4).eval()  # 3 classes x 5 templates = 15 prompts
    calls = count_text_calls(model)
    with torch.no_grad():
        model(batch(model, images)["inputs"], mode="tensor")
    assert len(calls) == 4


def test_missing_classnames_and_bad_templates(images):
    model = MODELS.build(dict(type="PromptClassifier", model_name="tiny-vit"))
    with pytest.raises(RuntimeError, match="ClassNamesHook"):
        model(model.data_preprocessor({"inputs": images})["inputs"], mode="tensor")
    with pytest.raises(ValueError, match="exactly one"):
        MODELS.build(dict(type="PromptClassifier", model_name="tiny-vit", templates=["no slot"]))
    with pytest.raises(ValueError, match="unknown template set"):
        MODELS.build(dict(type="PromptClassifier", model_name="tiny-vit", templates="nonsense"))


def test_an_empty_class_list_is_refused():
    with pytest.raises(ValueError, match="at least one class name"):
        build(classnames=[])
    model = build()
    with pytest.raises(ValueError, match="at least one class name"):
        model.set_classnames([])
    assert model.classnames == CLASSES  # the previous classes are kept


@pytest.mark.parametrize("plugins", [(), [dict(type="MaPLe", n_ctx=2, depth=2)]], ids=["zero-shot", "maple"])
def test_a_class_name_longer_than_the_context_is_an_error_naming_it(images, plugins):
    long_name = " ".join(["striped"] * 80)
    model = build(plugins=plugins, classnames=["red circle", long_name])
    with pytest.raises(ValueError, match=r"class name 'striped striped.*' does not fit.*context_length is 77"):
        model(batch(model, images[:2])["inputs"], mode="tensor")
    model.set_classnames(["red circle", " ".join(["striped"] * 70)])  # 70 words + template + SOT/EOT fit
    assert model(batch(model, images[:2])["inputs"], mode="tensor").shape == (2, 2)


def test_a_non_finite_loss_stops_the_step_before_the_update(images):
    """A plugin loss that turns NaN: the step raises, naming the iteration and the term; no weight changes."""
    from mmengine.logging import MessageHub
    from mmengine.optim import OptimWrapper

    model = build(plugins=[dict(type="CoOp", n_ctx=2)])
    plugin = model.clip.plugins["coop"]
    plugin.losses = lambda outputs: {"loss_bad": outputs["logits"].sum() * float("nan")}
    before = plugin.ctx.detach().clone()
    wrapper = OptimWrapper(torch.optim.SGD([plugin.ctx], lr=1.0))
    MessageHub.get_current_instance().update_info("iter", 41)
    data = {"inputs": images, "data_samples": {"label": torch.tensor([0, 1, 2])}}
    with pytest.raises(FloatingPointError, match=r"non-finite loss at iteration 42: \{'loss_bad': nan\}"):
        model.train_step(data, wrapper)
    assert torch.equal(plugin.ctx, before) and plugin.ctx.grad is None  # nothing was applied
    plugin.losses = lambda outputs: {}
    model.train_step(data, wrapper)  # a finite loss trains as before
    assert not torch.equal(plugin.ctx, before)


def test_an_image_conditioned_plugin_gets_per_image_features_in_bounded_calls_and_no_cache(images):
    import clipadapt_plugins.cocoop  # noqa: F401  (registers CoCoOp)

    model = build([dict(type="CoCoOp")], text_batch_size=2).eval()  # 3 images x 3 classes = 9 texts
    rows: list[int] = []
    model.clip.text.register_forward_hook(lambda module, args, out: rows.append(args[0].shape[0]))
    inputs = batch(model, images)["inputs"]
    with torch.no_grad():
        logits = model(inputs, mode="tensor")
        again = model(inputs, mode="tensor")
        features = model.text_features_for(None, F.normalize(model.clip.encode_image(inputs), dim=-1))
    assert rows[:10] == [2, 2, 2, 2, 1, 2, 2, 2, 2, 1]  # every forward encodes again: nothing cached
    assert model._text_cache is None
    assert features.shape == (3, 3, model.clip.embed_dim)
    image = F.normalize(model.clip.encode_image(inputs), dim=-1).detach()
    expected = model.clip.logit_scale.exp() * torch.stack([features[b] @ image[b] for b in range(3)])
    torch.testing.assert_close(logits, expected.detach(), atol=1e-5 * float(logits.abs().max()), rtol=0)
    torch.testing.assert_close(logits, again, atol=0, rtol=0)
    with pytest.raises(RuntimeError, match=r"depend on each image: use conditioned_class_features"):
        model.class_text_features()


def test_a_subclass_changes_one_step_without_copying_the_forward(images):
    from clipadapt.tasks import PromptClassifier

    class HalfTemperature(PromptClassifier):
        def compute_logits(self, image_features, text_features):
            return 2 * super().compute_logits(image_features, text_features)

    torch.manual_seed(0)
    plain = build().eval()
    torch.manual_seed(0)
    doubled = HalfTemperature("tiny-vit", classnames=CLASSES).eval()
    data = batch(plain, images)
    with torch.no_grad():
        torch.testing.assert_close(doubled(data["inputs"]), 2 * plain(data["inputs"]), atol=0, rtol=0)
        predictions = doubled(**data, mode="predict")
        loss = doubled(**data, mode="loss")["loss_cls"]
    assert [p["gt_label"] for p in predictions] == [0, 1, 2]
    expected = F.cross_entropy(2 * plain(data["inputs"]), data["data_samples"]["label"])
    torch.testing.assert_close(loss, expected)
