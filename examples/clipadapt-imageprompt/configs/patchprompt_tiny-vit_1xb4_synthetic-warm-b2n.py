# PatchPrompt (examples/clipadapt-imageprompt) on the tiny base CLIP, base-to-novel on the synthetic world's
# "warm" domain, with the schedule of the tiny MaPLe and CoCoOp configs.
#   pip install examples/clipadapt-imageprompt
#   python tools/train.py examples/clipadapt-imageprompt/configs/patchprompt_tiny-vit_1xb4_synthetic-warm-b2n.py
# The bases are clipadapt's own configs. MMEngine replaces {{$CLIPADAPT_CONFIGS:default}} by the environment
# variable before it reads _base_, so from outside the checkout:
#   CLIPADAPT_CONFIGS=/path/to/clipadapt/configs python tools/train.py this_config.py
# The default (relative to this file) works inside clipadapt's repository.
_base_ = [
    "{{$CLIPADAPT_CONFIGS:../../../configs}}/_base_/models/prompt_classifier_tiny-vit.py",
    "{{$CLIPADAPT_CONFIGS:../../../configs}}/_base_/datasets/synthetic_fewshot_warm.py",
    "{{$CLIPADAPT_CONFIGS:../../../configs}}/_base_/schedules/sgd_prompt_b2n_5e.py",
    "{{$CLIPADAPT_CONFIGS:../../../configs}}/_base_/default_runtime.py",
]
# No custom_imports: the package's entry point registers the task and the plugin before the config is checked.
model = dict(type="PatchConditionedClassifier", plugins=[dict(type="PatchPrompt", n_ctx=4, depth=2)])
train_dataloader = dict(batch_size=4, dataset=dict(subsample="base"))
val_dataloader = dict(dataset=dict(subsample="base"))
test_dataloader = dict(dataset=dict(subsample="base"))
_lr = 0.01
optim_wrapper = dict(optimizer=dict(lr=_lr))
param_scheduler = [
    dict(type="ConstantLR", factor=1e-5 / _lr, by_epoch=True, begin=0, end=1, convert_to_iter_based=True),
    dict(type="CosineAnnealingLR", by_epoch=True, begin=1, end=5, T_max=5, convert_to_iter_based=True),
]
