# Contrastive pretraining of the tiny CLIP (tiny-vit: 64 px, 4 + 4 layers) from scratch on the
# synthetic world; a few minutes on 2 CPU cores. clipadapt.engine.ensure_tiny_clip() runs this config
# and caches the result as an open_clip state dict at ~/.cache/clipadapt/tiny-vit-synthetic.pt.
_base_ = [
    "../_base_/models/contrastive_tiny-vit.py",
    "../_base_/datasets/synthetic_captions.py",
    "../_base_/schedules/adamw_clip_pretrain.py",
    "../_base_/default_runtime.py",
]
default_hooks = dict(checkpoint=dict(interval=-1, save_last=True))
