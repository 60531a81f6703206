"""The benchmark's inputs and reference models: class prompts of realistic length, open_clip with our weights."""

from __future__ import annotations

import warnings
from typing import Any

# 100 class names of realistic, varying length (Caltech-101 / ImageNet style, as CoOp's datasets
# name them), so that the longest prompt sets clipadapt's truncation as in a real few-shot run.
CLASSNAMES = (
    "face", "leopard", "motorbike", "accordion", "airplane", "anchor", "ant", "barrel", "bass", "beaver",
    "binocular", "bonsai", "brain", "brontosaurus", "buddha", "butterfly", "camera", "cannon", "car side",
    "ceiling fan", "cellphone", "chair", "chandelier", "cougar body", "cougar face", "crab", "crayfish",
    "crocodile", "crocodile head", "cup", "dalmatian", "dollar bill", "dolphin", "dragonfly",
    "electric guitar", "elephant", "emu", "euphonium", "ewer", "ferry", "flamingo", "flamingo head",
    "garfield", "gerenuk", "gramophone", "grand piano", "hawksbill", "headphone", "hedgehog", "helicopter",
    "ibis", "inline skate", "joshua tree", "kangaroo", "ketch", "lamp", "laptop", "llama", "lobster",
    "lotus", "mandolin", "mayfly", "menorah", "metronome", "minaret", "nautilus", "octopus", "okapi",
    "pagoda", "panda", "pigeon", "pizza", "platypus", "pyramid", "revolver", "rhino", "rooster",
    "saxophone", "schooner", "scissors", "scorpion", "sea horse", "snoopy", "soccer ball", "stapler",
    "starfish", "stegosaurus", "stop sign", "strawberry", "sunflower", "tick", "trilobite", "umbrella",
    "watch", "water lilly", "wheelchair", "wild cat", "windsor chair", "wrench", "yin yang",
)  # fmt: skip
# A few long ImageNet names replace short ones, so the batch has the spread of a real label set.
LONG_CLASSNAMES = (
    "greater swiss mountain dog", "soft-coated wheaten terrier", "yellow lady's slipper",
    "black-footed ferret", "hen-of-the-woods mushroom", "american staffordshire terrier",
)  # fmt: skip
PROMPT_TEMPLATE = "a photo of a {}."


def class_prompts(count: int = 100) -> list[str]:
    names = list(LONG_CLASSNAMES) + [n for n in CLASSNAMES if n not in LONG_CLASSNAMES]
    names = (names * (count // len(names) + 1))[:count]
    return [PROMPT_TEMPLATE.format(n) for n in names]


def open_clip_reference(name: str) -> Any:
    """open_clip's model for ``name`` (a zoo name, or a clipadapt/JSON config), random weights."""
    import open_clip

    if name in open_clip.list_models():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return open_clip.create_model(name, pretrained=None)
    from clipadapt.models.config import load_model_config

    cfg = {k: v for k, v in load_model_config(name).source.items() if k != "name"}
    cls = open_clip.model.CustomTextCLIP if cfg.pop("custom_text", False) else open_clip.model.CLIP
    return cls(**cfg)


def load_same_weights(clip: Any, reference: Any) -> None:
    """Copy open_clip's weights into clipadapt through the checkpoint converter, strictly."""
    from clipadapt.models.checkpoint import from_open_clip

    result = clip.load_state_dict(from_open_clip(reference.state_dict()), strict=False)
    missing = [k for k in result.missing_keys if not k.startswith("plugins.")]
    if missing or result.unexpected_keys:
        raise RuntimeError(f"weights do not fit: missing {missing}, unexpected {result.unexpected_keys}")


def image_flops(cfg: Any) -> float:
    """FLOPs (2 x MACs) of one image through the vision tower, counted from the config.

    Patch embedding + per block (QKV, out proj, MLP: (4 + 2 mlp_ratio) N D^2; QK^T and AV: 2 N^2 D)
    + the projection of the pooled token. Norms, softmax and activations are not counted.
    ViT-B/16 at 224: 17.56 GMAC = 35.1 GFLOP.
    """
    v = cfg.vision
    patches = v.grid_size**2
    tokens = patches + 1
    d = v.width
    hidden = int(d * v.mlp_ratio)
    stem = patches * 3 * v.patch_size**2 * d
    block = 4 * tokens * d * d + 2 * tokens * d * hidden + 2 * tokens * tokens * d
    head = d * cfg.embed_dim
    return 2.0 * (stem + v.layers * block + head)
