# Fine-tuning schedule of FG-CLIP 2 (stage 2): AdamW betas (0.9, 0.98), eps 1e-6, weight decay 1e-3,
# 3% linear warm-up then cosine, over the trainable parameters (the region plugins unfreeze the CLIP).
# No decay on norms, biases, embeddings and logit scales. The paper's lr 1e-6 is for batch 4096 on
# ViT-B/16; configs override lr and epochs.
_epochs = 6
optim_wrapper = dict(
    type="OptimWrapper",
    constructor="TrainableOptimWrapperConstructor",
    optimizer=dict(type="AdamW", lr=1e-6, betas=(0.9, 0.98), eps=1e-6, weight_decay=1e-3),
    paramwise_cfg=dict(
        norm_decay_mult=0.0,
        bias_decay_mult=0.0,
        flat_decay_mult=0.0,
        custom_keys={
            "logit_scale": dict(decay_mult=0.0),
            "positional_embedding": dict(decay_mult=0.0),
            "class_embedding": dict(decay_mult=0.0),
            "token_embedding": dict(decay_mult=0.0),
        },
    ),
    clip_grad=dict(max_norm=1.0),
)
param_scheduler = [
    dict(type="LinearLR", start_factor=0.01, by_epoch=True, begin=0, end=0.03 * _epochs, convert_to_iter_based=True),
    dict(
        type="CosineAnnealingLR", by_epoch=True, begin=0, T_max=_epochs, eta_min_ratio=0.0, convert_to_iter_based=True
    ),
]
train_cfg = dict(by_epoch=True, max_epochs=_epochs, val_interval=_epochs)
val_cfg = dict()
test_cfg = dict()
