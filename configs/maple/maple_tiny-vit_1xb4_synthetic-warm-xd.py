# MaPLe transfer on the tiny base CLIP: trained on all 64 classes of the unseen "warm" domain (a warm
# light that shifts every colour; 16 shots, J=3 of the tiny towers' 4 blocks, the cross-dataset recipe's
# depth), then tested without further training on the other visual domains (domain generalisation):
#   python tools/base2novel.py configs/maple/maple_tiny-vit_1xb4_synthetic-warm-xd.py --protocol transfer \
#       --zero-shot configs/zeroshot/zeroshot_tiny-vit_synthetic-warm.py --target \
#       configs/_base_/datasets/synthetic_fewshot_plain.py configs/_base_/datasets/synthetic_fewshot_noise.py \
#       configs/_base_/datasets/synthetic_fewshot_gradient.py configs/_base_/datasets/synthetic_fewshot_dark.py
_base_ = ["./maple_tiny-vit_1xb4_synthetic-warm-b2n.py"]
train_dataloader = dict(dataset=dict(subsample="all"))
val_dataloader = dict(dataset=dict(subsample="all"))
test_dataloader = dict(dataset=dict(subsample="all"))
