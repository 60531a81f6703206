# MaPLe on the tiny base CLIP, base-to-novel on the synthetic world's unseen "dark" domain:
# 16 shots of the base classes (first half of the sorted labels), batch 4, the paper's schedule with
# a learning rate scaled for the tiny model; J=3 of the tiny towers' 4 blocks.
#   python tools/base2novel.py configs/maple/maple_tiny-vit_1xb4_synthetic-dark-b2n.py \
#       --zero-shot configs/zeroshot/zeroshot_tiny-vit_synthetic-dark.py --seeds 1 2 3
_base_ = [
    "../_base_/models/prompt_classifier_tiny-vit.py",
    "../_base_/datasets/synthetic_fewshot_dark.py",
    "../_base_/schedules/sgd_prompt_b2n_5e.py",
    "../_base_/default_runtime.py",
]
model = dict(plugins=[dict(type="MaPLe", n_ctx=2, depth=3, ctx_init="a photo of a")])
train_dataloader = dict(batch_size=4, dataset=dict(subsample="base"))
val_dataloader = dict(dataset=dict(subsample="base"))
test_dataloader = dict(dataset=dict(subsample="base"))
optim_wrapper = dict(optimizer=dict(lr=0.05))
param_scheduler = [
    dict(type="ConstantLR", factor=1e-5 / 0.05, by_epoch=True, begin=0, end=1, convert_to_iter_based=True),
    dict(type="CosineAnnealingLR", by_epoch=True, begin=1, end=5, T_max=5, convert_to_iter_based=True),
]
