# Dassl's prompt-learning schedule (CoOp, MaPLe, PromptSRC): SGD momentum 0.9, weight decay 5e-4, one
# warm-up epoch at a constant 1e-5, then cosine from the base lr over the remaining epochs, on the
# trainable parameters only. Children set the lr and the epochs (and restate param_scheduler and
# train_cfg, which use them): see configs/maple/maple_vit-b-16_*.py.
optim_wrapper = dict(
    type="OptimWrapper",
    constructor="TrainableOptimWrapperConstructor",
    optimizer=dict(type="SGD", lr=0.002, momentum=0.9, weight_decay=5e-4),
)
val_cfg = dict()
test_cfg = dict()
