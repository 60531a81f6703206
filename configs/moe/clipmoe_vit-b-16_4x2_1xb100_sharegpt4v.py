# CLIP-MoE's recipe (OpenSparseLLMs/CLIP-MoE train/train_mcl.py, train/train_moe.py, clipmoe.py) on OpenAI's
# ViT-B/16: 4 experts, top-2, every block of both towers upcycled (the original's moe_layers=24 covers all
# of ViT-L/14), load balancing 0.01. DMU: stage 0 is the base; stages 1-3 each fine-tune only the MLPs of a
# fresh copy of the base for 1 epoch (AdamW lr 1e-5, weight decay 0.2, 200 warm-up iterations, cosine),
# every batch drawn from one pseudo-label cluster (3 x 3 k-means after each stage: 9 -> 81 -> 729); expert j
# = the MLPs of stage j; then the routers train for 1 epoch (AdamW lr 1e-6, weight decay 1e-2).
#   python tools/dmu.py configs/moe/clipmoe_vit-b-16_4x2_1xb100_sharegpt4v.py
# Differences from the paper's run: one process (tools/dmu.py does not launch DDP), so the contrastive
# batch is 100, not 8 x 100 = 800; the text is the long caption read at 77 tokens (the original stretches
# the text positions to 248 with Long-CLIP's KPS and keeps them frozen).
# Data (no download here): data/sharegpt4v/train.csv with columns filepath,title,long_title (see
# configs/longclip/), the first 10,000 pairs held out for evaluation in val.csv, as CLIP-MoE does.
_base_ = ["../_base_/default_runtime.py"]

data_root = "data/sharegpt4v"
_pipeline = [dict(type="LoadImage"), dict(type="Resize", size=224), dict(type="CenterCrop", size=224)]
# CLIP-MoE trains and clusters on the long (ShareGPT4V) captions: they are the caption here.
_captions = dict(type="ImageTextDataset", data_root=data_root, caption_key="long_title")

model = dict(
    type="ImageTextContrastive",
    model_name="ViT-B-16",
    pretrained="data/weights/ViT-B-16.pt",  # OpenAI's TorchScript archive or an open_clip checkpoint
    long_caption_weight=0.0,
    plugins=[dict(type="MoEUpcycle", num_experts=4, top_k=2, balance_weight=0.01, trainable="router")],
    data_preprocessor=dict(type="ClipDataPreprocessor"),
)

train_dataloader = dict(
    batch_size=100,
    num_workers=8,
    persistent_workers=True,
    sampler=dict(type="DefaultSampler", shuffle=True),
    collate_fn=dict(type="default_collate"),
    dataset=dict(_captions, csv_file="train.csv", pipeline=_pipeline),
)
test_dataloader = dict(
    batch_size=250,
    num_workers=8,
    sampler=dict(type="DefaultSampler", shuffle=False),
    collate_fn=dict(type="default_collate"),
    dataset=dict(_captions, csv_file="val.csv", pipeline=_pipeline),
)
test_evaluator = dict(type="RetrievalRecall", ks=(1, 5, 10))
test_cfg = dict()

# The router stage: the top-level schedule trains the routers of `model`.
optim_wrapper = dict(
    type="AmpOptimWrapper",
    dtype="float16",
    constructor="TrainableOptimWrapperConstructor",
    optimizer=dict(type="AdamW", lr=1e-6, betas=(0.9, 0.98), eps=1e-6, weight_decay=1e-2),
)
param_scheduler = [
    dict(type="LinearLR", start_factor=1 / 200, by_epoch=False, begin=0, end=200),
    dict(type="CosineAnnealingLR", by_epoch=True, begin=0, T_max=1, convert_to_iter_based=True),
]
train_cfg = dict(by_epoch=True, max_epochs=1)

# The MLP stages 1..3.
dmu = dict(
    image_clusters=3,
    text_clusters=3,
    seed=0,
    embed_batch_size=500,
    kmeans_batch_size=4096,
    mlp_stage=dict(
        optim_wrapper=dict(optim_wrapper, optimizer=dict(optim_wrapper["optimizer"], lr=1e-5, weight_decay=0.2)),
        param_scheduler=param_scheduler,
        train_cfg=dict(by_epoch=True, max_epochs=1),
    ),
)
