# VPT (shallow, 8 tokens) on the tiny base CLIP, 16 shots per class of the synthetic world's unseen
# "dark" domain (64 classes); the quickstart's training run. Only the prompts train; checkpoints
# hold the prompts only (a few KB), plus a reference to the base weights.
_base_ = [
    "../_base_/models/prompt_classifier_tiny-vit.py",
    "../_base_/datasets/synthetic_fewshot_dark.py",
    "../_base_/schedules/sgd_prompt_10e.py",
    "../_base_/default_runtime.py",
]
model = dict(plugins=[dict(type="VPT", num_tokens=8, depth=1)])
default_hooks = dict(checkpoint=dict(save_best="accuracy/top1", rule="greater"))
