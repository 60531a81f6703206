# PromptSRC base-to-novel (configs/trainers/PromptSRC/vit_b16_c2_ep20_batch4_4+4ctx.yaml): IVLP with
# 4 text + 4 vision tokens at depth 9 on both towers, text context from "a photo of a"; losses CE +
# 25 L1(text, frozen text over 60 templates) + 10 L1(image, frozen image) + KL(zero-shot logits);
# SGD lr 0.0025, batch 4, 20 epochs; Gaussian prompt aggregation over epochs (mean 15, std 1).
#   python tools/base2novel.py configs/promptsrc/promptsrc_vit-b-16_1xb4-20e_imagenet-b2n.py --seeds 1 2 3
_base_ = [
    "../_base_/models/prompt_classifier_vit-b-16.py",
    "../_base_/datasets/coop/imagenet.py",
    "../_base_/schedules/sgd_prompt_dassl.py",
    "../_base_/default_runtime.py",
]
_lr, _epochs = 0.0025, 20
model = dict(
    plugins=[
        dict(
            type="IVLP",
            n_ctx_text=4,
            n_ctx_vision=4,
            depth_text=9,
            depth_vision=9,
            ctx_init="a photo of a",
            promptsrc=dict(text_weight=25.0, image_weight=10.0, kl_weight=1.0),
        )
    ]
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
custom_hooks = [dict(type="GaussianPromptAggregationHook", mean=15.0, std=1.0)]
