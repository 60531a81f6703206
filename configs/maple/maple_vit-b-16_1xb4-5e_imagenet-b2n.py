# MaPLe base-to-novel, the paper's recipe (configs/trainers/MaPLe/vit_b16_c2_ep5_batch4_2ctx.yaml):
# ViT-B/16 at 224, 2 context tokens from "a photo of a", prompt depth J=9, SGD lr 0.0035, batch 4,
# 5 epochs (1 warm-up epoch at 1e-5, then cosine), 16 shots of the base classes, mixed precision.
# Train on base, then test base and novel with tools/base2novel.py, which runs seeds 1 2 3:
#   python tools/base2novel.py configs/maple/maple_vit-b-16_1xb4-5e_imagenet-b2n.py --seeds 1 2 3
# Another data set: replace the coop/imagenet.py base by coop/<name>.py (configs/_base_/datasets/coop/).
_base_ = [
    "../_base_/models/prompt_classifier_vit-b-16.py",
    "../_base_/datasets/coop/imagenet.py",
    "../_base_/schedules/sgd_prompt_dassl.py",
    "../_base_/default_runtime.py",
]
_lr, _epochs = 0.0035, 5
model = dict(plugins=[dict(type="MaPLe", n_ctx=2, depth=9, ctx_init="a photo of a")])
train_dataloader = dict(batch_size=4, dataset=dict(subsample="base"))
val_dataloader = dict(dataset=dict(subsample="base"))
test_dataloader = dict(dataset=dict(subsample="base"))
optim_wrapper = dict(type="AmpOptimWrapper", dtype="float16", optimizer=dict(lr=_lr))
param_scheduler = [
    dict(type="ConstantLR", factor=1e-5 / _lr, by_epoch=True, begin=0, end=1, convert_to_iter_based=True),
    dict(type="CosineAnnealingLR", by_epoch=True, begin=1, end=_epochs, T_max=_epochs, convert_to_iter_based=True),
]
train_cfg = dict(by_epoch=True, max_epochs=_epochs, val_interval=_epochs)
