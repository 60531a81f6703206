"""The MMDetection integration: classifier, vocabulary swaps, training, and the errors users meet.

These run on every `make test`: it installs MMDetection and a compiled mmcv (tools/install_mmdet.py).
The detector is the tiny open-vocabulary config with a random-weight tiny CLIP; what is tested is
arithmetic and wiring, not accuracy (the model zoo measures that).
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from mmdet.registry import MODELS
from mmdet.structures import DetDataSample
from mmdet.utils import register_all_modules
from mmengine.config import Config
from mmengine.registry import DefaultScope
from mmengine.structures import InstanceData

import clipadapt
from clipadapt.detection import CLIPTextClassifier, CLIPViT, OpenVocabRCNN, dataset_vocabulary
from clipadapt.detection.clip_models import frozen_clip
from clipadapt.models.checkpoint import CheckpointMismatchError

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "configs" / "ovd" / "ovrcnn_tiny-vit_1xb8_synthetic-colour.py"
CLIP = dict(model_name="tiny-vit")  # random weights, shared by every module of the detector
VOCAB = ["red", "green", "blue"]

register_all_modules(init_default_scope=False)  # the default scope stays clipadapt's for the other tests


def _model_cfg(**clip: object) -> Config:
    cfg = Config.fromfile(CONFIG)
    clip = dict(CLIP, **clip)
    cfg.model.backbone.clip = clip
    cfg.model.roi_head.bbox_head.cls_predictor_cfg.clip = clip
    cfg.model.roi_head.region_scorer.clip = clip
    cfg.model.roi_head.bbox_head.num_classes = len(VOCAB)
    return cfg


def _build(cfg: Config | None = None) -> OpenVocabRCNN:
    torch.manual_seed(0)
    with DefaultScope.overwrite_default_scope("mmdet"):  # MMEngine builds the data preprocessor by scope
        model = MODELS.build((cfg or _model_cfg()).model)
    model.init_weights()
    return model


def _sample(size: int = 192) -> DetDataSample:
    shape = (size, size)
    meta = dict(img_shape=shape, ori_shape=shape, pad_shape=shape, batch_input_shape=shape, scale_factor=(1.0, 1.0))
    return DetDataSample(metainfo=meta)


def test_classifier_scores_are_temperature_times_cosine_with_the_class_text():
    torch.manual_seed(0)
    head = CLIPTextClassifier(in_features=16, out_features=4, clip=CLIP, vocabulary=VOCAB, temperature=30.0)
    x = torch.randn(5, 16)
    clip = frozen_clip(CLIP)
    tokens = clipadapt.get_tokenizer("tiny-vit")([f"a photo of a {name}." for name in VOCAB])
    text = clip.encode_text(tokens, normalize=True)
    columns = torch.cat([text, F.normalize(head.background, dim=0)[None]])
    expected = 30.0 * F.normalize(head.proj(x), dim=-1) @ columns.t()
    torch.testing.assert_close(head(x), expected)
    assert head(x).shape == (5, 4)  # background last


def _named_detections(model: OpenVocabRCNN, images: torch.Tensor) -> list[tuple[str, tuple[float, ...], float]]:
    with torch.no_grad():
        (result,) = model.predict(images, [_sample()])
    pred = result.pred_instances
    return sorted(
        (model.vocabulary[int(label)], tuple(round(float(v), 2) for v in box), round(float(score), 4))
        for label, box, score in zip(pred.labels, pred.bboxes, pred.scores, strict=True)
    )


def test_swapping_the_vocabulary_at_test_time_relabels_the_detections():
    model = _build().eval()
    images = torch.randn(1, 3, 192, 192)
    model.set_vocabulary(VOCAB, novel_classes=["blue"])
    before = _named_detections(model, images)
    assert before and len({name for name, _, _ in before}) >= 2
    # the same classes in another order: the same named detections, other label indices
    model.set_vocabulary(["blue", "red", "green"], novel_classes=["blue"])
    assert _named_detections(model, images) == before
    # a class replaced: its name is gone and the detections change; nothing was retrained
    model.set_vocabulary(["red", "green", "purple"], novel_classes=["purple"])
    after = _named_detections(model, images)
    names = {name for name, _, _ in after}
    assert after != before and names <= {"red", "green", "purple"}
    assert model.roi_head.bbox_head.num_classes == 3


def test_the_detector_trains_and_its_loss_falls():
    model = _build()
    model.set_vocabulary(VOCAB)
    model.train()
    # two images of flat coloured boxes on grey: something a detector can learn in a few steps
    colours = torch.tensor([[2.0, -1.0, -1.0], [-1.0, 2.0, -1.0], [-1.0, -1.0, 2.0]])  # red, green, blue
    images = torch.zeros(2, 3, 192, 192)
    samples = []
    for i, (boxes, labels) in enumerate(
        (([[20, 30, 80, 90], [100, 100, 150, 170]], [0, 2]), ([[40, 40, 120, 100]], [1]))
    ):
        for (x1, y1, x2, y2), label in zip(boxes, labels, strict=True):
            images[i, :, y1:y2, x1:x2] = colours[label][:, None, None]
        sample = _sample()
        sample.gt_instances = InstanceData(bboxes=torch.tensor(boxes, dtype=torch.float), labels=torch.tensor(labels))
        samples.append(sample)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=5e-4)
    losses = []
    torch.manual_seed(1)
    for _ in range(30):
        loss, _ = model.parse_losses(model.loss(images, samples))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss))
    assert sum(losses[-5:]) / 5 < 0.5 * sum(losses[1:6]) / 5, losses  # step 0 is the initialisation's loss


def test_class_names_missing_from_the_dataset_meta_are_named(tmp_path):
    ann = tmp_path / "ann.json"
    ann.write_text(json.dumps({"categories": [{"id": 1, "name": "red"}, {"id": 2, "name": "green"}]}))
    with pytest.raises(ValueError, match=r"test_dataloader.dataset .* no 'classes'"):
        dataset_vocabulary(SimpleNamespace(metainfo={}, ann_file=str(ann)), "test")
    meta = dict(classes=("red", "green"), novel_classes=("cyan",))
    with pytest.raises(ValueError, match=r"metainfo\['novel_classes'\] names \['cyan'\]"):
        dataset_vocabulary(SimpleNamespace(metainfo=meta, ann_file=str(ann)), "val")
    with pytest.raises(ValueError, match=r"classes \['blue'\] .* not categories of .*ann.json"):
        dataset_vocabulary(SimpleNamespace(metainfo=dict(classes=("red", "blue")), ann_file=str(ann)), "train")
    classes, novel = dataset_vocabulary(
        SimpleNamespace(metainfo=dict(classes=("red", "green")), ann_file=str(ann)), "train"
    )
    assert (classes, novel) == (["red", "green"], [])


def test_a_model_without_vocabulary_says_how_to_set_one():
    model = _build().eval()
    with pytest.raises(RuntimeError, match="OpenVocabularyHook"):
        model.predict(torch.randn(1, 3, 192, 192), [_sample()])


def test_backbone_widths_that_do_not_fit_are_named(tiny_pair):
    _, _, weights = tiny_pair
    with pytest.raises(ValueError, match="width=768.*token width 192"):
        CLIPViT(clip=dict(model_name="tiny-vit", pretrained=str(weights)), width=768)
    cfg = _model_cfg()
    cfg.model.neck.in_channels = [256, 256, 256]
    with pytest.raises(ValueError, match=r"neck.in_channels=\[256, 256, 256\] do not fit .* \[192, 192, 192\]"):
        _build(cfg)
    with pytest.raises(CheckpointMismatchError):
        CLIPViT(clip=dict(model_name="ViT-B-16", pretrained=str(weights)))


def test_backbone_gives_the_pyramid_strides_and_can_be_frozen():
    backbone = CLIPViT(clip=CLIP, scales=(4.0, 2.0, 1.0, 0.5), frozen=True)
    maps = backbone(torch.randn(2, 3, 96, 128))
    assert [tuple(m.shape[-2:]) for m in maps] == [(48, 64), (24, 32), (12, 16), (6, 8)]
    assert backbone.strides == [2.0, 4.0, 8.0, 16.0]
    assert not any(p.requires_grad for p in backbone.visual.parameters())
    backbone.train()
    assert not backbone.visual.training and backbone.pyramid.training
