# FG-CLIP 2's recipe (stage 2, region alignment; 360CVGroup/FG-CLIP fgclip2/, scripts/train/stage2_fgclip2.sh)
# for a ViT-B/16 CLIP with real weights and data: dense features from the last block with full attention
# through a trainable copy of the head (dense_feature_head), RoIAlign 1x1, the whole CLIP trains; FG-CLIP
# 2's loss weights and rules (the task's defaults: batch CE in both directions over the hard boxes, CMR
# margin of the previous step), logit scales never clamped; AdamW lr 1e-6, wd 1e-3 (not on norms and
# biases), betas (0.9, 0.98), eps 1e-6, gradients clipped at 1, 3% linear warm-up then a cosine from there;
# 6 epochs, 512 images x 8 GPUs, the first 4 boxes of each image, "a photo of " before each short
# caption, bf16. FG-CLIP 2 starts from SigLIP 2, which clipadapt cannot represent; this recipe applies its
# region stage to OpenAI's ViT-B/16 (QuickGELU; FG-CLIP v1's base). docs/plugins/fgclip.md lists the
# differences (InfoNCE global loss, no separate long-text and box-text heads).
#   bash tools/dist_train.sh configs/fgclip/fgclip2_vit-b-16_8xb512_regions.py 8 \
#       --cfg-options model.pretrained=/path/to/ViT-B-16-openai.pt data_root=/path/to/regions
# The data are region JSON files (clipadapt.datasets.RegionDataset) whose image records carry
# "caption" and "long_caption"; categories come from category_id. Long captions are cut at 77 tokens here
# (FG-CLIP 2 reads them at 196 through its own head); to read them at 248 add dict(type="LongCLIP",
# pcm=False, logit_scale=None) before RegionAlign, as the v1 recipe does.
_base_ = ["../_base_/schedules/adamw_region_finetune.py", "../_base_/default_runtime.py"]
data_root = "data/regions"
model = dict(
    type="RegionTextAlignment",
    model_name="ViT-B-16-quickgelu",
    pretrained="/path/to/ViT-B-16-openai.pt",
    plugins=[dict(type="RegionAlign", value_path=False, dense_head=True, trainable="all")],
    max_logit_scale=None,
    templates="openai_imagenet",
    grad_checkpointing=True,
    data_preprocessor=dict(type="ClipDataPreprocessor"),
)
# PIL's resize to 224 x 224 (bicubic) then the image processor's normalisation (CLIP mean/std).
_pipeline = [dict(type="LoadImage"), dict(type="Resize", size=(224, 224), interpolation="bicubic")]
train_dataloader = dict(
    batch_size=512,
    num_workers=8,
    persistent_workers=True,
    sampler=dict(type="DefaultSampler", shuffle=True),
    collate_fn=dict(type="clipadapt.region_collate"),
    dataset=dict(
        type="RegionDataset",
        data_root=data_root,
        ann_file="regions_train.json",
        max_boxes=4,
        box_selection="first",  # bbox_info[:4]
        caption_prefix="a photo of ",
        pipeline=_pipeline,
    ),
)
val_dataloader = dict(
    batch_size=128,
    num_workers=8,
    sampler=dict(type="DefaultSampler", shuffle=False),
    collate_fn=dict(type="clipadapt.region_collate"),
    dataset=dict(
        type="RegionDataset",
        data_root=data_root,
        ann_file="regions_val.json",
        test_mode=True,
        caption_prefix="a photo of ",
        pipeline=_pipeline,
    ),
)
test_dataloader = val_dataloader
val_evaluator = [dict(type="RegionMetric", ks=(1, 5)), dict(type="RetrievalRecall", ks=(1, 5))]
test_evaluator = val_evaluator
optim_wrapper = dict(type="AmpOptimWrapper", dtype="bfloat16")
env_cfg = dict(dist_cfg=dict(backend="nccl"))
