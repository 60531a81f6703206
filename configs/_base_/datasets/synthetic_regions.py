# Region-text data of the synthetic world: the multi-object scenes (96 px, resized to 64 for the tiny
# CLIP) with a box, a phrase ("small striped red circle") and 3-5 attribute-swapped hard negatives per
# object, short and long captions from captions_<split>.csv. A box's category for region
# classification is "<colour> <shape>" (the world's 64 class names). No flip: long captions say
# "left of". FG-CLIP trains with at most 4 boxes per image.
synthetic_world = dict()
data_root = "synthetic://"
_pipeline = [dict(type="LoadImage"), dict(type="Resize", size=(64, 64))]
_dataset = dict(type="RegionDataset", data_root=data_root, category_template="{colour} {shape}", pipeline=_pipeline)

train_dataloader = dict(
    batch_size=32,
    num_workers=0,
    sampler=dict(type="DefaultSampler", shuffle=True),
    collate_fn=dict(type="clipadapt.region_collate"),
    dataset=dict(_dataset, ann_file="regions_train.json", captions_file="captions_train.csv", max_boxes=4),
)
val_dataloader = dict(
    batch_size=50,
    num_workers=0,
    sampler=dict(type="DefaultSampler", shuffle=False),
    collate_fn=dict(type="clipadapt.region_collate"),
    dataset=dict(_dataset, ann_file="regions_val.json", captions_file="captions_val.csv", test_mode=True),
)
test_dataloader = dict(
    val_dataloader,
    dataset=dict(_dataset, ann_file="regions_test.json", captions_file="captions_test.csv", test_mode=True),
)
# Region classification / hard negatives / region-phrase retrieval / global zero-shot, and caption retrieval.
val_evaluator = [dict(type="RegionMetric", ks=(1, 5)), dict(type="RetrievalRecall", ks=(1, 5))]
test_evaluator = val_evaluator
