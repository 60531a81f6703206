"""IVLP: independent vision-language prompting, with PromptSRC's self-regulating losses as an option
(Khattak et al., ICCV 2023, https://arxiv.org/abs/2307.06948)."""

from .aggregation import GaussianPromptAggregationHook
from .plugin import IVLP
from .promptsrc import TEMPLATES, PromptSRCConfig, promptsrc_losses

__all__ = ["IVLP", "TEMPLATES", "GaussianPromptAggregationHook", "PromptSRCConfig", "promptsrc_losses"]
