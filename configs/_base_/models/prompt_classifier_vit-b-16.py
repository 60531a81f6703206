# Prompt classification on OpenAI's CLIP ViT-B/16 (QuickGELU), the backbone of the CoOp, MaPLe and
# PromptSRC papers. Weights come from a local file: OpenAI's TorchScript ViT-B-16.pt or an open_clip
# state dict (.pt/.bin/.safetensors). Put it at checkpoints/ViT-B-16.pt or override on the command line:
#   --cfg-options model.pretrained=/path/to/ViT-B-16.pt
model = dict(
    type="PromptClassifier",
    model_name="ViT-B-16-quickgelu",
    pretrained="checkpoints/ViT-B-16.pt",
    plugins=[],
    templates="simple",
    data_preprocessor=dict(type="ClipDataPreprocessor"),
)
