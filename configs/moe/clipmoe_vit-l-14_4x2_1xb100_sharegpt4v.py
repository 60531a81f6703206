# CLIP-MoE's recipe on OpenAI's ViT-L/14 (QuickGELU), the paper's main model (4 experts, top-2, all 24
# vision and 12 text blocks upcycled; 0.69B parameters activated per token, about 1.2B in all): the
# ViT-B/16 config otherwise.
#   python tools/dmu.py configs/moe/clipmoe_vit-l-14_4x2_1xb100_sharegpt4v.py
_base_ = ["./clipmoe_vit-b-16_4x2_1xb100_sharegpt4v.py"]

model = dict(model_name="ViT-L-14-quickgelu", pretrained="data/weights/ViT-L-14.pt", grad_checkpointing=True)
