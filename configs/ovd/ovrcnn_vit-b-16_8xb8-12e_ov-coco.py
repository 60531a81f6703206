# The tiny open-vocabulary Faster R-CNN scaled to OpenAI's CLIP ViT-B/16 on OV-COCO (48 base / 17 novel
# classes, the OVR-CNN split), for users with COCO and the weights on disk:
#   data/coco/train2017/, data/coco/val2017/
#   data/coco/annotations/instances_train2017_base.json   train annotations of the 48 base classes only
#   data/coco/annotations/instances_val2017_all.json      val annotations of the 65 classes
#   checkpoints/ViT-B-16.pt                                OpenAI's file or an open_clip state dict
#   bash tools/dist_train.sh configs/ovd/ovrcnn_vit-b-16_8xb8-12e_ov-coco.py 8
# Headline number: coco/novel_ap50 (OVCocoMetric). docs/mmdetection.md says how the split files are made.
_base_ = ["./ovrcnn_tiny-vit_1xb8_synthetic-colour.py"]

_clip = dict(model_name="ViT-B-16-quickgelu", pretrained="checkpoints/ViT-B-16.pt")
# fmt: off
_base_classes = (
    "person", "bicycle", "car", "motorcycle", "train", "truck", "boat", "bench", "bird", "horse", "sheep", "bear",
    "zebra", "giraffe", "backpack", "handbag", "suitcase", "frisbee", "skis", "kite", "surfboard", "bottle", "fork",
    "spoon", "bowl", "banana", "apple", "sandwich", "orange", "broccoli", "carrot", "pizza", "donut", "chair", "bed",
    "toilet", "tv", "laptop", "mouse", "remote", "microwave", "oven", "toaster", "refrigerator", "book", "clock",
    "vase", "toothbrush",
)  # 48
_novel_classes = (
    "airplane", "bus", "cat", "dog", "cow", "elephant", "umbrella", "tie", "snowboard", "skateboard", "cup", "knife",
    "cake", "couch", "keyboard", "sink", "scissors",
)  # 17
# fmt: on
_all_classes = _base_classes + _novel_classes
_size = 1024  # F-VLM's input size: a 64 x 64 patch grid

model = dict(
    backbone=dict(clip=_clip, width=768, scales=(4.0, 2.0, 1.0, 0.5)),
    neck=dict(in_channels=[768] * 4, out_channels=256, num_outs=5),
    rpn_head=dict(
        in_channels=256,
        feat_channels=256,
        anchor_generator=dict(scales=[8], strides=[4, 8, 16, 32, 64]),
    ),
    roi_head=dict(
        bbox_roi_extractor=dict(out_channels=256, featmap_strides=[4, 8, 16, 32]),
        bbox_head=dict(
            in_channels=256,
            fc_out_channels=1024,
            num_classes=len(_base_classes),
            cls_predictor_cfg=dict(clip=_clip, templates="openai_imagenet"),
        ),
        # ViT-B/16's dense features localise well enough to pool (one forward per image, not per box).
        region_scorer=dict(clip=_clip, mode="dense", templates="openai_imagenet", image_size=_size),
    ),
    train_cfg=dict(
        rpn=dict(sampler=dict(num=256)),
        rpn_proposal=dict(nms_pre=2000, max_per_img=1000),
        rcnn=dict(sampler=dict(num=512)),
    ),
    test_cfg=dict(
        rpn=dict(nms_pre=1000, max_per_img=1000),
        rcnn=dict(score_thr=0.0001, max_per_img=100),
    ),
)

data_root = "data/coco/"
_train_pipeline = [
    dict(type="LoadImageFromFile"),
    dict(type="LoadAnnotations", with_bbox=True),
    dict(type="RandomResize", scale=(_size, _size), ratio_range=(0.5, 2.0), keep_ratio=True),
    dict(type="RandomCrop", crop_type="absolute_range", crop_size=(_size, _size), recompute_bbox=True),
    dict(type="FilterAnnotations", min_gt_bbox_wh=(1e-2, 1e-2)),
    dict(type="RandomFlip", prob=0.5),
    dict(type="PackDetInputs"),
]
_test_pipeline = [
    dict(type="LoadImageFromFile"),
    dict(type="Resize", scale=(_size, _size), keep_ratio=True),
    dict(type="LoadAnnotations", with_bbox=True),
    dict(type="PackDetInputs", meta_keys=("img_id", "img_path", "ori_shape", "img_shape", "scale_factor")),
]
train_dataloader = dict(
    dataset=dict(
        data_root=data_root,
        ann_file="annotations/instances_train2017_base.json",
        data_prefix=dict(img="train2017/"),
        metainfo=dict(classes=_base_classes),
        pipeline=_train_pipeline,
    ),
)
val_dataloader = dict(
    dataset=dict(
        data_root=data_root,
        ann_file="annotations/instances_val2017_all.json",
        data_prefix=dict(img="val2017/"),
        metainfo=dict(classes=_all_classes, base_classes=_base_classes, novel_classes=_novel_classes),
        pipeline=_test_pipeline,
    ),
)
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + "annotations/instances_val2017_all.json")
test_evaluator = val_evaluator

train_cfg = dict(max_epochs=12, val_interval=4)
optim_wrapper = dict(optimizer=dict(lr=2e-4, weight_decay=0.1))
param_scheduler = [
    dict(type="LinearLR", start_factor=0.001, by_epoch=False, begin=0, end=1000),
    dict(type="CosineAnnealingLR", by_epoch=True, begin=0, end=12, eta_min_ratio=0.01, convert_to_iter_based=True),
]
auto_scale_lr = dict(enable=False, base_batch_size=64)
env_cfg = dict(dist_cfg=dict(backend="nccl"))
