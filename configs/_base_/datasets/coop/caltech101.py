# caltech101: CoOp's layout (DATASETS.md of KaiyangZhou/CoOp) under data/caltech-101/.
_base_ = ["./fewshot_224.py"]
_data = dict(data_root="data/caltech-101/101_ObjectCategories", split_file="../split_zhou_Caltech101.json")
train_dataloader = dict(dataset=_data)
val_dataloader = dict(dataset=_data)
test_dataloader = dict(dataset=_data)
