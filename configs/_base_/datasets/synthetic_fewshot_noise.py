# The synthetic world's "noise" domain, otherwise as synthetic_fewshot_dark.py (64 classes, 16 shots).
# Also a --target of tools/base2novel.py --protocol transfer (domain generalisation from "dark").
_base_ = ["./synthetic_fewshot_dark.py"]
_data = dict(split_file="split_synthetic_noise.json")
train_dataloader = dict(dataset=_data)
val_dataloader = dict(dataset=_data)
test_dataloader = dict(dataset=_data)
