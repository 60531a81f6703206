# oxford_pets: CoOp's layout (DATASETS.md of KaiyangZhou/CoOp) under data/oxford_pets/.
_base_ = ["./fewshot_224.py"]
_data = dict(data_root="data/oxford_pets/images", split_file="../split_zhou_OxfordPets.json")
train_dataloader = dict(dataset=_data)
val_dataloader = dict(dataset=_data)
test_dataloader = dict(dataset=_data)
