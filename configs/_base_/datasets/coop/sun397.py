# sun397: CoOp's layout (DATASETS.md of KaiyangZhou/CoOp) under data/sun397/.
_base_ = ["./fewshot_224.py"]
_data = dict(data_root="data/sun397/SUN397", split_file="../split_zhou_SUN397.json")
train_dataloader = dict(dataset=_data)
val_dataloader = dict(dataset=_data)
test_dataloader = dict(dataset=_data)
