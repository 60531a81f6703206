# Region-text alignment on the tiny base CLIP pretrained on the synthetic world (built on first use).
# Category prompts use the "synthetic" templates; plugins choose the region pooler.
model = dict(
    type="RegionTextAlignment",
    model_name="tiny-vit",
    pretrained="cache://tiny-vit-synthetic",
    plugins=[],
    templates="synthetic",
    data_preprocessor=dict(type="ClipDataPreprocessor"),
)
