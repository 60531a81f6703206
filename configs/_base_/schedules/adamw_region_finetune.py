# Fine-tuning schedule of FG-CLIP 2 (scripts/train/stage2_fgclip2.sh, a HuggingFace Trainer run): AdamW
# betas (0.9, 0.98), eps 1e-6, weight decay 1e-3 on everything but norms and biases (the Trainer's rule),
# gradients clipped at norm 1 (the Trainer's max_grad_norm), over the trainable parameters (the region
# plugins unfreeze the CLIP). Schedule: linear warm-up over the first 3% of the steps, then a cosine from
# there to the last step (get_cosine_schedule_with_warmup). The Trainer's warm-up starts at 0 and lasts
# ceil(3% x steps); MMEngine's starts at start_factor x lr and lasts int(3% x steps) (the same when 3% of
# the steps is a whole number). The paper's lr 1e-6 is for batch 4096 on ViT-B/16; configs override lr
# and epochs (and restate param_scheduler, which uses the epochs).
_epochs = 6
_warmup = 0.03 * _epochs  # in epochs; converted to iterations
optim_wrapper = dict(
    type="OptimWrapper",
    constructor="TrainableOptimWrapperConstructor",
    optimizer=dict(type="AdamW", lr=1e-6, betas=(0.9, 0.98), eps=1e-6, weight_decay=1e-3),
    paramwise_cfg=dict(norm_decay_mult=0.0, bias_decay_mult=0.0),
    clip_grad=dict(max_norm=1.0),
)
param_scheduler = [
    dict(type="LinearLR", start_factor=1e-3, by_epoch=True, begin=0, end=_warmup, convert_to_iter_based=True),
    dict(type="CosineAnnealingLR", by_epoch=True, begin=_warmup, end=_epochs, convert_to_iter_based=True),
]
train_cfg = dict(by_epoch=True, max_epochs=_epochs, val_interval=_epochs)
val_cfg = dict()
test_cfg = dict()
