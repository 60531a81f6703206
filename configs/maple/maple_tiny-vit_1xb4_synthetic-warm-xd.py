# MaPLe transfer on the tiny base CLIP: trained on all 64 classes of the unseen "dark" domain (16 shots,
# J=3 of the tiny towers' 4 blocks, the cross-dataset recipe's depth), then tested without further
# training on the other visual domains of the synthetic world (domain generalisation):
#   python tools/base2novel.py configs/maple/maple_tiny-vit_1xb4_synthetic-dark-xd.py --protocol transfer \
#       --zero-shot configs/zeroshot/zeroshot_tiny-vit_synthetic-dark.py --target \
#       configs/_base_/datasets/synthetic_fewshot_plain.py configs/_base_/datasets/synthetic_fewshot_noise.py \
#       configs/_base_/datasets/synthetic_fewshot_gradient.py
_base_ = ["./maple_tiny-vit_1xb4_synthetic-dark-b2n.py"]
train_dataloader = dict(dataset=dict(subsample="all"))
val_dataloader = dict(dataset=dict(subsample="all"))
test_dataloader = dict(dataset=dict(subsample="all"))
