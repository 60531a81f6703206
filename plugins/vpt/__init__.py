"""Visual Prompt Tuning (Jia et al., 2022, https://arxiv.org/abs/2203.12119) for CLIP's ViT."""

from .plugin import VPT

__all__ = ["VPT"]
