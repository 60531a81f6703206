# CoOp in CoCoOp's base-to-novel protocol (configs/trainers/CoOp/vit_b16_ep50_ctxv1.yaml for ImageNet;
# the other data sets use vit_b16_ctxv1.yaml, 200 epochs): 4 context tokens from "a photo of a",
# class token at the end, unified context, SGD lr 0.002, batch 32, 1 warm-up epoch at 1e-5, cosine.
#   python tools/base2novel.py configs/coop/coop_vit-b-16_1xb32-50e_imagenet-b2n.py --seeds 1 2 3
_base_ = [
    "../_base_/models/prompt_classifier_vit-b-16.py",
    "../_base_/datasets/coop/imagenet.py",
    "../_base_/schedules/sgd_prompt_dassl.py",
    "../_base_/default_runtime.py",
]
_lr, _epochs = 0.002, 50
model = dict(plugins=[dict(type="CoOp", n_ctx=4, ctx_init="a photo of a", class_token_position="end")])
train_dataloader = dict(batch_size=32, dataset=dict(subsample="base"))
val_dataloader = dict(dataset=dict(subsample="base"))
test_dataloader = dict(dataset=dict(subsample="base"))
optim_wrapper = dict(type="AmpOptimWrapper", dtype="float16", optimizer=dict(lr=_lr))
param_scheduler = [
    dict(type="ConstantLR", factor=1e-5 / _lr, by_epoch=True, begin=0, end=1, convert_to_iter_based=True),
    dict(type="CosineAnnealingLR", by_epoch=True, begin=1, end=_epochs, T_max=_epochs, convert_to_iter_based=True),
]
train_cfg = dict(by_epoch=True, max_epochs=_epochs, val_interval=_epochs)
