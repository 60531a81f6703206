# MaPLe on the tiny base CLIP, base-to-novel on the synthetic world's unseen "warm" domain (a warm light
# that shifts every colour):
# 16 shots of the base classes (first half of the sorted labels), batch 4, the paper's schedule with
# a learning rate tuned for the tiny model (0.01); J=3 of the tiny towers' 4 blocks.
#   python tools/base2novel.py configs/maple/maple_tiny-vit_1xb4_synthetic-warm-b2n.py \
#       --zero-shot configs/zeroshot/zeroshot_tiny-vit_synthetic-warm.py --seeds 1 2 3
_base_ = [
    "../_base_/models/prompt_classifier_tiny-vit.py",
    "../_base_/datasets/synthetic_fewshot_warm.py",
    "../_base_/schedules/sgd_prompt_b2n_5e.py",
    "../_base_/default_runtime.py",
]
model = dict(plugins=[dict(type="MaPLe", n_ctx=2, depth=3, ctx_init="a photo of a")])
train_dataloader = dict(batch_size=4, dataset=dict(subsample="base"))
val_dataloader = dict(dataset=dict(subsample="base"))
test_dataloader = dict(dataset=dict(subsample="base"))
_lr = 0.01  # the best HM of seed 1 among 0.01, 0.02, 0.05 at J=3 and 0.01, 0.02 at J=2
optim_wrapper = dict(optimizer=dict(lr=_lr))
param_scheduler = [
    dict(type="ConstantLR", factor=1e-5 / _lr, by_epoch=True, begin=0, end=1, convert_to_iter_based=True),
    dict(type="CosineAnnealingLR", by_epoch=True, begin=1, end=5, T_max=5, convert_to_iter_based=True),
]
