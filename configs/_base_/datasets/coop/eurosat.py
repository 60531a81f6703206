# eurosat: CoOp's layout (DATASETS.md of KaiyangZhou/CoOp) under data/eurosat/.
_base_ = ["./fewshot_224.py"]
_data = dict(data_root="data/eurosat/2750", split_file="../split_zhou_EuroSAT.json")
train_dataloader = dict(dataset=_data)
val_dataloader = dict(dataset=_data)
test_dataloader = dict(dataset=_data)
