# Few-shot classification on the synthetic world's "dark" domain, which the tiny CLIP never saw:
# 64 classes ("red circle", ...), 16 shots per class for training, CoOp split file.
data_root = "synthetic://"
_split = "split_synthetic_dark.json"

train_dataloader = dict(
    batch_size=32,
    num_workers=0,
    sampler=dict(type="DefaultSampler", shuffle=True),
    collate_fn=dict(type="default_collate"),
    dataset=dict(
        type="FewShotDataset",
        data_root=data_root,
        split_file=_split,
        split="train",
        num_shots=16,
        seed=1,
        pipeline=[dict(type="LoadImage"), dict(type="RandomHorizontalFlip", prob=0.5)],
    ),
)
val_dataloader = dict(
    batch_size=128,
    num_workers=0,
    sampler=dict(type="DefaultSampler", shuffle=False),
    collate_fn=dict(type="default_collate"),
    dataset=dict(
        type="FewShotDataset", data_root=data_root, split_file=_split, split="val", pipeline=[dict(type="LoadImage")]
    ),
)
test_dataloader = dict(
    batch_size=128,
    num_workers=0,
    sampler=dict(type="DefaultSampler", shuffle=False),
    collate_fn=dict(type="default_collate"),
    dataset=dict(
        type="FewShotDataset", data_root=data_root, split_file=_split, split="test", pipeline=[dict(type="LoadImage")]
    ),
)
val_evaluator = dict(type="Top1Accuracy", topk=(1, 5))
test_evaluator = val_evaluator
