"""LongTextRetrieval: long and short retrieval as RetrievalRecall computes them, zero-shot as PromptClassifier
classifies, and the retention against the base CLIP; MetricModelHook hands it the model."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from mmengine.registry import DefaultScope

import clipadapt.engine  # noqa: F401  (registers tasks, datasets, metrics, hooks)
from clipadapt.datasets import FewShotDataset
from clipadapt.datasets.synthetic import ensure_synthetic_world
from clipadapt.evaluation import LongTextRetrieval, MetricModelHook, retrieval_recall, zero_shot_hits
from clipadapt.tasks import ImageTextContrastive, PromptClassifier

WORLD = dict(
    seed=3,
    colours=["red", "blue", "green"],
    shapes=["circle", "star"],
    domains=["plain"],
    per_class_train=1,
    per_class_val=1,
    per_class_test=5,
    scenes_train=1,
    scenes_val=1,
    scenes_test=1,
)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return ensure_synthetic_world(tmp_path_factory.mktemp("world"), workers=1, progress=False, **WORLD)


@pytest.fixture(autouse=True)
def clipadapt_scope():
    with DefaultScope.overwrite_default_scope("clipadapt"):
        yield


def _dataset_cfg(world: Path) -> dict:
    return dict(
        type="FewShotDataset",
        data_root=str(world),
        split_file="split_synthetic_plain.json",
        split="test",
        pipeline=[dict(type="LoadImage"), dict(type="Resize", size=64)],
    )


def _predictions(n: int = 12, dim: int = 16) -> list[dict]:
    generator = torch.Generator().manual_seed(0)
    rows = [F.normalize(torch.randn(n, dim, generator=generator), dim=-1) for _ in range(3)]
    paths = [f"img{i // 2 if i < 4 else i}.png" for i in range(n)]  # rows 0-1 and 2-3 share an image
    return [
        {"image_feature": rows[0][i], "text_feature": rows[1][i], "long_text_feature": rows[2][i], "img_path": paths[i]}
        for i in range(n)
    ]


def test_long_and_short_retrieval_are_retrieval_recall_of_each_caption_kind() -> None:
    predictions = _predictions()
    metric = LongTextRetrieval(ks=(1, 5))
    metric.process({}, predictions)
    metrics = metric.evaluate(len(predictions))
    owner = torch.tensor([0, 0, 1, 1, *range(2, 10)])
    images = torch.stack([predictions[i]["image_feature"] for i in (0, 2, *range(4, 12))])
    for kind, key in (("long", "long_text_feature"), ("short", "text_feature")):
        expected = retrieval_recall(images, torch.stack([p[key] for p in predictions]), owner, (1, 5))
        assert {k: metrics[f"longtext/{kind}_{k}"] for k in expected} == expected
    assert not any(k.startswith("longtext/zeroshot") for k in metrics)


def test_predictions_without_long_captions_are_named() -> None:
    sample = _predictions()[0]
    del sample["long_text_feature"]
    with pytest.raises(KeyError, match=r"long_text_feature.*long_caption_key.*contrastive_loss=False"):
        LongTextRetrieval().process({}, [sample])


def test_zero_shot_hits_equal_the_prompt_classifiers_accuracy(tiny_pair, world: Path) -> None:
    _, _, weights = tiny_pair
    dataset = FewShotDataset(**{k: v for k, v in _dataset_cfg(world).items() if k != "type"})
    task = ImageTextContrastive("tiny-vit", pretrained=str(weights)).eval()
    classifier = PromptClassifier(
        "tiny-vit", pretrained=str(weights), classnames=dataset.metainfo["classes"], templates="synthetic"
    ).eval()
    batch = classifier.data_preprocessor(
        {"inputs": torch.stack([dataset[i]["inputs"] for i in range(len(dataset))])}, False
    )
    labels = torch.tensor([dataset[i]["data_samples"]["label"] for i in range(len(dataset))])
    with torch.no_grad():
        expected = int((classifier(batch["inputs"], mode="tensor").argmax(dim=1) == labels).sum())
        hits = zero_shot_hits(task, dataset, classifier.templates, batch_size=4)
    assert len(dataset) == 30 and hits == (expected, 30)


def test_zero_shot_retention_against_the_base_clip(tiny_pair, world: Path) -> None:
    _, _, weights = tiny_pair
    zero_shot = dict(dataset=_dataset_cfg(world), templates="synthetic", batch_size=16)
    metric = LongTextRetrieval(ks=(1,), zero_shot=zero_shot)
    metric.process({}, _predictions())
    with pytest.raises(RuntimeError, match="MetricModelHook"):
        metric.evaluate(12)
    # A stretched, untrained Long-CLIP classifies exactly as its base: class prompts are within the kept positions.
    task = ImageTextContrastive(
        "tiny-vit", pretrained=str(weights), plugins=[dict(type="LongCLIP")], contrastive_loss=False
    )
    runner = SimpleNamespace(model=task, val_loop=SimpleNamespace(evaluator=SimpleNamespace(metrics=[metric])))
    MetricModelHook().before_val(runner)
    metric.process({}, _predictions())
    metrics = metric.evaluate(12)
    assert 0 <= metrics["longtext/zeroshot_top1"] <= 100
    assert metrics["longtext/zeroshot_top1"] == metrics["longtext/zeroshot_base_top1"]
    assert metrics["longtext/zeroshot_change"] == 0
    assert task.training  # the model's mode is restored


def test_zero_shot_options_are_checked() -> None:
    with pytest.raises(ValueError, match=r"zero_shot takes the keys .*got \['datset'\]"):
        LongTextRetrieval(zero_shot=dict(datset={}))
    with pytest.raises(ValueError, match="template"):
        LongTextRetrieval(zero_shot=dict(dataset={}, templates="no placeholder"))
