# FG-CLIP v1's recipe (360CVGroup/FG-CLIP at b7b3342: fgclip/model/clip_strc/fgclip.py, fgclip/train/
# train_fgclip.py, scripts/train.sh) on OpenAI's ViT-B/16 (QuickGELU): value-path dense features
# (the last block without query-key attention, as forward_without_attn), the tower's own norm and
# projection, RoIAlign 1x1; the whole CLIP trains. Loss (FGCLIP_V1_LOSS_WEIGHTS): global ITC on short and
# long captions + 0.1 x the region ITC over the batch's boxes + 0.5 x the 11-way hard-negative CE; no
# batch-wide CE, CMR or TIC; logit scales start at OpenAI's (ln 100) and are never clamped. Long captions
# at 248 tokens through Long-CLIP's stretch (the same KPS: keep 20, ratio 4; no PCM). AdamW (the HF
# Trainer's defaults: betas 0.9/0.999, eps 1e-8) lr 1e-6, wd 1e-3 (not on norms and biases), gradients
# clipped at 1; 200 warm-up steps then a cosine from there; 1 epoch, 512 images x 8 GPUs, bf16; the first 4
# boxes of each image; "a photo of " before each short caption.
#   bash tools/dist_train.sh configs/fgclip/fgclip_vit-b-16_8xb512_regions.py 8 \
#       --cfg-options model.pretrained=/path/to/ViT-B-16-openai.pt data_root=/path/to/regions
# docs/plugins/fgclip.md lists the differences (one shared text projection and position table for short
# and long texts, one phrase per box instead of a random short or long expression).
_base_ = ["./fgclip2_vit-b-16_8xb512_regions.py"]
_epochs = 1
_warmup = 200
model = dict(
    plugins=[
        dict(type="LongCLIP", keep=20, ratio=4, trainable="all", pcm=False, logit_scale=None),
        dict(type="RegionAlign", value_path=True, dense_head=False, trainable="all"),
    ],
    loss_weights=dict(region=0.1, hard_negative=0.5, hard_batch=0.0, cmr=0.0, tic=0.0),
)
optim_wrapper = dict(optimizer=dict(betas=(0.9, 0.999), eps=1e-8))
param_scheduler = [
    dict(type="LinearLR", start_factor=1 / _warmup, by_epoch=False, begin=0, end=_warmup),
    dict(type="CosineAnnealingLR", by_epoch=False, begin=_warmup),  # to the run's last step
]
train_cfg = dict(max_epochs=_epochs, val_interval=_epochs)
