"""Every registry of clipadapt: children of MMEngine's roots, scope ``clipadapt``.

Classes register where they are defined (``@MODELS.register_module()``). The ``locations`` let a
registry import the modules that fill it the first time something is built from it.
"""

from mmengine.registry import DATA_SAMPLERS as MMENGINE_DATA_SAMPLERS
from mmengine.registry import DATASETS as MMENGINE_DATASETS
from mmengine.registry import EVALUATOR as MMENGINE_EVALUATOR
from mmengine.registry import FUNCTIONS as MMENGINE_FUNCTIONS
from mmengine.registry import HOOKS as MMENGINE_HOOKS
from mmengine.registry import LOG_PROCESSORS as MMENGINE_LOG_PROCESSORS
from mmengine.registry import LOOPS as MMENGINE_LOOPS
from mmengine.registry import METRICS as MMENGINE_METRICS
from mmengine.registry import MODEL_WRAPPERS as MMENGINE_MODEL_WRAPPERS
from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.registry import OPTIM_WRAPPER_CONSTRUCTORS as MMENGINE_OPTIM_WRAPPER_CONSTRUCTORS
from mmengine.registry import OPTIM_WRAPPERS as MMENGINE_OPTIM_WRAPPERS
from mmengine.registry import OPTIMIZERS as MMENGINE_OPTIMIZERS
from mmengine.registry import PARAM_SCHEDULERS as MMENGINE_PARAM_SCHEDULERS
from mmengine.registry import TRANSFORMS as MMENGINE_TRANSFORMS
from mmengine.registry import VISBACKENDS as MMENGINE_VISBACKENDS
from mmengine.registry import VISUALIZERS as MMENGINE_VISUALIZERS
from mmengine.registry import Registry

__all__ = [
    "DATASETS",
    "DATA_SAMPLERS",
    "EVALUATOR",
    "FUNCTIONS",
    "HOOKS",
    "LOG_PROCESSORS",
    "LOOPS",
    "METRICS",
    "MODELS",
    "MODEL_WRAPPERS",
    "OPTIMIZERS",
    "OPTIM_WRAPPERS",
    "OPTIM_WRAPPER_CONSTRUCTORS",
    "PARAM_SCHEDULERS",
    "PLUGINS",
    "TRANSFORMS",
    "VISBACKENDS",
    "VISUALIZERS",
]

MODELS = Registry("model", parent=MMENGINE_MODELS, scope="clipadapt", locations=["clipadapt.models", "clipadapt.tasks"])
# Plugins are modules that attach to a CLIP; they live in their own registry so that an unknown
# plugin type lists only plugins, not every model of the scope.
PLUGINS = Registry("plugin", parent=MODELS, scope="clipadapt", locations=["clipadapt.plugins"])
DATASETS = Registry("dataset", parent=MMENGINE_DATASETS, scope="clipadapt", locations=["clipadapt.datasets"])
DATA_SAMPLERS = Registry(
    "data sampler", parent=MMENGINE_DATA_SAMPLERS, scope="clipadapt", locations=["clipadapt.datasets"]
)
TRANSFORMS = Registry("transform", parent=MMENGINE_TRANSFORMS, scope="clipadapt", locations=["clipadapt.datasets"])
FUNCTIONS = Registry("function", parent=MMENGINE_FUNCTIONS, scope="clipadapt", locations=["clipadapt.datasets"])
METRICS = Registry("metric", parent=MMENGINE_METRICS, scope="clipadapt", locations=["clipadapt.evaluation"])
EVALUATOR = Registry("evaluator", parent=MMENGINE_EVALUATOR, scope="clipadapt", locations=["clipadapt.evaluation"])
HOOKS = Registry("hook", parent=MMENGINE_HOOKS, scope="clipadapt", locations=["clipadapt.engine"])
LOOPS = Registry("loop", parent=MMENGINE_LOOPS, scope="clipadapt", locations=["clipadapt.engine"])
OPTIMIZERS = Registry("optimizer", parent=MMENGINE_OPTIMIZERS, scope="clipadapt", locations=["clipadapt.engine"])
OPTIM_WRAPPERS = Registry(
    "optim wrapper", parent=MMENGINE_OPTIM_WRAPPERS, scope="clipadapt", locations=["clipadapt.engine"]
)
OPTIM_WRAPPER_CONSTRUCTORS = Registry(
    "optimizer wrapper constructor",
    parent=MMENGINE_OPTIM_WRAPPER_CONSTRUCTORS,
    scope="clipadapt",
    locations=["clipadapt.engine"],
)
PARAM_SCHEDULERS = Registry(
    "parameter scheduler", parent=MMENGINE_PARAM_SCHEDULERS, scope="clipadapt", locations=["clipadapt.engine"]
)
VISBACKENDS = Registry("vis_backend", parent=MMENGINE_VISBACKENDS, scope="clipadapt", locations=["clipadapt.engine"])
VISUALIZERS = Registry("visualizer", parent=MMENGINE_VISUALIZERS, scope="clipadapt", locations=["clipadapt.engine"])
MODEL_WRAPPERS = Registry(
    "model_wrapper", parent=MMENGINE_MODEL_WRAPPERS, scope="clipadapt", locations=["clipadapt.engine"]
)
LOG_PROCESSORS = Registry(
    "log_processor", parent=MMENGINE_LOG_PROCESSORS, scope="clipadapt", locations=["clipadapt.engine"]
)
