# Image-text pairs drawn as they are read (SyntheticStreamDataset), for pretraining the tiny CLIP: each
# batch is one block of 56 single objects of distinct classes, captioned "a red circle", and 8
# multi-object scenes with short captions, on the world's scene domains only ("dark" and "warm" stay
# unseen). No image repeats. Validation and test are synthetic_captions.py's: the world's fixed on-disk
# scenes with their short captions.
_base_ = ["./synthetic_captions.py"]
_iters = 1000  # the length of the stream, in batches: one epoch
_block = dict(objects_per_block=56, scenes_per_block=8)
_train_pipeline = [dict(type="Resize", size=64), dict(type="RandomHorizontalFlip", prob=0.5)]

train_dataloader = dict(
    batch_size=64,  # one block
    sampler=dict(shuffle=False),  # the stream is random already; keep blocks whole
    dataset=dict(
        _delete_=True,
        type="SyntheticStreamDataset",
        data_root="synthetic://",
        num_samples=_iters * 64,
        pipeline=_train_pipeline,
        **_block,
    ),
)
