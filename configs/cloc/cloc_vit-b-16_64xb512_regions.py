# CLOC's recipe (Chen et al., 2024, https://arxiv.org/abs/2410.02746, App. B) for a ViT-B/16 with
# real region data: the Prompter pools regions; L = L_CLIP + lambda (L_CLOC + L_grounding), lambda = 1;
# 4 regions per image; AdamW lr 5e-4, betas (0.9, 0.98), wd 0.2, 2k warm-up iterations, cosine;
# batch 32768 (512 x 64 GPUs), 224 px; everything trains. CLOC pretrains from scratch on ~14B
# samples (CLOC's code is not public: the schedule's shape, warm-up then a cosine from its end, and the
# activation are assumptions). To continue from OpenAI's CLIP weights set model.pretrained, use
# model_name="ViT-B-16-quickgelu" (OpenAI's CLIP uses QuickGELU) and lower the lr.
#   bash tools/dist_train.sh configs/cloc/cloc_vit-b-16_64xb512_regions.py 8 \
#       --cfg-options data_root=/path/to/regions
_base_ = ["../_base_/schedules/adamw_region_finetune.py", "../_base_/default_runtime.py"]
data_root = "data/regions"
_epochs = 1
model = dict(
    type="RegionTextAlignment",
    model_name="ViT-B-16",
    pretrained=None,
    plugins=[dict(type="CLOCPrompter", loss_weight=1.0, grounding=True, duplicate_threshold=0.9, trainable="all")],
    loss_weights=dict(long=0.0, region=0.0, hard_negative=0.0, hard_batch=0.0, cmr=0.0, tic=0.0),
    templates="openai_imagenet",
    grad_checkpointing=True,
    data_preprocessor=dict(type="ClipDataPreprocessor"),
)
_pipeline = [dict(type="LoadImage"), dict(type="RandomResizedCrop", size=224, scale=(0.4, 1.0))]
_test_pipeline = [dict(type="LoadImage"), dict(type="Resize", size=(224, 224))]
train_dataloader = dict(
    batch_size=512,
    num_workers=8,
    persistent_workers=True,
    sampler=dict(type="DefaultSampler", shuffle=True),
    collate_fn=dict(type="clipadapt.region_collate"),
    dataset=dict(
        type="RegionDataset", data_root=data_root, ann_file="regions_train.json", max_boxes=4, pipeline=_pipeline
    ),
)
val_dataloader = dict(
    batch_size=128,
    num_workers=8,
    sampler=dict(type="DefaultSampler", shuffle=False),
    collate_fn=dict(type="clipadapt.region_collate"),
    dataset=dict(
        type="RegionDataset", data_root=data_root, ann_file="regions_val.json", test_mode=True, pipeline=_test_pipeline
    ),
)
test_dataloader = val_dataloader
val_evaluator = [dict(type="RegionMetric", ks=(1, 5)), dict(type="RetrievalRecall", ks=(1, 5))]
test_evaluator = val_evaluator
optim_wrapper = dict(type="AmpOptimWrapper", dtype="bfloat16", optimizer=dict(lr=5e-4, weight_decay=0.2))
param_scheduler = [
    dict(type="LinearLR", start_factor=1e-3, by_epoch=False, begin=0, end=2000),
    dict(type="CosineAnnealingLR", by_epoch=False, begin=2000),  # from the warm-up's end to the last step
]
train_cfg = dict(max_epochs=_epochs, val_interval=_epochs)
