# The synthetic world's "warm" domain: objects on a light background under a warm orange light that
# shifts every colour (yellow looks orange, blue greys). The tiny CLIP never saw it and misreads colours
# there; the prompt-learning configs adapt to it from 16 shots. Otherwise as synthetic_fewshot_dark.py.
_base_ = ["./synthetic_fewshot_dark.py"]
_data = dict(split_file="split_synthetic_warm.json")
train_dataloader = dict(dataset=_data)
val_dataloader = dict(dataset=_data)
test_dataloader = dict(dataset=_data)
