# A CoOp-format few-shot data set at 224 px with the augmentation of CoOp, MaPLe and PromptSRC (Dassl):
# training: random resized crop (scale 0.08-1, bicubic) + flip; testing: bicubic resize of the short
# side to 224 + centre crop. 16 shots (val: min(16, 4) = 4, as CoOp); test batch 100.
# The data set configs beside this file set data_root (the image folder) and split_file (CoOp's
# split_zhou_*.json, relative to data_root); see docs/datasets.md for the folder layout.
_train_pipeline = [
    dict(type="LoadImage"),
    dict(type="RandomResizedCrop", size=224, scale=(0.08, 1.0), interpolation="bicubic"),
    dict(type="RandomHorizontalFlip", prob=0.5),
]
_test_pipeline = [
    dict(type="LoadImage"),
    dict(type="Resize", size=224, interpolation="bicubic"),
    dict(type="CenterCrop", size=224),
]
_dataset = dict(type="FewShotDataset", data_root="", split_file="")
train_dataloader = dict(
    batch_size=4,
    num_workers=8,
    persistent_workers=True,
    sampler=dict(type="DefaultSampler", shuffle=True),
    collate_fn=dict(type="default_collate"),
    dataset=dict(_dataset, split="train", num_shots=16, seed=1, pipeline=_train_pipeline),
)
val_dataloader = dict(
    batch_size=100,
    num_workers=8,
    persistent_workers=True,
    sampler=dict(type="DefaultSampler", shuffle=False),
    collate_fn=dict(type="default_collate"),
    dataset=dict(_dataset, split="val", num_shots=4, seed=1, pipeline=_test_pipeline),
)
test_dataloader = dict(val_dataloader, dataset=dict(_dataset, split="test", pipeline=_test_pipeline))
val_evaluator = dict(type="Top1Accuracy", topk=(1, 5))
test_evaluator = val_evaluator
