# CoCoOp on the tiny base CLIP, base-to-novel on the synthetic world's unseen "warm" domain: 4 context tokens
# from "a photo of a" shifted per image by the meta-net (embed_dim 128 -> 8 -> text width 128), the same data
# and schedule as the tiny CoOp and MaPLe configs (batch 4, 5 epochs, lr 0.01), so the rows compare.
#   python tools/base2novel.py configs/cocoop/cocoop_tiny-vit_1xb4_synthetic-warm-b2n.py \
#       --zero-shot configs/zeroshot/zeroshot_tiny-vit_synthetic-warm.py --seeds 1 2 3
_base_ = ["../maple/maple_tiny-vit_1xb4_synthetic-warm-b2n.py"]
model = dict(plugins=[dict(type="CoCoOp", n_ctx=4, ctx_init="a photo of a")])
