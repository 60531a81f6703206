# Image-text pairs drawn as they are read (SyntheticStreamDataset), for pretraining the tiny CLIP: each
# batch is one block of 56 single objects of distinct classes, captioned "a red circle", and 8
# multi-object scenes with short captions, on the world's scene domains only ("dark" and "warm" stay
# unseen). No image repeats. Validation and test use the world's fixed on-disk scenes (short captions).
synthetic_world = dict()  # WorldConfig parameters; {} = the default world
data_root = "synthetic://"
_iters = 1000  # the length of the stream, in batches: one epoch
_block = dict(objects_per_block=56, scenes_per_block=8)
_train_pipeline = [dict(type="Resize", size=64), dict(type="RandomHorizontalFlip", prob=0.5)]
_test_pipeline = [dict(type="LoadImage"), dict(type="Resize", size=64)]

train_dataloader = dict(
    batch_size=64,  # one block
    num_workers=0,
    sampler=dict(type="DefaultSampler", shuffle=False),  # the stream is random already; keep blocks whole
    collate_fn=dict(type="default_collate"),
    dataset=dict(
        type="SyntheticStreamDataset", data_root=data_root, num_samples=_iters * 64, pipeline=_train_pipeline, **_block
    ),
)
val_dataloader = dict(
    batch_size=100,
    num_workers=0,
    sampler=dict(type="DefaultSampler", shuffle=False),
    collate_fn=dict(type="default_collate"),
    dataset=dict(type="ImageTextDataset", data_root=data_root, csv_file="captions_val.csv", pipeline=_test_pipeline),
)
test_dataloader = dict(val_dataloader, dataset=dict(val_dataloader["dataset"], csv_file="captions_test.csv"))
val_evaluator = dict(type="RetrievalRecall", ks=(1, 5, 10))
test_evaluator = val_evaluator
