# Image-text pairs of the synthetic world for contrastive pretraining: the multi-object scenes with
# their short captions, plus the single-object images of the scene domains captioned "a red circle".
# The "dark" domain appears in neither: it stays unseen for prompt learning.
synthetic_world = dict()  # WorldConfig parameters; {} = the default world
data_root = "synthetic://"
_train_pipeline = [dict(type="LoadImage"), dict(type="Resize", size=64), dict(type="RandomHorizontalFlip", prob=0.5)]
_test_pipeline = [dict(type="LoadImage"), dict(type="Resize", size=64)]

train_dataloader = dict(
    batch_size=64,
    num_workers=0,
    sampler=dict(type="DefaultSampler", shuffle=True),
    collate_fn=dict(type="default_collate"),
    dataset=dict(
        type="ConcatDataset",
        datasets=[
            dict(type="ImageTextDataset", data_root=data_root, csv_file="captions_train.csv", pipeline=_train_pipeline),
            dict(
                type="ImageTextDataset",
                data_root=data_root,
                csv_file="synthetic://captions_objects_train.csv",
                pipeline=_train_pipeline,
            ),
        ],
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
