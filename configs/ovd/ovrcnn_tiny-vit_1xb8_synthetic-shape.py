# Open-vocabulary Faster R-CNN on the synthetic world with shape categories: trained on the 5 base shapes
# (detection_train_base.json: circle, square, triangle, star, cross), tested on all 8 (ring, diamond and
# hexagon are novel) with MMDetection's OV-COCO metric. The model and schedule are the colour config's:
#   python tools/train.py configs/ovd/ovrcnn_tiny-vit_1xb8_synthetic-shape.py
#   python tools/test.py configs/ovd/ovrcnn_tiny-vit_1xb8_synthetic-shape.py work_dirs/<name>/epoch_6.pth
#   ... --cfg-options model.roi_head.region_scorer=None    # the detector alone, without CLIP's box scores
_base_ = ["./ovrcnn_tiny-vit_1xb8_synthetic-colour.py"]

_classes = ("circle", "square", "triangle", "star", "cross", "ring", "diamond", "hexagon")
_base, _novel = _classes[:5], _classes[5:]

model = dict(roi_head=dict(bbox_head=dict(num_classes=len(_base))))
train_dataloader = dict(
    dataset=dict(ann_file="synthetic://detection_train_base.json", metainfo=dict(classes=_base)),
)
_test = dict(
    ann_file="synthetic://detection_test.json",
    metainfo=dict(classes=_classes, base_classes=_base, novel_classes=_novel),
)
val_dataloader = dict(dataset=_test)
test_dataloader = val_dataloader
val_evaluator = dict(ann_file="synthetic://detection_test.json")
test_evaluator = val_evaluator
