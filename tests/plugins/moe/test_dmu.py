"""DMU's model-side steps: hierarchical k-means labels, and experts assembled from stage checkpoints."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import clipadapt
from clipadapt_plugins.moe import StageMismatchError, load_stage_experts, refine_labels


def _blobs(rng: np.random.Generator, centres: np.ndarray, per: int) -> tuple[np.ndarray, np.ndarray]:
    points = np.concatenate([c + 0.01 * rng.standard_normal((per, centres.shape[1])) for c in centres])
    return points, np.repeat(np.arange(len(centres)), per)


def test_labels_refine_hierarchically_9_81_729() -> None:
    rng = np.random.default_rng(0)
    image, image_truth = _blobs(rng, np.eye(3, 8) * 5, per=30)
    text_centres = np.eye(3, 8)[::-1] * 5
    text = text_centres[rng.integers(0, 3, size=90)] + 0.01 * rng.standard_normal((90, 8))
    labels = refine_labels(None, image, text)
    assert labels.min() >= 0 and labels.max() < 9 and len(np.unique(labels)) == 9
    # The image part of each label (label % 3) recovers the image blobs up to a permutation.
    pairs = set(zip(labels % 3, image_truth))
    assert len(pairs) == 3
    finer = refine_labels(labels, image[::-1].copy(), text[::-1].copy())
    assert finer.max() < 81 and np.array_equal(finer // 9, labels)  # every child stays inside its parent
    third = refine_labels(finer, image, text, seed=1)
    assert third.max() < 729 and np.array_equal(third // 9, finer)
    assert refine_labels(None, image, text).tolist() == labels.tolist()  # deterministic by seed


def test_labels_check_their_inputs() -> None:
    with pytest.raises(ValueError, match="90 image, 89 text features"):
        refine_labels(None, np.zeros((90, 4)), np.zeros((89, 4)))
    with pytest.raises(ValueError, match="2 samples cannot form 3 clusters"):
        refine_labels(None, np.zeros((2, 4)), np.zeros((2, 4)))


def _stage(weights: Path, out: Path, shift: float, **plugin) -> Path:
    """An MLPFineTune adapter whose MLPs are the base's + ``shift``."""
    model = clipadapt.create_model("tiny-vit", pretrained=weights, plugins=[dict(type="MLPFineTune", **plugin)])
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(shift)
    return clipadapt.save_adapter(model, out)


def _moe(weights: Path, **kwargs) -> clipadapt.CLIP:
    plugin = dict(type="MoEUpcycle", num_experts=3, vision_layers=1, text_layers=1, **kwargs)
    return clipadapt.create_model("tiny-vit", pretrained=weights, plugins=[plugin])


def test_expert_j_becomes_the_mlp_of_stage_j(tiny_base, tiny_weights, tmp_path: Path) -> None:
    stages = [None, _stage(tiny_weights, tmp_path / "s1.pt", 0.5), _stage(tiny_weights, tmp_path / "s2.pt", -1.0)]
    model = _moe(tiny_weights)
    load_stage_experts(model, stages)
    dense = tiny_base.state_dict()
    state = model.state_dict()
    for name in ("visual.transformer.resblocks.3.mlp", "text.transformer.resblocks.3.mlp"):
        base = dense[f"{name}.c_fc.weight"]
        torch.testing.assert_close(state[f"{name}.experts.0.c_fc.weight"], base, atol=0, rtol=0)
        torch.testing.assert_close(state[f"{name}.experts.1.c_fc.weight"], base + 0.5, atol=0, rtol=0)
        torch.testing.assert_close(state[f"{name}.experts.2.c_proj.bias"], dense[f"{name}.c_proj.bias"] - 1.0)


def test_a_stage_from_another_base_is_refused(tiny_weights, tmp_path: Path) -> None:
    other = tmp_path / "other.pt"
    state = torch.load(tiny_weights, weights_only=True)
    torch.save({k: v + 1e-3 for k, v in state.items()}, other)
    stage = _stage(other, tmp_path / "s1.pt", 0.5)
    with pytest.raises(StageMismatchError, match=r"s1.pt was fine-tuned from base weights .*other.pt .*but the MoE"):
        load_stage_experts(_moe(tiny_weights), [None, stage, None])


def test_a_stage_without_every_upcycled_mlp_is_refused(tiny_weights, tmp_path: Path) -> None:
    stage = _stage(tiny_weights, tmp_path / "s1.pt", 0.5, text_layers=0)  # vision MLPs only
    with pytest.raises(StageMismatchError, match=r"lacks \['text.transformer.resblocks.3.mlp.c_fc.weight'"):
        load_stage_experts(_moe(tiny_weights), [None, stage, None])
    with pytest.raises(ValueError, match="2 stage checkpoints given for 3 experts"):
        load_stage_experts(_moe(tiny_weights), [None, stage])


def test_a_stage_of_a_model_without_pretrained_weights_is_refused(tiny_weights, tmp_path: Path) -> None:
    model = clipadapt.create_model("tiny-vit", plugins=[dict(type="MLPFineTune")])
    stage = clipadapt.save_adapter(model, tmp_path / "random.pt")
    with pytest.raises(StageMismatchError, match="no recorded pretrained base weights"):
        load_stage_experts(_moe(tiny_weights), [None, stage, None])


def test_kmeans_settings_reach_minibatch_kmeans(monkeypatch) -> None:
    import sklearn.cluster

    seen = []
    real = sklearn.cluster.MiniBatchKMeans

    def recording(**kwargs):
        seen.append(kwargs)
        return real(**kwargs)

    monkeypatch.setattr(sklearn.cluster, "MiniBatchKMeans", recording)
    image, text = np.random.default_rng(0).standard_normal((2, 30, 4))
    refine_labels(None, image, text, batch_size=1_000_000, max_iter=500, tol=1e-5, n_init="auto")
    # the original's cluster.ipynb; a batch larger than the data is capped at its size
    assert seen and all(
        (s["batch_size"], s["max_iter"], s["tol"], s["n_init"]) == (30, 500, 1e-5, "auto") for s in seen
    )


def test_the_recipe_configs_cluster_as_the_original() -> None:
    from mmengine.config import Config

    root = Path(__file__).resolve().parents[3] / "configs" / "moe"
    for name in ("clipmoe_vit-b-16_4x2_1xb100_sharegpt4v.py", "clipmoe_vit-l-14_4x2_1xb100_sharegpt4v.py"):
        dmu = Config.fromfile(str(root / name)).dmu
        assert (dmu.kmeans_batch_size, dmu.kmeans_max_iter, dmu.kmeans_tol, dmu.kmeans_n_init) == (
            1_000_000,
            500,
            1e-5,
            "auto",
        )
        assert dict(dmu.get("cluster_sampler") or {}).get("remainder", "drop") == "drop"
        assert dict(dmu.get("cluster_sampler") or {}).get("order", "round_robin") == "round_robin"
