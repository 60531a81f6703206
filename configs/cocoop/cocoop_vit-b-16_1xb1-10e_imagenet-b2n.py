# CoCoOp base-to-novel, the paper's recipe (configs/trainers/CoCoOp/vit_b16_c4_ep10_batch1_ctxv1.yaml of
# KaiyangZhou/CoOp): OpenAI's ViT-B/16 (QuickGELU) at 224, 4 context tokens from "a photo of a", the meta-net
# Linear(512, 32) -> ReLU -> Linear(32, 512), SGD lr 0.002 (momentum 0.9, weight decay 5e-4), batch 1,
# 10 epochs (1 warm-up epoch at a constant 1e-5, then cosine), 16 shots of the base classes, fp16 (PREC fp16).
# Train on base, then test base and novel with tools/base2novel.py, which runs seeds 1 2 3:
#   python tools/base2novel.py configs/cocoop/cocoop_vit-b-16_1xb1-10e_imagenet-b2n.py --seeds 1 2 3
# Another data set: replace the coop/imagenet.py base by coop/<name>.py (configs/_base_/datasets/coop/).
_base_ = [
    "../_base_/models/prompt_classifier_vit-b-16.py",
    "../_base_/datasets/coop/imagenet.py",
    "../_base_/schedules/sgd_prompt_dassl.py",
    "../_base_/default_runtime.py",
]
_lr, _epochs = 0.002, 10
# Every image encodes all class prompts under its own context: text_batch_size bounds one text-tower call
# (ImageNet's 500 base classes take two calls per image).
model = dict(plugins=[dict(type="CoCoOp", n_ctx=4, ctx_init="a photo of a")], text_batch_size=256)
train_dataloader = dict(batch_size=1, dataset=dict(subsample="base"))
val_dataloader = dict(dataset=dict(subsample="base"))
test_dataloader = dict(dataset=dict(subsample="base"))
optim_wrapper = dict(type="AmpOptimWrapper", dtype="float16", optimizer=dict(lr=_lr))
param_scheduler = [
    dict(type="ConstantLR", factor=1e-5 / _lr, by_epoch=True, begin=0, end=1, convert_to_iter_based=True),
    dict(type="CosineAnnealingLR", by_epoch=True, begin=1, end=_epochs, T_max=_epochs, convert_to_iter_based=True),
]
train_cfg = dict(by_epoch=True, max_epochs=_epochs, val_interval=_epochs)
