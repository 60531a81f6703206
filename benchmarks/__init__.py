"""clipadapt against open_clip and the original methods: the machinery of ``tools/benchmark.py``.

- :mod:`.timing`: interleaved timing (A B, B A, ...), paired ratios, activation memory saved for
  backward, the host-load probe;
- :mod:`.inputs`: class prompts of realistic length, open_clip reference models with our weights,
  analytic FLOPs;
- :mod:`.rows`: :class:`Bench`, one method per row.

The benchmark asserts nothing about speed; tests check that each row measures what it says.
"""

from .baselines import OriginalMaPLe
from .inputs import CLASSNAMES, PROMPT_TEMPLATE, class_prompts, image_flops, load_same_weights, open_clip_reference
from .rows import DTYPES, GOALS, Bench
from .timing import Samples, interleaved, saved_for_backward_mib, small_op_ms, throughput_fields, usable_cores

__all__ = [
    "CLASSNAMES",
    "DTYPES",
    "GOALS",
    "PROMPT_TEMPLATE",
    "Bench",
    "OriginalMaPLe",
    "Samples",
    "class_prompts",
    "image_flops",
    "interleaved",
    "load_same_weights",
    "open_clip_reference",
    "saved_for_backward_mib",
    "small_op_ms",
    "throughput_fields",
    "usable_cores",
]
