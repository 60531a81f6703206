# Long-CLIP's recipe (beichenzbc/Long-CLIP train/train.py, train/scheduler.py and train.md) for OpenAI's
# ViT-B/16 (QuickGELU: the -quickgelu config): positions stretched 77 -> 248 (keep 20, ratio 4), every
# weight trains except positions 0-19, the log logit scale set to 4.6052 and never clamped; primary
# component matching (32 components, label smoothing 0.1) on ShareGPT4V long captions; AdamW lr 1e-6,
# weight decay 1e-2, betas (0.9, 0.999), eps 1e-8; lr = base (step + 1) / 200 for 200 steps, then a cosine
# from step 200 to the last step; global batch 2048 = 16 GPUs x 128; fp16 mixed precision; 6 epochs.
# Preprocessing: OpenAI's (bicubic resize of the short side to 224, centre crop, CLIP mean/std).
#   bash tools/dist_train.sh configs/longclip/longclip_vit-b-16_16xb128_sharegpt4v.py 8  # per node, 2 nodes
# Data (no download here): data/sharegpt4v/train.csv with columns filepath,title,long_title made from
# share-captioner_coco_lcs_sam_1246k_1107.json minus its first 1,000 pairs, which make val.csv
# (ShareGPT4V-1k). The short caption is made by the plugin from the long one as the original does
# (newlines replaced by spaces, then caption.split(". ")[0]): short_caption="first_sentence"; the title
# column serves the short-caption retrieval. With fewer GPUs keep 128 per GPU or more: the contrastive
# batch, unlike the gradient, does not accumulate (accumulative_counts does not give 2048 negatives).
_base_ = ["../_base_/default_runtime.py"]

data_root = "data/sharegpt4v"
_pipeline = [
    dict(type="LoadImage"),
    dict(type="Resize", size=224, interpolation="bicubic"),
    dict(type="CenterCrop", size=224),
]
_captions = dict(type="ImageTextDataset", data_root=data_root, long_caption_key="long_title", sep=",")

model = dict(
    type="ImageTextContrastive",
    model_name="ViT-B-16-quickgelu",
    pretrained="data/weights/ViT-B-16.pt",  # OpenAI's TorchScript archive (QuickGELU)
    contrastive_loss=False,
    max_logit_scale=None,  # the original never clamps the logit scale
    plugins=[
        dict(
            type="LongCLIP",
            keep=20,
            ratio=4,
            trainable="all",
            logit_scale=None,
            log_logit_scale=4.6052,  # train.py --log_scale
            pcm_components=32,
            label_smoothing=0.1,
            short_caption="first_sentence",
        )
    ],
    data_preprocessor=dict(type="ClipDataPreprocessor"),
)

train_dataloader = dict(
    batch_size=128,
    num_workers=8,
    persistent_workers=True,
    sampler=dict(type="DefaultSampler", shuffle=True),
    collate_fn=dict(type="default_collate"),
    dataset=dict(_captions, csv_file="train.csv", pipeline=_pipeline),
)
val_dataloader = dict(
    batch_size=250,
    num_workers=8,
    sampler=dict(type="DefaultSampler", shuffle=False),
    collate_fn=dict(type="default_collate"),
    dataset=dict(_captions, csv_file="val.csv", pipeline=_pipeline),
)
test_dataloader = val_dataloader
# Long-caption (ShareGPT4V-1k) and short-caption retrieval. For zero-shot retention add
# zero_shot=dict(dataset=<an ImageNet FewShotDataset config>, templates="openai_imagenet") and
# custom_hooks = [dict(type="MetricModelHook")].
val_evaluator = dict(type="LongTextRetrieval", ks=(1, 5, 10))
test_evaluator = val_evaluator

_epochs = 6
_warmup = 200
optim_wrapper = dict(
    type="AmpOptimWrapper",
    dtype="float16",
    constructor="TrainableOptimWrapperConstructor",
    optimizer=dict(type="AdamW", lr=1e-6, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2),
)
# cosine_lr of train/scheduler.py: base (step + 1) / 200 for the first 200 steps, then a cosine from step
# 200 to the last step (no `end`: the runner ends it with the run, max_epochs x the epoch's iterations).
param_scheduler = [
    dict(type="LinearLR", start_factor=1 / _warmup, by_epoch=False, begin=0, end=_warmup),
    dict(type="CosineAnnealingLR", by_epoch=False, begin=_warmup),
]
train_cfg = dict(by_epoch=True, max_epochs=_epochs, val_interval=1)
val_cfg = dict()
test_cfg = dict()
default_hooks = dict(checkpoint=dict(interval=1, max_keep_ckpts=2, save_last=True))
