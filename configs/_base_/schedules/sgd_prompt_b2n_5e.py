# The MaPLe base-to-novel schedule (Dassl defaults): SGD momentum 0.9, weight decay 5e-4, 5 epochs,
# one warm-up epoch at a constant 1e-5, then cosine from the base lr, over the trainable parameters.
_lr = 0.0035
_epochs = 5
optim_wrapper = dict(
    type="OptimWrapper",
    constructor="TrainableOptimWrapperConstructor",
    optimizer=dict(type="SGD", lr=_lr, momentum=0.9, weight_decay=5e-4),
)
param_scheduler = [
    dict(type="ConstantLR", factor=1e-5 / _lr, by_epoch=True, begin=0, end=1, convert_to_iter_based=True),
    dict(type="CosineAnnealingLR", by_epoch=True, begin=1, end=_epochs, T_max=_epochs, convert_to_iter_based=True),
]
train_cfg = dict(by_epoch=True, max_epochs=_epochs, val_interval=_epochs)
val_cfg = dict()
test_cfg = dict()
