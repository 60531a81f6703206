"""Model configs: open_clip's JSON schema, validated for what clipadapt represents exactly.

A model is named by an open_clip config name (``ViT-B-16``), by one of clipadapt's own configs
(``clipadapt/model_configs/*.json``, the tiny models), or by a path to a JSON file in the same schema.
"""

from __future__ import annotations

import copy
import difflib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import open_clip

__all__ = ["CLIPConfig", "TextConfig", "UnsupportedModelError", "VisionConfig", "list_models", "load_model_config"]

_OWN_CONFIG_DIR = Path(__file__).resolve().parent.parent / "model_configs"

SUPPORTED = (
    "ViT image towers with learnable positional embeddings and CLS or average pooling, and causal "
    "(or bidirectional) CLIP text towers with the CLIP BPE tokenizer; e.g. ViT-B-32, ViT-B-16, "
    "ViT-L-14, ViT-H-14, ViT-bigG-14 and their -quickgelu variants"
)


class UnsupportedModelError(ValueError):
    """The config describes a model that clipadapt's base CLIP cannot represent exactly."""


@dataclass
class VisionConfig:
    image_size: int = 224
    patch_size: int = 16
    width: int = 768
    layers: int = 12
    head_width: int = 64
    mlp_ratio: float = 4.0
    ls_init_value: float | None = None
    no_ln_pre: bool = False
    pool_type: str = "tok"  # 'tok' (CLS) or 'avg' (mean of patch tokens)
    final_ln_after_pool: bool = False
    norm_eps: float = 1e-5

    @property
    def heads(self) -> int:
        return self.width // self.head_width

    @property
    def grid_size(self) -> int:
        return self.image_size // self.patch_size


@dataclass
class TextConfig:
    context_length: int = 77
    vocab_size: int = 49408
    width: int = 512
    heads: int = 8
    layers: int = 12
    mlp_ratio: float = 4.0
    ls_init_value: float | None = None
    causal: bool = True
    pool_type: str = "argmax"  # 'argmax' (EOT has the largest id) or 'eos'
    eos_id: int = 49407
    proj_bias: bool = False
    norm_eps: float = 1e-5


@dataclass
class CLIPConfig:
    """What the base CLIP is built from. ``source`` is the JSON dict it was parsed from."""

    name: str
    embed_dim: int
    vision: VisionConfig
    text: TextConfig
    quick_gelu: bool = False
    custom_text: bool = False  # open_clip's CustomTextCLIP layout (text tower nested under ``text.``)
    init_logit_scale: float = 2.659260036932778  # log(1 / 0.07)
    source: dict[str, Any] = field(default_factory=dict, repr=False)


def _own_configs() -> dict[str, Path]:
    return {p.stem: p for p in sorted(_OWN_CONFIG_DIR.glob("*.json"))}


def list_models() -> list[str]:
    """Names of every config clipadapt can build: its own tiny models and open_clip's ViT CLIPs."""
    names = list(_own_configs())
    for name in open_clip.list_models():
        cfg = open_clip.get_model_config(name)
        try:
            parse_model_config(cfg, name)
        except UnsupportedModelError:
            continue
        names.append(name)
    return names


def load_model_config(model: str | os.PathLike[str] | dict[str, Any]) -> CLIPConfig:
    """Resolve a model name, a JSON path or a config dict into a validated :class:`CLIPConfig`.

    Raises:
        FileNotFoundError: ``model`` looks like a path and there is no such file.
        KeyError: ``model`` is no known config name (close names are suggested).
        UnsupportedModelError: the config describes a model clipadapt cannot represent exactly.
    """
    if isinstance(model, dict):
        return parse_model_config(copy.deepcopy(model), model.get("name", "custom"))
    text = str(model)
    own = _own_configs()
    if text in own:
        return parse_model_config(json.loads(own[text].read_text()), text)
    if text.endswith(".json") or "/" in text or Path(text).is_file():
        path = Path(text)
        if not path.is_file():
            raise FileNotFoundError(f"model config file not found: {path}")
        try:
            cfg = json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise ValueError(f"model config {path} is not valid JSON: {err}") from err
        return parse_model_config(cfg, path.stem)
    cfg = open_clip.get_model_config(text)
    if cfg is None:
        known = list(own) + open_clip.list_models()
        close = difflib.get_close_matches(text, known, n=3, cutoff=0.6)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise KeyError(
            f"unknown model {text!r}: not an open_clip config name, a clipadapt config or a JSON path.{hint}"
        )
    return parse_model_config(copy.deepcopy(cfg), text)


def _reject(name: str, what: str) -> UnsupportedModelError:
    return UnsupportedModelError(
        f"model {name!r} uses {what}, which clipadapt cannot represent exactly. Supported: {SUPPORTED}."
    )


def _check_keys(name: str, tower: str, cfg: dict[str, Any], allowed: set[str], defaults: dict[str, Any]) -> None:
    for key, value in cfg.items():
        if key in allowed:
            continue
        if key in defaults and value == defaults[key]:
            continue  # an option at its neutral value changes nothing
        raise _reject(name, f"{tower} option {key}={value!r}")


