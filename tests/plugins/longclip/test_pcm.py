"""Primary component matching equals its definition on fixed tensors; gradients flow; invalid batches are named;
the contrastive task hands the objective to the plugin."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import clipadapt
import clipadapt.engine
from clipadapt.tasks import ImageTextContrastive
from clipadapt_plugins.longclip import LongCLIP, principal_component_reduction
from clipadapt_plugins.longclip.plugin import first_sentence


def _features(batch: int, dim: int, seed: int = 0) -> tuple[torch.Tensor, ...]:
    generator = torch.Generator().manual_seed(seed)
    return tuple(F.normalize(torch.randn(batch, dim, generator=generator), dim=-1) for _ in range(3))


def pca_by_eigh(x: np.ndarray, k: int) -> np.ndarray:
    """Top-k PCA reconstruction from the covariance's eigenvectors (float64; not the SVD the plugin uses)."""
    mean = x.mean(axis=0, keepdims=True)
    centred = x - mean
    values, vectors = np.linalg.eigh(centred.T @ centred)  # ascending
    top = vectors[:, np.argsort(values)[::-1][:k]]  # [D, k]
    return centred @ top @ top.T + mean


def smoothed_ce(logits: np.ndarray, eps: float) -> float:
    """Cross-entropy of row i against class i with label smoothing eps (PyTorch's definition), mean over rows."""
    n = logits.shape[0]
    log_p = logits - logits.max(axis=1, keepdims=True)
    log_p = log_p - np.log(np.exp(log_p).sum(axis=1, keepdims=True))
    target = np.full((n, n), eps / n) + np.eye(n) * (1 - eps)
    return float(-(target * log_p).sum(axis=1).mean())


def direct_pcm(image, long, short, scale: float, k: int, eps: float = 0.1) -> tuple[float, float]:
    i, tl, ts = (t.detach().double().numpy() for t in (image, long, short))
    ic = pca_by_eigh(i, k)
    long_loss = (smoothed_ce(scale * i @ tl.T, eps) + smoothed_ce(scale * tl @ i.T, eps)) / 2
    short_loss = (smoothed_ce(scale * ic @ ts.T, eps) + smoothed_ce(scale * ts @ ic.T, eps)) / 2
    return long_loss, short_loss


def _outputs(image, long, short, scale=100.0, **extra) -> dict:
    return dict(
        task="contrastive",
        contrastive_loss=False,
        image_features=image,
        long_text_features=long,
        text_features=short,
        logit_scale=torch.tensor(scale),
        **extra,
    )


def _plugin(**args) -> LongCLIP:
    plugin = LongCLIP(**args)
    clipadapt.create_model("tiny-vit", plugins=[plugin])
    return plugin


@pytest.mark.parametrize(("batch", "dim", "k"), [(48, 64, 32), (40, 16, 8), (20, 128, 5)])
def test_pcm_equals_its_definition(batch: int, dim: int, k: int) -> None:
    image, long, short = _features(batch, dim)
    losses = _plugin(pcm_components=k).losses(_outputs(image, long, short))
    expected_long, expected_short = direct_pcm(image, long, short, 100.0, k)
    assert set(losses) == {"loss_long", "loss_short"}
    assert losses["loss_long"].item() == pytest.approx(expected_long, rel=1e-5)
    assert losses["loss_short"].item() == pytest.approx(expected_short, rel=1e-5)


def test_label_smoothing_and_weights_are_applied() -> None:
    image, long, short = _features(40, 32)
    plain = _plugin(pcm_components=8, label_smoothing=0.0, long_weight=2.0, short_weight=0.5)
    losses = plain.losses(_outputs(image, long, short))
    expected_long, expected_short = direct_pcm(image, long, short, 100.0, 8, eps=0.0)
    assert losses["loss_long"].item() == pytest.approx(2.0 * expected_long, rel=1e-5)
    assert losses["loss_short"].item() == pytest.approx(0.5 * expected_short, rel=1e-5)
    assert LongCLIP().label_smoothing == 0.1 and LongCLIP().pcm_components == 32


def test_the_reduction_is_not_renormalised_and_is_the_identity_at_full_rank() -> None:
    image, _, _ = _features(40, 32)
    reduced = principal_component_reduction(image, 8)
    assert reduced.norm(dim=-1).max() < 1 - 1e-3  # a projection shortens unit vectors; nothing re-normalises
    torch.testing.assert_close(principal_component_reduction(image, 39), image.float(), rtol=0, atol=1e-5)


