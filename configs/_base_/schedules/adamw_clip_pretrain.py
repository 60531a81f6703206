# CLIP-style AdamW (betas 0.9/0.98, eps 1e-6), no weight decay on gains, biases, embeddings and the
# logit scale, warmup then cosine. The token embedding (49408 x 128, of which the synthetic world
# uses a few dozen rows) gets a larger learning rate so that the rows in use move fast enough.
_epochs = 4
optim_wrapper = dict(
    type="OptimWrapper",
    constructor="TrainableOptimWrapperConstructor",
    optimizer=dict(type="AdamW", lr=2e-3, betas=(0.9, 0.98), eps=1e-6, weight_decay=0.1),
    paramwise_cfg=dict(
        norm_decay_mult=0.0,
        bias_decay_mult=0.0,
        flat_decay_mult=0.0,
        custom_keys={
            "logit_scale": dict(decay_mult=0.0),
            "positional_embedding": dict(decay_mult=0.0),
            "class_embedding": dict(decay_mult=0.0),
            "token_embedding": dict(lr_mult=5.0, decay_mult=0.0),
        },
    ),
    clip_grad=dict(max_norm=1.0),
)
param_scheduler = [
    dict(type="LinearLR", start_factor=0.01, by_epoch=False, begin=0, end=30),
    dict(
        type="CosineAnnealingLR", by_epoch=True, begin=0, T_max=_epochs, eta_min_ratio=0.01, convert_to_iter_based=True
    ),
]
train_cfg = dict(by_epoch=True, max_epochs=_epochs, val_interval=_epochs)
val_cfg = dict()
test_cfg = dict()
