# Prompt learning: SGD with momentum, warmup then cosine (CoOp/VPT style), over the trainable
# parameters only (TrainableOptimWrapperConstructor).
_epochs = 10
optim_wrapper = dict(
    type="OptimWrapper",
    constructor="TrainableOptimWrapperConstructor",
    optimizer=dict(type="SGD", lr=0.5, momentum=0.9, weight_decay=0.0),
)
param_scheduler = [
    dict(type="LinearLR", start_factor=0.1, by_epoch=False, begin=0, end=32),
    dict(type="CosineAnnealingLR", by_epoch=True, begin=0, T_max=_epochs, convert_to_iter_based=True),
]
train_cfg = dict(by_epoch=True, max_epochs=_epochs, val_interval=5)
val_cfg = dict()
test_cfg = dict()
