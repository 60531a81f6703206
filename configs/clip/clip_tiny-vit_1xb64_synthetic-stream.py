# The tiny CLIP pretrained on image-caption pairs drawn as they are read (SyntheticStreamDataset), an
# alternative to clip_tiny-vit_1xb64_synthetic.py (the default, 4 epochs over the world's fixed pairs):
#   python tools/train.py configs/clip/clip_tiny-vit_1xb64_synthetic-stream.py --work-dir work_dirs/stream
# 600 steps of 64 (48 objects of distinct classes + 16 scenes per batch): twice the default's 292 steps.
# Measured in docs/synthetic-world.md: it reads colour (100 %) but, like the default, not shape at this budget.
_base_ = [
    "../_base_/models/contrastive_tiny-vit.py",
    "../_base_/datasets/synthetic_stream.py",
    "../_base_/schedules/adamw_clip_pretrain.py",
    "../_base_/default_runtime.py",
]
default_hooks = dict(checkpoint=dict(interval=-1, save_last=True))
# One epoch: the data set is the stream, whose length (synthetic_stream.py's _iters) sets the steps.
param_scheduler = [
    dict(type="LinearLR", start_factor=0.01, by_epoch=False, begin=0, end=50),
    dict(type="CosineAnnealingLR", by_epoch=True, begin=0, T_max=1, eta_min_ratio=0.01, convert_to_iter_based=True),
]
train_cfg = dict(by_epoch=True, max_epochs=1, val_interval=1)
