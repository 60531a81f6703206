# CLOC-style promptable region embeddings on the tiny base CLIP, synthetic world's scenes: the
# Prompter (box corners as sinusoidal prompt tokens, one single-head layer, pool, projection) pools
# regions; L = L_CLIP + lambda (L_CLOC + L_grounding) with lambda = 1: CLIP's loss on the short
# captions, CLOC's region InfoNCE ignoring near-duplicate captions (> 0.9), box grounding from the
# caption. The whole CLIP trains, as in CLOC. A few minutes on 2 CPU cores:
#   python tools/train.py configs/cloc/cloc_tiny-vit_1xb32_synthetic-regions.py
#   python tools/test.py  configs/cloc/cloc_tiny-vit_1xb32_synthetic-regions.py \
#       work_dirs/cloc_tiny-vit_1xb32_synthetic-regions/epoch_1.pth
_base_ = [
    "../_base_/models/region_tiny-vit.py",
    "../_base_/datasets/synthetic_regions.py",
    "../_base_/schedules/adamw_region_finetune.py",
    "../_base_/default_runtime.py",
]
_epochs = 1
model = dict(
    plugins=[dict(type="CLOCPrompter", loss_weight=1.0, grounding=True, duplicate_threshold=0.9, trainable="all")],
    # Only CLIP's loss from the task; the plugin adds loss_cloc and loss_grounding.
    loss_weights=dict(long=0.0, region=0.0, hard_negative=0.0, hard_batch=0.0, cmr=0.0, tic=0.0),
)
# CLOC: AdamW betas (0.9, 0.98), wd 0.2 (from scratch at lr 5e-4); here a fine-tune of the tiny CLIP.
optim_wrapper = dict(optimizer=dict(lr=2e-4, weight_decay=0.2))
param_scheduler = [
    dict(type="LinearLR", start_factor=0.01, by_epoch=False, begin=0, end=5),  # 3% of 50 is under 2 iterations
    dict(type="CosineAnnealingLR", by_epoch=True, begin=0, T_max=_epochs, convert_to_iter_based=True),
]
train_cfg = dict(max_epochs=_epochs, val_interval=_epochs)
default_hooks = dict(checkpoint=dict(interval=_epochs, max_keep_ckpts=1, save_last=True))
