# Open-vocabulary Faster R-CNN on the synthetic world, with the tiny base CLIP as backbone, classifier
# and box scorer. Trained on the 5 base colours only (detection_colour_train_base.json), tested on all
# 8 (purple, pink and cyan are novel) with MMDetection's OV-COCO metric (base and novel AP50):
#   python tools/train.py configs/ovd/ovrcnn_tiny-vit_1xb8_synthetic-colour.py
#   python tools/test.py configs/ovd/ovrcnn_tiny-vit_1xb8_synthetic-colour.py work_dirs/<name>/epoch_6.pth
#   ... --cfg-options model.roi_head.region_scorer=None    # the detector alone, without CLIP's box scores
# Categories are colours, not shapes: the tiny CLIP names colours but not shapes (docs/mmdetection.md).
default_scope = "mmdet"
custom_imports = dict(imports=["clipadapt.detection"], allow_failed_imports=False)

_clip = dict(model_name="tiny-vit", pretrained="cache://tiny-vit-synthetic")
_classes = ("red", "green", "blue", "yellow", "orange", "purple", "pink", "cyan")
_base, _novel = _classes[:5], _classes[5:]
_size = 192  # 96-pixel scenes, upsampled: a 24 x 24 patch grid for the 8-pixel patches
_width = 192  # the tiny CLIP's token width

model = dict(
    type="OpenVocabRCNN",
    data_preprocessor=dict(
        type="DetDataPreprocessor",
        mean=[122.770938, 116.7460125, 104.09373615],  # CLIP's normalisation, in 0..255
        std=[68.5005327, 66.6321579, 70.32316305],
        bgr_to_rgb=True,
        pad_size_divisor=32,
    ),
    # Frozen, as F-VLM keeps its CLIP (a trained tiny ViT localised worse here: docs/mmdetection.md).
    backbone=dict(type="CLIPViT", clip=_clip, scales=(2.0, 1.0, 0.5), frozen=True, width=_width),
    neck=dict(type="FPN", in_channels=[_width] * 3, out_channels=128, num_outs=4),
    rpn_head=dict(
        type="RPNHead",
        in_channels=128,
        feat_channels=128,
        # two anchor sizes per level (8 to 128 pixels): the objects are 16 to 60 pixels at this input size
        anchor_generator=dict(type="AnchorGenerator", scales=[2, 4], ratios=[0.5, 1.0, 2.0], strides=[4, 8, 16, 32]),
        bbox_coder=dict(type="DeltaXYWHBBoxCoder", target_means=[0.0] * 4, target_stds=[1.0] * 4),
        loss_cls=dict(type="CrossEntropyLoss", use_sigmoid=True, loss_weight=1.0),
        loss_bbox=dict(type="L1Loss", loss_weight=1.0),
    ),
    roi_head=dict(
        type="CLIPEnsembleRoIHead",
        bbox_roi_extractor=dict(
            type="SingleRoIExtractor",
            roi_layer=dict(type="RoIAlign", output_size=7, sampling_ratio=0),
            out_channels=128,
            featmap_strides=[4, 8, 16, 32],
        ),
        bbox_head=dict(
            type="Shared2FCBBoxHead",
            in_channels=128,
            fc_out_channels=256,
            roi_feat_size=7,
            num_classes=len(_base),
            reg_class_agnostic=True,  # one box per proposal, whatever the vocabulary
            cls_predictor_cfg=dict(type="CLIPTextClassifier", clip=_clip, templates="synthetic", temperature=50.0),
            bbox_coder=dict(type="DeltaXYWHBBoxCoder", target_means=[0.0] * 4, target_stds=[0.1, 0.1, 0.2, 0.2]),
            loss_cls=dict(type="CrossEntropyLoss", use_sigmoid=False, loss_weight=1.0),
            loss_bbox=dict(type="L1Loss", loss_weight=1.0),
        ),
        # ViLD's crops: the tiny CLIP's dense patch features are too coarse for 10-pixel objects.
        region_scorer=dict(clip=_clip, mode="crop", templates="synthetic", base_weight=0.35, novel_weight=0.65),
    ),
    train_cfg=dict(
        rpn=dict(
            # IoU 0.5 for a positive anchor (0.7 in COCO's recipe): small objects get too few positives at 0.7
            assigner=dict(type="MaxIoUAssigner", pos_iou_thr=0.5, neg_iou_thr=0.3, min_pos_iou=0.3, ignore_iof_thr=-1),
            sampler=dict(type="RandomSampler", num=128, pos_fraction=0.5, neg_pos_ub=-1, add_gt_as_proposals=False),
            allowed_border=-1,
            pos_weight=-1,
            debug=False,
        ),
        rpn_proposal=dict(nms_pre=600, max_per_img=300, nms=dict(type="nms", iou_threshold=0.7), min_bbox_size=0),
        rcnn=dict(
            assigner=dict(type="MaxIoUAssigner", pos_iou_thr=0.5, neg_iou_thr=0.5, min_pos_iou=0.5, ignore_iof_thr=-1),
            sampler=dict(type="RandomSampler", num=128, pos_fraction=0.25, neg_pos_ub=-1, add_gt_as_proposals=True),
            pos_weight=-1,
            debug=False,
        ),
    ),
    test_cfg=dict(
        rpn=dict(nms_pre=300, max_per_img=100, nms=dict(type="nms", iou_threshold=0.7), min_bbox_size=0),
        rcnn=dict(score_thr=0.01, nms=dict(type="nms", iou_threshold=0.5), max_per_img=50),
    ),
)

