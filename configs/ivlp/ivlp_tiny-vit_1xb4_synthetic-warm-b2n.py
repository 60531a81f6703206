# IVLP (independent deep text and vision prompts, PromptSRC's backbone without its losses) on the tiny
# base CLIP, base-to-novel on the unseen "warm" domain (a warm light that shifts every colour):
# 4 + 4 tokens at depth 3 of the tiny towers' 4 blocks, the same data and schedule as the tiny MaPLe config.
#   python tools/base2novel.py configs/ivlp/ivlp_tiny-vit_1xb4_synthetic-warm-b2n.py \
#       --zero-shot configs/zeroshot/zeroshot_tiny-vit_synthetic-warm.py --seeds 1 2 3
_base_ = ["../maple/maple_tiny-vit_1xb4_synthetic-warm-b2n.py"]
model = dict(
    plugins=[dict(type="IVLP", n_ctx_text=4, n_ctx_vision=4, depth_text=3, depth_vision=3, ctx_init="a photo of a")]
)
