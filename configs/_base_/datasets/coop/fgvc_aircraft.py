# fgvc_aircraft: CoOp's layout (DATASETS.md of KaiyangZhou/CoOp) under data/fgvc_aircraft/.
# CoOp reads this data set from its own folder lists, not a split_zhou JSON: write the split file
# once with tools/make_split.py (docs/datasets.md).
_base_ = ["./fewshot_224.py"]
_data = dict(data_root="data/fgvc_aircraft/images", split_file="../split_fgvc_aircraft.json")
train_dataloader = dict(dataset=_data)
val_dataloader = dict(dataset=_data)
test_dataloader = dict(dataset=_data)
