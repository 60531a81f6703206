# FG-CLIP 2-style region-text alignment of the tiny base CLIP on the synthetic world's scenes:
# value-path dense features + RoIAlign (RegionAlign with FG-CLIP 2's dense head), FG-CLIP 2's loss
# terms and weights (global + long ITC, 0.2 region ITC, hard negatives 0.5 x (3 k-way CE + 0.6
# batch CE + 0.4 CMR), 0.1 TIC), the whole CLIP trains. A few minutes on 2 CPU cores:
#   python tools/test.py  configs/fgclip/fgclip2_tiny-vit_1xb32_synthetic-regions.py            # before
#   python tools/train.py configs/fgclip/fgclip2_tiny-vit_1xb32_synthetic-regions.py
#   python tools/test.py  configs/fgclip/fgclip2_tiny-vit_1xb32_synthetic-regions.py \
#       work_dirs/fgclip2_tiny-vit_1xb32_synthetic-regions/epoch_1.pth                          # after
_base_ = [
    "../_base_/models/region_tiny-vit.py",
    "../_base_/datasets/synthetic_regions.py",
    "../_base_/schedules/adamw_region_finetune.py",
    "../_base_/default_runtime.py",
]
_epochs = 1  # 50 iterations: about 3 minutes on 2 busy CPU cores
model = dict(plugins=[dict(type="RegionAlign", value_path=True, dense_head=True, trainable="all")])
# The tiny CLIP was pretrained at lr 2e-3 with batch 64; fine-tune at a tenth of it with batch 32.
optim_wrapper = dict(optimizer=dict(lr=2e-4))
param_scheduler = [
    dict(type="LinearLR", start_factor=0.01, by_epoch=False, begin=0, end=5),  # 3% of 50 is under 2 iterations
    dict(type="CosineAnnealingLR", by_epoch=True, begin=0, T_max=_epochs, convert_to_iter_based=True),
]
train_cfg = dict(max_epochs=_epochs, val_interval=_epochs)
default_hooks = dict(checkpoint=dict(interval=_epochs, max_keep_ckpts=1, save_last=True))
