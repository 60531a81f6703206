# food101: CoOp's layout (DATASETS.md of KaiyangZhou/CoOp) under data/food-101/.
_base_ = ["./fewshot_224.py"]
_data = dict(data_root="data/food-101/images", split_file="../split_zhou_Food101.json")
train_dataloader = dict(dataset=_data)
val_dataloader = dict(dataset=_data)
test_dataloader = dict(dataset=_data)
