# dtd: CoOp's layout (DATASETS.md of KaiyangZhou/CoOp) under data/dtd/.
_base_ = ["./fewshot_224.py"]
_data = dict(data_root="data/dtd/images", split_file="../split_zhou_DescribableTextures.json")
train_dataloader = dict(dataset=_data)
val_dataloader = dict(dataset=_data)
test_dataloader = dict(dataset=_data)
