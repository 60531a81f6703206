# CLIP-MoE's recipe (OpenSparseLLMs/CLIP-MoE train/train_mcl.py, train/train_moe.py, clipmoe.py,
# cluster.ipynb) on OpenAI's ViT-B/16 (QuickGELU: the -quickgelu config). 4 experts, top-2, every block of
# both towers upcycled (the original's moe_layers=24 covers all of ViT-L/14), expert dropout 0.1. The text
# is read at 248 tokens through Long-CLIP's stretch, frozen (LongCLIP under MoEUpcycle, no PCM). Loss: the
# InfoNCE on the long captions with label smoothing 0.1, log logit scale 4.6052 (--log_scale) and frozen, plus
# 0.01 * (L_bal(image) + L_bal(text) / 2), each divided by the world size. DMU: stage 0 is the base;
# stages 1-3 each fine-tune only the MLPs of a fresh copy of the base for 1 epoch (AdamW lr 1e-5, weight
# decay 0.2), every global batch drawn from one pseudo-label cluster (3 x 3 MiniBatchKMeans after each
# stage: 9 -> 81 -> 729; batch 1e6, 500 iterations, tol 1e-5, n_init 'auto'; each cluster's remainder and
# every cluster smaller than a global batch dropped, clusters served in turn); expert j = the MLPs of
# stage j; then the routers train for 1 epoch (AdamW lr 1e-6, weight decay 1e-2). AdamW has torch's
# defaults (betas 0.9/0.999, eps 1e-8); 200 linear warm-up steps, then a cosine from step 200 to the end
# of the stage; fp16 autocast with a grad scaler. Preprocessing: OpenAI's (bicubic resize of the short
# side to 224, centre crop, CLIP mean/std).
#   python tools/dmu.py configs/moe/clipmoe_vit-b-16_4x2_1xb100_sharegpt4v.py
# Differences from the paper's run (docs/plugins/moe.md lists them all): one process (tools/dmu.py does not
# launch DDP), so the contrastive batch is 100, not 8 x 100 = 800; padding tokens are not routed.
# Data (no download here): data/sharegpt4v/train.csv with columns filepath,title,long_title (see
# configs/longclip/), the first 10,000 pairs held out for evaluation in val.csv, as CLIP-MoE does.
_base_ = ["../_base_/default_runtime.py"]

data_root = "data/sharegpt4v"
_pipeline = [
    dict(type="LoadImage"),
    dict(type="Resize", size=224, interpolation="bicubic"),
    dict(type="CenterCrop", size=224),
]
# CLIP-MoE trains and clusters on the long (ShareGPT4V) captions: they are the caption here.
_captions = dict(type="ImageTextDataset", data_root=data_root, caption_key="long_title")

model = dict(
    type="ImageTextContrastive",
    model_name="ViT-B-16-quickgelu",
    pretrained="data/weights/ViT-B-16.pt",  # OpenAI's TorchScript archive (QuickGELU)
    long_caption_weight=0.0,
    label_smoothing=0.1,
    max_logit_scale=None,  # the original never clamps (the logit scale does not train here anyway)
    plugins=[
        # Long-CLIP's stretch to 248 positions, frozen, without its PCM objective (clipmoe.load_from_clip).
        dict(
            type="LongCLIP",
            keep=20,
            ratio=4,
            trainable="none",
            train_positions=False,
            pcm=False,
            logit_scale=None,
            log_logit_scale=4.6052,  # train_moe.py / train_mcl.py --log_scale; frozen
        ),
        dict(type="MoEUpcycle", num_experts=4, top_k=2, balance_weight=0.01, expert_dropout=0.1, trainable="router"),
    ],
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
_warmup = 200
optim_wrapper = dict(
    type="AmpOptimWrapper",
    dtype="float16",
    constructor="TrainableOptimWrapperConstructor",
    optimizer=dict(type="AdamW", lr=1e-6, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2),
)
# cosine_lr of train/scheduler.py: lr = base (step + 1) / 200 for the first 200 steps, then a cosine from
# step 200 to the last step of the stage (no `end`: the runner ends it with the run).
param_scheduler = [
    dict(type="LinearLR", start_factor=1 / _warmup, by_epoch=False, begin=0, end=_warmup),
    dict(type="CosineAnnealingLR", by_epoch=False, begin=_warmup),
]
train_cfg = dict(by_epoch=True, max_epochs=1)

# The MLP stages 1..3.
dmu = dict(
    image_clusters=3,
    text_clusters=3,
    seed=0,
    embed_batch_size=500,
    kmeans_batch_size=1_000_000,  # capped at the number of samples
    kmeans_max_iter=500,
    kmeans_tol=1e-5,
    kmeans_n_init="auto",
    cluster_sampler=dict(remainder="drop", order="round_robin"),  # MCL_batch_sampler_DDP's rules
    mlp_stage=dict(
        optim_wrapper=dict(optim_wrapper, optimizer=dict(optim_wrapper["optimizer"], lr=1e-5, weight_decay=0.2)),
        param_scheduler=param_scheduler,
        train_cfg=dict(by_epoch=True, max_epochs=1),
    ),
)

# Under DDP an expert that received no token on one rank has no gradient there; DDP must know to expect
# that, or that rank's last-step gradients of the expert are never averaged (tests/tools/test_fsdp_contrastive.py).
find_unused_parameters = True
