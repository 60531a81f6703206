# ucf101: CoOp's layout (DATASETS.md of KaiyangZhou/CoOp) under data/ucf101/.
_base_ = ["./fewshot_224.py"]
_data = dict(data_root="data/ucf101/UCF-101-midframes", split_file="../split_zhou_UCF101.json")
train_dataloader = dict(dataset=_data)
val_dataloader = dict(dataset=_data)
test_dataloader = dict(dataset=_data)