data_root = "synthetic://"
_train_pipeline = [
    dict(type="LoadImageFromFile"),
    dict(type="LoadAnnotations", with_bbox=True),
    dict(type="Resize", scale=(_size, _size), keep_ratio=True),
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
    batch_size=8,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type="DefaultSampler", shuffle=True),
    batch_sampler=dict(type="AspectRatioBatchSampler"),
    dataset=dict(
        type="CocoDataset",
        data_root=data_root,
        ann_file="synthetic://detection_colour_train_base.json",
        data_prefix=dict(img=""),
        metainfo=dict(classes=_base),
        filter_cfg=dict(filter_empty_gt=True, min_size=2),
        pipeline=_train_pipeline,
    ),
)
_test_dataset = dict(
    type="CocoDataset",
    data_root=data_root,
    ann_file="synthetic://detection_colour_test.json",
    data_prefix=dict(img=""),
    metainfo=dict(classes=_classes, base_classes=_base, novel_classes=_novel),
    test_mode=True,
    pipeline=_test_pipeline,
)
val_dataloader = dict(
    batch_size=8,
    num_workers=2,
    persistent_workers=True,
    drop_last=False,
    sampler=dict(type="DefaultSampler", shuffle=False),
    dataset=_test_dataset,
)
test_dataloader = val_dataloader
val_evaluator = dict(type="OVCocoMetric", ann_file="synthetic://detection_colour_test.json", metric="bbox")
test_evaluator = val_evaluator

train_cfg = dict(type="EpochBasedTrainLoop", max_epochs=6, val_interval=6)
val_cfg = dict(type="ValLoop")
test_cfg = dict(type="TestLoop")
optim_wrapper = dict(
    type="OptimWrapper",
    optimizer=dict(type="AdamW", lr=4e-4, weight_decay=0.05),
    clip_grad=dict(max_norm=10.0),
)
param_scheduler = [
    dict(type="LinearLR", start_factor=0.01, by_epoch=False, begin=0, end=100),
    dict(type="CosineAnnealingLR", by_epoch=True, begin=0, end=6, eta_min_ratio=0.05, convert_to_iter_based=True),
]

custom_hooks = [dict(type="OpenVocabularyHook")]
default_hooks = dict(
    timer=dict(type="IterTimerHook"),
    logger=dict(type="LoggerHook", interval=20),
    param_scheduler=dict(type="ParamSchedulerHook"),
    checkpoint=dict(type="CheckpointHook", interval=1, max_keep_ckpts=2),
    sampler_seed=dict(type="DistSamplerSeedHook"),
    visualization=dict(type="DetVisualizationHook"),
)
env_cfg = dict(cudnn_benchmark=False, mp_cfg=dict(mp_start_method="fork", opencv_num_threads=0), dist_cfg=dict(backend="nccl"))
_vis_backends = [dict(type="LocalVisBackend"), dict(type="TensorboardVisBackend")]
visualizer = dict(type="DetLocalVisualizer", vis_backends=_vis_backends, name="visualizer")
log_processor = dict(type="LogProcessor", window_size=20, by_epoch=True)
log_level = "INFO"
load_from = None
resume = False
randomness = dict(seed=0)