_VISION_NEUTRAL = {
    "patch_dropout": 0.0,
    "attentional_pool": False,
    "pos_embed_type": "learnable",
    "output_tokens": False,
    "timm_model_name": None,
    "block_type": None,
    "qk_norm": False,
    "scaled_cosine_attn": False,
    "scale_heads": False,
    "scale_attn_inner": False,
    "scale_attn": False,
    "scale_fc": False,
    "act_kwargs": None,
    "attn_pooler_queries": 256,
    "attn_pooler_heads": 8,
}
_TEXT_NEUTRAL = {
    "hf_tokenizer_name": None,
    "hf_model_name": None,
    "tokenizer_mode": None,
    "tokenizer_kwargs": None,
    "embed_cls": False,
    "pad_id": 0,
    "proj_type": "linear",
    "output_tokens": False,
    "final_ln_after_pool": False,
    "block_type": None,
    "qk_norm": False,
    "scaled_cosine_attn": False,
    "scale_heads": False,
    "scale_attn_inner": False,
    "scale_attn": False,
    "scale_fc": False,
    "act_kwargs": None,
}
_TOP_NEUTRAL = {"init_logit_bias": None, "nonscalar_logit_scale": False, "multimodal_cfg": None}


def _norm_eps(name: str, tower: str, cfg: dict[str, Any]) -> float:
    kwargs = cfg.pop("norm_kwargs", None) or {}
    extra = set(kwargs) - {"eps"}
    if extra:
        raise _reject(name, f"{tower} norm_kwargs {sorted(extra)}")
    return float(kwargs.get("eps", 1e-5))


def parse_model_config(cfg: dict[str, Any], name: str) -> CLIPConfig:
    """Validate an open_clip model config dict and turn it into a :class:`CLIPConfig`."""
    source = copy.deepcopy(cfg)
    for key in ("embed_dim", "vision_cfg", "text_cfg"):
        if key not in cfg:
            raise ValueError(f"model config {name!r} lacks the key {key!r}")
    vision = dict(cfg["vision_cfg"])
    text = dict(cfg["text_cfg"])
    if isinstance(vision.get("layers"), (list, tuple)):
        raise _reject(name, "a ResNet image tower")
    if vision.get("timm_model_name"):
        raise _reject(name, f"a timm image tower ({vision['timm_model_name']})")
    if text.get("hf_model_name"):
        raise _reject(name, f"a Hugging Face text tower ({text['hf_model_name']})")
    if cfg.get("init_logit_bias") is not None:
        raise _reject(name, "a SigLIP logit bias")
    if "multimodal_cfg" in cfg:
        raise _reject(name, "a CoCa multimodal decoder")
    top_allowed = {"embed_dim", "vision_cfg", "text_cfg", "quick_gelu", "custom_text", "init_logit_scale", "name"}
    _check_keys(name, "top-level", {k: v for k, v in cfg.items() if k not in top_allowed}, set(), _TOP_NEUTRAL)

    v_eps = _norm_eps(name, "vision", vision)
    v_allowed = {f for f in VisionConfig.__dataclass_fields__ if f != "norm_eps"}
    _check_keys(name, "vision", vision, v_allowed, _VISION_NEUTRAL)
    vcfg = VisionConfig(**{k: v for k, v in vision.items() if k in v_allowed}, norm_eps=v_eps)
    if isinstance(vcfg.image_size, (list, tuple)) or isinstance(vcfg.patch_size, (list, tuple)):
        sizes = {*(vcfg.image_size if isinstance(vcfg.image_size, (list, tuple)) else [vcfg.image_size])}
        patches = {*(vcfg.patch_size if isinstance(vcfg.patch_size, (list, tuple)) else [vcfg.patch_size])}
        if len(sizes) != 1 or len(patches) != 1:
            raise _reject(name, "non-square images or patches")
        vcfg.image_size, vcfg.patch_size = sizes.pop(), patches.pop()
    if vcfg.pool_type not in ("tok", "avg"):
        raise _reject(name, f"vision pool_type={vcfg.pool_type!r}")
    if vcfg.image_size % vcfg.patch_size:
        raise ValueError(
            f"model config {name!r}: image_size {vcfg.image_size} is not a multiple of patch_size {vcfg.patch_size}"
        )

    t_eps = _norm_eps(name, "text", text)
    causal = not text.pop("no_causal_mask", False)
    t_allowed = {f for f in TextConfig.__dataclass_fields__ if f not in ("norm_eps", "causal")}
    _check_keys(name, "text", text, t_allowed, _TEXT_NEUTRAL)
    tcfg = TextConfig(**{k: v for k, v in text.items() if k in t_allowed}, norm_eps=t_eps, causal=causal)
    if "eos_id" not in text:
        tcfg.eos_id = 49407
    if tcfg.pool_type not in ("argmax", "eos"):
        raise _reject(name, f"text pool_type={tcfg.pool_type!r}")
    if tcfg.proj_bias and not cfg.get("custom_text", False):
        raise _reject(name, "a biased text projection outside the CustomTextCLIP layout")
    return CLIPConfig(
        name=name,
        embed_dim=int(cfg["embed_dim"]),
        vision=vcfg,
        text=tcfg,
        quick_gelu=bool(cfg.get("quick_gelu", False)),
        custom_text=bool(cfg.get("custom_text", False)),
        init_logit_scale=float(cfg.get("init_logit_scale", 2.659260036932778)),
        source=source,
    )
