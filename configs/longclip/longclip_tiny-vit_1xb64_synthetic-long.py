# Long-CLIP on the tiny base CLIP (context 77, pretrained on the synthetic world's short captions):
# positions stretched 77 -> 248 (keep 20, ratio 4), then primary component matching on the synthetic
# scenes' long captions, a few minutes on 2 CPU cores. Validation and test: long- and short-caption
# retrieval on the scenes, zero-shot classification of the single-object images against the base CLIP.
#   python tools/train.py configs/longclip/longclip_tiny-vit_1xb64_synthetic-long.py
#   python tools/test.py configs/longclip/longclip_tiny-vit_1xb64_synthetic-long.py \
#       work_dirs/longclip_tiny-vit_1xb64_synthetic-long/epoch_3.pth
# The base CLIP on the same evaluation (it reads the first 77 tokens of each long caption):
#   python tools/test.py configs/longclip/longclip_tiny-vit_1xb64_synthetic-long.py \
#       --cfg-options "model.plugins=[]" model.contrastive_loss=True
_base_ = ["../_base_/default_runtime.py"]

data_root = "synthetic://"
_train_pipeline = [dict(type="LoadImage"), dict(type="Resize", size=64), dict(type="RandomHorizontalFlip", prob=0.5)]
_test_pipeline = [dict(type="LoadImage"), dict(type="Resize", size=64)]
_captions = dict(type="ImageTextDataset", data_root=data_root, long_caption_key="long_title")

model = dict(
    type="ImageTextContrastive",
    model_name="tiny-vit",
    pretrained="cache://tiny-vit-synthetic",
    contrastive_loss=False,  # the objective is the plugin's (long + short PCM terms)
    plugins=[
        dict(
            type="LongCLIP",
            keep=20,
            ratio=4,
            trainable="all",
            logit_scale=None,  # keep the tiny CLIP's (the original resets ViT-B/L's to 100)
            pcm_components=16,  # of 128 feature dims (the original: 32 of 512 / 768)
        )
    ],
    data_preprocessor=dict(type="ClipDataPreprocessor"),
)

train_dataloader = dict(
    batch_size=64,
    num_workers=0,
    sampler=dict(type="DefaultSampler", shuffle=True),
    collate_fn=dict(type="default_collate"),
    dataset=dict(_captions, csv_file="captions_train.csv", pipeline=_train_pipeline),
)
val_dataloader = dict(
    batch_size=100,
    num_workers=0,
    sampler=dict(type="DefaultSampler", shuffle=False),
    collate_fn=dict(type="default_collate"),
    dataset=dict(_captions, csv_file="captions_val.csv", pipeline=_test_pipeline),
)
test_dataloader = dict(val_dataloader, dataset=dict(val_dataloader["dataset"], csv_file="captions_test.csv"))
_zero_shot = dict(
    dataset=dict(
        type="FewShotDataset",
        data_root=data_root,
        split_file="split_synthetic_plain.json",
        split="test",
        pipeline=[dict(type="LoadImage")],
    ),
    templates="synthetic",
)
val_evaluator = dict(type="LongTextRetrieval", ks=(1, 5, 10), zero_shot=_zero_shot)
test_evaluator = val_evaluator
custom_hooks = [dict(type="MetricModelHook")]

# Long-CLIP's optimiser (AdamW, weight decay 1e-2 on everything, warm-up then cosine) with a learning
# rate for a tiny model fine-tuned for 75 steps instead of 1e-6 over ~3,600 steps of batch 2048.
_epochs = 3
optim_wrapper = dict(
    type="OptimWrapper",
    constructor="TrainableOptimWrapperConstructor",
    optimizer=dict(type="AdamW", lr=3e-4, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2),
    # The tiny CLIP never read past ~25 tokens: its positions there are still near their N(0, 0.01) init.
    paramwise_cfg=dict(custom_keys={"text.parametrizations.positional_embedding": dict(lr_mult=10.0)}),
)
param_scheduler = [
    dict(type="LinearLR", start_factor=0.01, by_epoch=False, begin=0, end=20),
    dict(type="CosineAnnealingLR", by_epoch=True, begin=0, T_max=_epochs, convert_to_iter_based=True),
]
train_cfg = dict(by_epoch=True, max_epochs=_epochs, val_interval=_epochs)
val_cfg = dict()
test_cfg = dict()
default_hooks = dict(checkpoint=dict(interval=-1, save_last=True))
