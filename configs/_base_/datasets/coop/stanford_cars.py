# stanford_cars: CoOp's layout (DATASETS.md of KaiyangZhou/CoOp) under data/stanford_cars/.
_base_ = ["./fewshot_224.py"]
_data = dict(data_root="data/stanford_cars", split_file="split_zhou_StanfordCars.json")
train_dataloader = dict(dataset=_data)
val_dataloader = dict(dataset=_data)
test_dataloader = dict(dataset=_data)
