# oxford_flowers: CoOp's layout (DATASETS.md of KaiyangZhou/CoOp) under data/oxford_flowers/.
_base_ = ["./fewshot_224.py"]
_data = dict(data_root="data/oxford_flowers/jpg", split_file="../split_zhou_OxfordFlowers.json")
train_dataloader = dict(dataset=_data)
val_dataloader = dict(dataset=_data)
test_dataloader = dict(dataset=_data)
