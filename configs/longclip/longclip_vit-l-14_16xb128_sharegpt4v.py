# Long-CLIP's recipe for OpenAI's ViT-L/14 (QuickGELU): the same as ViT-B/16 (Long-CLIP issue #78), global batch
# 2048 = 16 GPUs x 128 (about 40 GB per GPU under fp16; Long-CLIP issue #78 reports OOM at 128 on 40 GB
# cards: use 80 GB cards or grad_checkpointing=True).
#   bash tools/dist_train.sh configs/longclip/longclip_vit-l-14_16xb128_sharegpt4v.py 8  # per node, 2 nodes
_base_ = ["./longclip_vit-b-16_16xb128_sharegpt4v.py"]

model = dict(model_name="ViT-L-14-quickgelu", pretrained="data/weights/ViT-L-14.pt")
