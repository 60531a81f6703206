# Prompt classification on the tiny base CLIP pretrained on the synthetic world (built on first use).
model = dict(
    type="PromptClassifier",
    model_name="tiny-vit",
    pretrained="cache://tiny-vit-synthetic",
    plugins=[],
    templates="synthetic",
    data_preprocessor=dict(type="ClipDataPreprocessor"),
)
