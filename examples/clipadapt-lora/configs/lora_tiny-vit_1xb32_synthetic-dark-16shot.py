# LoRA (rank 2 on q, k and v of every block of both towers) on the tiny base CLIP, 16 shots per class of
# the synthetic world's unseen "dark" domain (64 classes); the worked example of the plugin-authoring guide.
#   pip install examples/clipadapt-lora
#   python tools/train.py examples/clipadapt-lora/configs/lora_tiny-vit_1xb32_synthetic-dark-16shot.py
# The bases are clipadapt's own configs, found relative to this file inside the clipadapt checkout.
_base_ = [
    "../../../configs/_base_/models/prompt_classifier_tiny-vit.py",
    "../../../configs/_base_/datasets/synthetic_fewshot_dark.py",
    "../../../configs/_base_/default_runtime.py",
]
_epochs = 5
# The text tower trains too, so the class prompts run through it at every step: one template keeps that cheap.
model = dict(
    templates=["a photo of a {}."],
    plugins=[dict(type="LoRA", rank=2, alpha=1.0, dropout=0.25, targets=("q", "k", "v"), towers=("vision", "text"))],
)
# AdamW over the trainable parameters only (the LoRA factors), warm-up then cosine, as CLIP-LoRA.
optim_wrapper = dict(
    type="OptimWrapper",
    constructor="TrainableOptimWrapperConstructor",
    optimizer=dict(type="AdamW", lr=2e-3, betas=(0.9, 0.999), weight_decay=1e-2),
)
param_scheduler = [
    dict(type="LinearLR", start_factor=0.1, by_epoch=False, begin=0, end=32),
    dict(type="CosineAnnealingLR", by_epoch=True, begin=0, T_max=_epochs, convert_to_iter_based=True),
]
train_cfg = dict(by_epoch=True, max_epochs=_epochs, val_interval=5)
val_cfg = dict()
test_cfg = dict()
default_hooks = dict(checkpoint=dict(save_best="accuracy/top1", rule="greater"))
