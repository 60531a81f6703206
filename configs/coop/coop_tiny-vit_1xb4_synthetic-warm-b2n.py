# CoOp on the tiny base CLIP, base-to-novel on the synthetic world's unseen "warm" domain (a warm light
# that shifts every colour): 4 context tokens from "a photo of a", class token at the end, the same data
# and schedule as the tiny MaPLe config.
#   python tools/base2novel.py configs/coop/coop_tiny-vit_1xb4_synthetic-warm-b2n.py \
#       --zero-shot configs/zeroshot/zeroshot_tiny-vit_synthetic-warm.py --seeds 1 2 3
_base_ = ["../maple/maple_tiny-vit_1xb4_synthetic-warm-b2n.py"]
model = dict(plugins=[dict(type="CoOp", n_ctx=4, ctx_init="a photo of a", class_token_position="end")])
