# IVLP base-to-novel, the MaPLe repository's shipped recipe (configs/trainers/IVLP/vit_b16_c2_ep5_batch4_2+2ctx.yaml):
# OpenAI's ViT-B/16 (QuickGELU) at 224, 2 text tokens from "a photo of a" and 2 vision tokens, prompt depth
# 12 on both towers (train.py's default is 9, the plugin's default), SGD lr 0.0035, batch 4, 5 epochs (1
# warm-up epoch at 1e-5, then cosine), 16 shots of the base classes, mixed precision (the original keeps
# the prompts in fp16: docs/plugins/ivlp.md).
#   python tools/base2novel.py configs/ivlp/ivlp_vit-b-16_1xb4-5e_imagenet-b2n.py --seeds 1 2 3
_base_ = [
    "../_base_/models/prompt_classifier_vit-b-16.py",
    "../_base_/datasets/coop/imagenet.py",
    "../_base_/schedules/sgd_prompt_dassl.py",
    "../_base_/default_runtime.py",
]
_lr, _epochs = 0.0035, 5
model = dict(
    plugins=[dict(type="IVLP", n_ctx_text=2, n_ctx_vision=2, depth_text=12, depth_vision=12, ctx_init="a photo of a")]
)
train_dataloader = dict(batch_size=4, dataset=dict(subsample="base"))
val_dataloader = dict(dataset=dict(subsample="base"))
test_dataloader = dict(dataset=dict(subsample="base"))
optim_wrapper = dict(type="AmpOptimWrapper", dtype="float16", optimizer=dict(lr=_lr))
param_scheduler = [
    dict(type="ConstantLR", factor=1e-5 / _lr, by_epoch=True, begin=0, end=1, convert_to_iter_based=True),
    dict(type="CosineAnnealingLR", by_epoch=True, begin=1, end=_epochs, T_max=_epochs, convert_to_iter_based=True),
]
train_cfg = dict(by_epoch=True, max_epochs=_epochs, val_interval=_epochs)
