# The tiny CLIP (64 px, 4 + 4 layers), trained from scratch with CLIP's contrastive loss.
model = dict(
    type="ImageTextContrastive",
    model_name="tiny-vit",
    pretrained=None,
    long_caption_weight=0.0,
    data_preprocessor=dict(type="ClipDataPreprocessor"),
)
