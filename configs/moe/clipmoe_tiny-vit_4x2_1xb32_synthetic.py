# CLIP-MoE with Diversified Multiplet Upcycling on the tiny base CLIP and the synthetic captions:
#   python tools/dmu.py configs/moe/clipmoe_tiny-vit_4x2_1xb32_synthetic.py             # DMU
#   python tools/dmu.py configs/moe/clipmoe_tiny-vit_4x2_1xb32_synthetic.py --compare   # + baselines, table
# 4 experts, top-2, in the last block of each tower (the paper upcycles every block; one block keeps the
# three-way comparison within ~10 minutes on two shared CPU cores). The paper's recipe shrunk to this
# machine: 3 MLP stages of _mlp_iters steps with batches from one cluster (3 x 3 k-means per stage:
# 9 -> 81 -> 729 labels), then _router_iters steps of router training. Learning rates are larger than the
# paper's (1e-5 / 1e-6 for ViT-L at batch 800 over an epoch of 1.2M pairs) because each stage here is 25
# steps; weight decay 0.2 on the MLPs as there.
_base_ = [
    "../_base_/models/contrastive_tiny-vit.py",
    "../_base_/datasets/synthetic_captions.py",
    "../_base_/default_runtime.py",
]
_mlp_iters = 25  # half an epoch of the 1,600 training scenes per MLP stage
_router_iters = 25

# The training scenes only: the single-object images of the pretraining data repeat one caption ("a blue
# circle") 48 times, so a batch drawn from one cluster of them would be mostly false negatives.
train_dataloader = dict(
    batch_size=32,
    dataset=dict(
        _delete_=True,
        type="ImageTextDataset",
        data_root="synthetic://",
        csv_file="captions_train.csv",
        pipeline=[dict(type="LoadImage"), dict(type="Resize", size=64), dict(type="RandomHorizontalFlip", prob=0.5)],
    ),
)

model = dict(
    pretrained="cache://tiny-vit-synthetic",
    plugins=[
        dict(
            type="MoEUpcycle",
            num_experts=4,
            top_k=2,
            vision_layers=1,
            text_layers=1,
            balance_weight=0.01,
            trainable="router",
        )
    ],
)

# The router stage (the top-level schedule trains the routers of `model`).
optim_wrapper = dict(
    type="OptimWrapper",
    constructor="TrainableOptimWrapperConstructor",
    optimizer=dict(type="AdamW", lr=3e-3, betas=(0.9, 0.98), eps=1e-6, weight_decay=0.01),
    clip_grad=dict(max_norm=1.0),
)
param_scheduler = [
    dict(type="LinearLR", start_factor=0.1, by_epoch=False, begin=0, end=5),
    dict(type="CosineAnnealingLR", by_epoch=False, begin=0, eta_min_ratio=0.01),
]
train_cfg = dict(by_epoch=False, max_iters=_router_iters)
val_cfg = dict()
test_cfg = dict()

# The MLP stages 1..E-1 (DMU's multistage contrastive learning); also the schedule of the baselines.
dmu = dict(
    image_clusters=3,
    text_clusters=3,
    seed=0,
    embed_batch_size=200,
    mlp_stage=dict(
        optim_wrapper=dict(optim_wrapper, optimizer=dict(optim_wrapper["optimizer"], lr=5e-4, weight_decay=0.2)),
        param_scheduler=param_scheduler,
        train_cfg=dict(by_epoch=False, max_iters=_mlp_iters),
    ),
)