def test_gradients_flow_through_the_svd() -> None:
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(7, 5, dtype=torch.float64, generator=generator, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: principal_component_reduction(t, 2), (x,))
    image, long, short = (t.requires_grad_() for t in _features(40, 32))
    losses = _plugin(pcm_components=8).losses(_outputs(image, long, short))
    losses["loss_short"].backward()
    assert image.grad is not None and torch.isfinite(image.grad).all() and image.grad.abs().sum() > 0
    assert short.grad.abs().sum() > 0 and long.grad is None


def test_small_batches_raise_or_skip_with_a_warning() -> None:
    image, long, short = (t.requires_grad_() for t in _features(9, 32))  # 9 < k + 2 = 10 (at most rank 8)
    with pytest.raises(
        ValueError, match=r"batch of 9 .* pcm_components=8.*at least 10 samples.*on_invalid_batch='skip'"
    ):
        _plugin(pcm_components=8).losses(_outputs(image, long, short))
    with pytest.warns(RuntimeWarning, match="too small for primary component matching"):
        losses = _plugin(pcm_components=8, on_invalid_batch="skip").losses(_outputs(image, long, short))
    assert losses["loss_short"].item() == 0
    assert losses["loss_long"].item() == pytest.approx(direct_pcm(image, long, short, 100.0, 8)[0], rel=1e-5)
    (losses["loss_long"] + losses["loss_short"]).backward()
    assert image.grad.abs().sum() > 0


def test_non_finite_features_raise_or_skip_to_a_zero_loss() -> None:
    image, long, short = _features(40, 32)
    image = image.clone()
    image[3, 0] = float("nan")
    with pytest.raises(ValueError, match="not finite"):
        _plugin(pcm_components=8).losses(_outputs(image, long, short))
    plugin = _plugin(pcm_components=8, on_invalid_batch="skip")
    with pytest.warns(RuntimeWarning, match="not finite"):
        losses = plugin.losses(_outputs(image, long, short))
    total = losses["loss_long"] + losses["loss_short"]
    assert total.item() == 0
    total.backward()
    grads = [p.grad for p in plugin.clip.parameters() if p.requires_grad]
    assert all(g is not None and torch.equal(g, torch.zeros_like(g)) for g in grads) and plugin.skipped_batches == 1


def test_other_tasks_get_no_loss_and_a_task_loss_beside_pcm_is_refused() -> None:
    image, long, short = _features(40, 32)
    plugin = _plugin(pcm_components=8)
    assert plugin.losses({"task": "classification", "logits": image}) == {}
    with pytest.raises(ValueError, match="contrastive_loss=False"):
        plugin.losses(_outputs(image, long, short) | {"contrastive_loss": True})
    with pytest.raises(KeyError, match="long_caption_key"):
        plugin.losses(_outputs(image, None, short))


CAPTIONS = ["a red circle and a blue star", "a green square", "a pink ring and a cyan cross", "a purple star"]
LONG_CAPTIONS = [f"The image shows {c}. It sits on a plain background. Nothing else is there." for c in CAPTIONS]


def _task(tiny_pair, **plugin_args) -> ImageTextContrastive:
    _, _, weights = tiny_pair
    plugin = dict(type="LongCLIP", pcm_components=1, **plugin_args)
    return ImageTextContrastive("tiny-vit", pretrained=str(weights), plugins=[plugin], contrastive_loss=False)


def test_the_contrastive_task_hands_the_objective_to_the_plugin(tiny_pair) -> None:
    torch.manual_seed(0)
    images = torch.randn(4, 3, 64, 64)
    samples = {"caption": CAPTIONS, "long_caption": LONG_CAPTIONS}
    task = _task(tiny_pair).train()
    losses = task(images, samples, mode="loss")
    assert set(losses) == {"loss_long", "loss_short"}
    with torch.no_grad():
        clip = task.clip
        image = F.normalize(clip.encode_image(images), dim=-1)
        long = F.normalize(clip.encode_text(task.tokenize(LONG_CAPTIONS)), dim=-1)
        short = F.normalize(clip.encode_text(task.tokenize(CAPTIONS)), dim=-1)
    expected = direct_pcm(image, long, short, math.exp(clip.logit_scale.item()), 1)
    assert (losses["loss_long"].item(), losses["loss_short"].item()) == pytest.approx(expected, rel=1e-4)
    # The short captions may instead be the long captions' first sentences, as in the original.
    first = _task(tiny_pair, short_caption="first_sentence").train()
    from_first = first(images, {"caption": ["unused"] * 4, "long_caption": LONG_CAPTIONS}, mode="loss")
    given = _task(tiny_pair).train()(
        images, {"caption": [first_sentence(c) for c in LONG_CAPTIONS], "long_caption": LONG_CAPTIONS}, mode="loss"
    )
    torch.testing.assert_close(from_first["loss_short"], given["loss_short"])
    assert first_sentence(LONG_CAPTIONS[0]) == "The image shows a red circle and a blue star"
