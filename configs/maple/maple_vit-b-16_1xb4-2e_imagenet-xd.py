# MaPLe cross-dataset transfer and domain generalisation, the paper's recipe
# (configs/trainers/MaPLe/vit_b16_c2_ep5_batch4_2ctx_cross_datasets.yaml): trained on all 1000 ImageNet
# classes, 16 shots, prompt depth J=3, SGD lr 0.0026, batch 4, 2 epochs; then evaluated, without
# further training, on the other data sets (cross-dataset) or on ImageNet-V2/-Sketch/-A/-R (DG):
#   python tools/base2novel.py configs/maple/maple_vit-b-16_1xb4-2e_imagenet-xd.py --protocol transfer \
#       --target configs/_base_/datasets/coop/caltech101.py --target configs/_base_/datasets/coop/dtd.py ...
_base_ = [
    "../_base_/models/prompt_classifier_vit-b-16.py",
    "../_base_/datasets/coop/imagenet.py",
    "../_base_/schedules/sgd_prompt_dassl.py",
    "../_base_/default_runtime.py",
]
_lr, _epochs = 0.0026, 2
model = dict(plugins=[dict(type="MaPLe", n_ctx=2, depth=3, ctx_init="a photo of a")])
optim_wrapper = dict(type="AmpOptimWrapper", dtype="float16", optimizer=dict(lr=_lr))
param_scheduler = [
    dict(type="ConstantLR", factor=1e-5 / _lr, by_epoch=True, begin=0, end=1, convert_to_iter_based=True),
    dict(type="CosineAnnealingLR", by_epoch=True, begin=1, end=_epochs, T_max=_epochs, convert_to_iter_based=True),
]
train_cfg = dict(by_epoch=True, max_epochs=_epochs, val_interval=_epochs)
