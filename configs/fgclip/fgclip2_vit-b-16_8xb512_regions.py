# FG-CLIP 2's recipe (stage 2, region alignment) for a ViT-B/16 CLIP with real weights and data:
# value-path dense features with a trainable copy of the head (dense_feature_head), RoIAlign 1x1, the
# whole CLIP trains; FG-CLIP 2's loss weights (the task's defaults); AdamW lr 1e-6, wd 1e-3, betas
# (0.9, 0.98), eps 1e-6, 3% warm-up, cosine, 6 epochs, 512 images x 8 GPUs, at most 4 boxes per image,
# bf16. FG-CLIP starts from OpenAI's ViT-B/16 (QuickGELU):
#   bash tools/dist_train.sh configs/fgclip/fgclip2_vit-b-16_8xb512_regions.py 8 \
#       --cfg-options model.pretrained=/path/to/ViT-B-16-openai.pt data_root=/path/to/regions
# The data are region JSON files (clipadapt.datasets.RegionDataset) whose image records carry
# "caption" and "long_caption"; categories come from category_id. FG-CLIP stretches the text
# positions to 248 tokens for long captions: add dict(type="LongCLIP", ...) before RegionAlign.
_base_ = ["../_base_/schedules/adamw_region_finetune.py", "../_base_/default_runtime.py"]
data_root = "data/regions"
model = dict(
    type="RegionTextAlignment",
    model_name="ViT-B-16-quickgelu",
    pretrained="/path/to/ViT-B-16-openai.pt",
    plugins=[dict(type="RegionAlign", value_path=True, dense_head=True, trainable="all")],
    templates="openai_imagenet",
    grad_checkpointing=True,
    data_preprocessor=dict(type="ClipDataPreprocessor"),
)
_pipeline = [dict(type="LoadImage"), dict(type="Resize", size=(224, 224))]
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
        type="RegionDataset", data_root=data_root, ann_file="regions_val.json", test_mode=True, pipeline=_pipeline
    ),
)
test_dataloader = val_dataloader
val_evaluator = [dict(type="RegionMetric", ks=(1, 5)), dict(type="RetrievalRecall", ks=(1, 5))]
test_evaluator = val_evaluator
optim_wrapper = dict(type="AmpOptimWrapper", dtype="bfloat16")
env_cfg = dict(dist_cfg=dict(backend="nccl"))
