# PromptSRC on the tiny base CLIP, base-to-novel on the unseen "warm" domain (a warm light that shifts
# every colour): IVLP 4 + 4 tokens at depth 3 with PromptSRC's self-regularisation (L1 to the frozen
# text features over its 60 templates, L1 to the frozen image features, KL to the zero-shot logits,
# weights 25 / 10 / 1) and Gaussian prompt
# aggregation over the epochs (mean and std scaled from 15 and 1 of 20 epochs to this 5-epoch schedule).
#   python tools/base2novel.py configs/promptsrc/promptsrc_tiny-vit_1xb4_synthetic-warm-b2n.py \
#       --zero-shot configs/zeroshot/zeroshot_tiny-vit_synthetic-warm.py --seeds 1 2 3
_base_ = ["../ivlp/ivlp_tiny-vit_1xb4_synthetic-warm-b2n.py"]
model = dict(
    plugins=[
        dict(
            type="IVLP",
            n_ctx_text=4,
            n_ctx_vision=4,
            depth_text=3,
            depth_vision=3,
            ctx_init="a photo of a",
            promptsrc=dict(text_weight=25.0, image_weight=10.0, kl_weight=1.0),
        )
    ]
)
custom_hooks = [dict(type="GaussianPromptAggregationHook", mean=4.0, std=1.0)]
