"""Readable errors for config keys that do not exist, before the runner builds anything.

MMEngine reads the top-level keys it knows and silently ignores the others (``max_epoch=5`` does
nothing), and builds objects with ``cls(**kwargs)``, so a misspelt argument is a ``TypeError`` deep in
a traceback. :func:`check_config` walks the config first and raises :class:`ConfigKeyError` naming
the key, where it is, and the closest known key.
"""

from __future__ import annotations

import difflib
import inspect
import math
import types
import typing
from collections.abc import Callable, Iterable
from typing import Any

from mmengine.runner import Runner

from clipadapt import registry as R
from clipadapt.plugins import load_plugin_modules

__all__ = [
    "ConfigKeyError",
    "ConfigValueError",
    "check_cfg_options",
    "check_config",
    "check_values",
    "known_arguments",
    "parse_args_checked",
]

# Read by Runner.from_cfg / Runner itself, or by MMEngine's config machinery.
_RUNNER_KEYS = set(inspect.signature(Runner.__init__).parameters) - {"self", "cfg"}
_MMENGINE_KEYS = {
    "_base_",
    "custom_imports",
    "model_wrapper_cfg",
    "compile",
    "sync_bn",
    "find_unused_parameters",
    "activation_checkpointing",
    "efficient_conv_bn_eval",
    "strategy",
    "gpu_ids",
    "runner_type",
}
# clipadapt's own top-level keys (read by tools/train.py's config preparation).
# synthetic_world: the world a config's synthetic:// paths name; dmu: the stages of tools/dmu.py (CLIP-MoE).
_CLIPADAPT_KEYS = {"synthetic_world", "dmu"}
# Helper variables that MMEngine-style configs conventionally define at top level.
_CONVENTIONAL_HELPERS = {"data_root", "dataset_type", "train_pipeline", "val_pipeline", "test_pipeline"}
TOP_LEVEL_KEYS = _RUNNER_KEYS | _MMENGINE_KEYS | _CLIPADAPT_KEYS | _CONVENTIONAL_HELPERS

# Keys that MMEngine's builders pop before calling the class.
_DATALOADER_EXTRA = {"dataset", "sampler", "batch_sampler", "collate_fn", "worker_init_fn", "num_batch_per_epoch"}
_OPTIM_WRAPPER_EXTRA = {"optimizer", "paramwise_cfg", "constructor"}
_LOOP_EXTRA = {"by_epoch"}


class ConfigKeyError(ValueError):
    """A config key that nothing reads, or an argument that the configured class does not take."""


def _suggest(key: str, known: Iterable[str]) -> str:
    close = difflib.get_close_matches(key, sorted(known), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def known_arguments(obj: Callable[..., Any]) -> set[str] | None:
    """Keyword arguments that ``obj(**kwargs)`` accepts; ``None`` when it takes any (``**kwargs`` all the way down).

    A class whose ``__init__`` forwards ``**kwargs`` to its base gets the union along the MRO, down to
    the first ``__init__`` without ``**kwargs``.
    """
    if inspect.isclass(obj):
        targets = [vars(c)["__init__"] for c in inspect.getmro(obj) if "__init__" in vars(c) and c is not object]
    else:
        targets = [obj]
    names: set[str] = set()
    for target in targets:
        try:
            params = inspect.signature(target).parameters.values()
        except (TypeError, ValueError):  # builtins without a signature
            return None
        names |= {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)} - {"self"}
        if not any(p.kind is p.VAR_KEYWORD for p in params):
            return names
    return names if inspect.isclass(obj) and not targets else None


def _check(
    cfg: Any, registry: Any, where: str, default_type: str | None = None, extra: frozenset[str] | set[str] = frozenset()
) -> Any:
    """Check the keys of one ``dict(type=...)`` config against its class; returns the class (or None)."""
    if not isinstance(cfg, dict):
        return None
    kind = cfg.get("type", default_type)
    if kind is None:
        return None
    cls = registry.get(kind) if isinstance(kind, str) else kind
    if cls is None:
        known = list(registry.module_dict) + (list(registry.parent.module_dict) if registry.parent else [])
        raise ConfigKeyError(f"{where}.type: unknown {registry.name} type {kind!r}{_suggest(str(kind), known)}")
    allowed = known_arguments(cls)
    if allowed is None:
        return cls
    allowed |= extra
    for key in cfg:
        if key != "type" and key not in allowed:
            raise ConfigKeyError(
                f"{where}.{key}: {getattr(cls, '__name__', cls)} has no argument {key!r}{_suggest(key, allowed)} "
                f"(it takes: {', '.join(sorted(allowed))})"
            )
    return cls


def _items(value: Any) -> list[tuple[str, Any]]:
    if isinstance(value, (list, tuple)):
        return [(f"[{i}]", v) for i, v in enumerate(value)]
    return [("", value)] if value is not None else []


def _scoped(registry: Any, scope: str) -> Any:
    """The registry of ``scope`` among ``registry``'s siblings (``mmdet``'s MODELS for ``R.MODELS``)."""
    if scope == registry.scope:
        return registry
    with registry.switch_scope_and_registry(scope) as scoped:
        return scoped


def _check_dataset(dataset: Any, where: str, scope: str = R.DATASETS.scope) -> None:
    if not isinstance(dataset, dict):
        return
    if "datasets" in dataset:  # ConcatDataset and friends
        for suffix, child in _items(dataset["datasets"]):
            _check_dataset(child, f"{where}.datasets{suffix}", scope)
    if "dataset" in dataset:  # RepeatDataset, ClassBalancedDataset
        _check_dataset(dataset["dataset"], f"{where}.dataset", scope)
    _check(dataset, _scoped(R.DATASETS, scope), where)
    for suffix, step in _items(dataset.get("pipeline")):
        _check(step, _scoped(R.TRANSFORMS, scope), f"{where}.pipeline{suffix}")


def check_config(cfg: Any) -> None:
    """Raise :class:`ConfigKeyError` for the first key of ``cfg`` that nothing would read.

    Top level: the runner's keys, MMEngine's, ``synthetic_world``, the conventional helpers
    (``data_root``, ``train_pipeline``, ...) and any name starting with ``_`` (a private helper
    variable of the config file). Below: every ``dict(type=...)`` of the model, its plugins and data
    preprocessor, the data loaders, data sets and transforms, evaluators, hooks, optimizer wrapper,
    optimizer, schedulers and loops is checked against its class's arguments, looked up in the
    registries of the config's ``default_scope`` (``mmdet`` for the detection configs).
    """
    scope = cfg.get("default_scope") or R.MODELS.scope
    for key in cfg:
        if key.startswith("_") or key in TOP_LEVEL_KEYS:
            continue
        raise ConfigKeyError(
            f"unknown top-level config key {key!r}{_suggest(key, TOP_LEVEL_KEYS)} "
            "(helper variables of a config file must start with '_')"
        )
    # Before any type check: an installed package may register tasks, datasets or hooks (not only plugins)
    # in the module its clipadapt.plugins entry point names.
    load_plugin_modules()  # built-in plugins and the clipadapt.plugins entry points
    model = cfg.get("model")
    _check(model, _scoped(R.MODELS, scope), "model")
    if isinstance(model, dict):
        for suffix, plugin in _items(model.get("plugins")):
            _check(plugin, R.PLUGINS, f"model.plugins{suffix}")
        _check(model.get("data_preprocessor"), _scoped(R.MODELS, scope), "model.data_preprocessor")
    loops = {"train_cfg": None, "val_cfg": "ValLoop", "test_cfg": "TestLoop"}
    for phase in ("train", "val", "test"):
        loader = cfg.get(f"{phase}_dataloader")
        if isinstance(loader, dict):
            from torch.utils.data import DataLoader

            allowed = (known_arguments(DataLoader) or set()) | _DATALOADER_EXTRA
            for key in loader:
                if key not in allowed:
                    raise ConfigKeyError(
                        f"{phase}_dataloader.{key}: not a data loader argument{_suggest(key, allowed)}"
                    )
            _check_dataset(loader.get("dataset"), f"{phase}_dataloader.dataset", scope)
            _check(loader.get("sampler"), _scoped(R.DATA_SAMPLERS, scope), f"{phase}_dataloader.sampler")
        for suffix, metric in _items(cfg.get(f"{phase}_evaluator") if phase != "train" else None):
            registry = (
                _scoped(R.EVALUATOR, scope)
                if isinstance(metric, dict) and "metrics" in metric
                else _scoped(R.METRICS, scope)
            )
            _check(metric, registry, f"{phase}_evaluator{suffix}")
        loop = cfg.get(f"{phase}_cfg")
        if isinstance(loop, dict):
            default = loops[f"{phase}_cfg"]
            if phase == "train" and "type" not in loop:
                default = "EpochBasedTrainLoop" if loop.get("by_epoch", True) else "IterBasedTrainLoop"
            _check(
                loop,
                _scoped(R.LOOPS, scope),
                f"{phase}_cfg",
                default,
                _LOOP_EXTRA | {"runner", "dataloader", "evaluator"},
            )
    for name, hook in (cfg.get("default_hooks") or {}).items():
        _check(hook, _scoped(R.HOOKS, scope), f"default_hooks.{name}")
    for suffix, hook in _items(cfg.get("custom_hooks")):
        _check(hook, _scoped(R.HOOKS, scope), f"custom_hooks{suffix}")
    wrapper = cfg.get("optim_wrapper")
    if isinstance(wrapper, dict) and "optimizer" in wrapper:
        _check(wrapper, _scoped(R.OPTIM_WRAPPERS, scope), "optim_wrapper", "OptimWrapper", _OPTIM_WRAPPER_EXTRA)
        _check(wrapper["optimizer"], _scoped(R.OPTIMIZERS, scope), "optim_wrapper.optimizer", extra={"params"})
    for suffix, scheduler in _items(cfg.get("param_scheduler")):
        _check(
            scheduler,
            _scoped(R.PARAM_SCHEDULERS, scope),
            f"param_scheduler{suffix}",
            extra={"optimizer", "convert_to_iter_based"},
        )
    check_values(cfg)  # then the values: the wrong type or range, named with key and value


# ------------------------------------------------------------------------------------------ values
class ConfigValueError(ConfigKeyError):
    """A config value of the wrong type or range (a subclass of :class:`ConfigKeyError`, so the tools
    report both the same way: before the runner is built, naming the config)."""


def _is_int(value: Any) -> bool:
    return type(value) is int  # True is an int to Python, never a count here


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


_SIMPLE_TYPES: dict[Any, tuple[str, Callable[[Any], bool]]] = {
    int: ("a whole number", _is_int),
    float: ("a finite number", _is_number),
    bool: ("True or False", lambda v: type(v) is bool),
    str: ("a string", lambda v: isinstance(v, str)),
}


def _check_types(cfg: Any, cls: Any, where: str) -> None:
    """Check ``cfg``'s values against the ``int`` / ``float`` / ``bool`` / ``str`` annotations of ``cls``."""
    if not isinstance(cfg, dict) or cls is None:
        return
    try:
        hints = typing.get_type_hints(cls.__init__ if inspect.isclass(cls) else cls)
    except Exception:  # unresolvable annotations: nothing to check against
        return
    for key, value in cfg.items():
        hint = hints.get(key)
        if key == "type" or hint is None:
            continue
        options = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) else (hint,)
        if not all(o in _SIMPLE_TYPES or o is type(None) for o in options):
            continue  # a richer type (a list, a dict, a class): left to the class
        if (value is None and type(None) in options) or any(
            o in _SIMPLE_TYPES and _SIMPLE_TYPES[o][1](value) for o in options
        ):
            continue
        expected = " or ".join(_SIMPLE_TYPES[o][0] if o in _SIMPLE_TYPES else "None" for o in options)
        raise ConfigValueError(f"{where}.{key}={value!r}: {getattr(cls, '__name__', cls)} expects {expected}")


def _need(ok: bool, where: str, value: Any, what: str) -> None:
    if not ok:
        raise ConfigValueError(f"{where}={value!r}: {what}")


def check_values(cfg: Any) -> None:
    """Raise :class:`ConfigValueError` for the first value that would fail later, naming its key and value.

    Checked: the loop lengths and intervals of ``train_cfg`` (whole numbers >= 1), the optimizer's
    ``lr`` (a finite number >= 0: ``nan`` / ``inf`` / ``"fast"`` are refused), the data loaders'
    ``batch_size``, and the arguments of clipadapt's model and of every plugin against their ``int`` /
    ``float`` / ``bool`` / ``str`` annotations (``num_tokens="two"`` or ``2.5``).
    """
    train = cfg.get("train_cfg")
    if isinstance(train, dict):
        for key in ("max_epochs", "max_iters", "val_interval", "val_begin"):
            if key in train:
                _need(
                    _is_int(train[key]) and train[key] >= 1,
                    f"train_cfg.{key}",
                    train[key],
                    "must be a whole number >= 1",
                )
    wrapper = cfg.get("optim_wrapper")
    optimizer = wrapper.get("optimizer") if isinstance(wrapper, dict) else None
    if isinstance(optimizer, dict) and "lr" in optimizer:
        lr = optimizer["lr"]
        _need(_is_number(lr) and lr >= 0, "optim_wrapper.optimizer.lr", lr, "must be a finite number >= 0")
    for phase in ("train", "val", "test"):
        loader = cfg.get(f"{phase}_dataloader")
        if isinstance(loader, dict) and "batch_size" in loader:
            size = loader["batch_size"]
            _need(_is_int(size) and size >= 1, f"{phase}_dataloader.batch_size", size, "must be a whole number >= 1")
    model = cfg.get("model")
    if not isinstance(model, dict):
        return
    kind = model.get("type")
    registry = _scoped(R.MODELS, cfg.get("default_scope") or R.MODELS.scope)
    cls = registry.get(kind) if isinstance(kind, str) else kind
    if getattr(cls, "__module__", "").split(".")[0] in ("clipadapt", "clipadapt_plugins"):
        _check_types(model, cls, "model")
    for suffix, plugin in _items(model.get("plugins")):
        if isinstance(plugin, dict) and isinstance(plugin.get("type"), str):
            _check_types(plugin, R.PLUGINS.get(plugin["type"]), f"model.plugins{suffix}")


def check_cfg_options(items: Iterable[str]) -> None:
    """Raise :class:`ConfigValueError` naming the first ``--cfg-options`` item that is not ``key=value``."""
    from mmengine.config import DictAction

    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigValueError(f"--cfg-options {item!r}: expected key=value (e.g. train_cfg.max_epochs=2)")
        try:
            DictAction._parse_iterable(value)
        except (AssertionError, ValueError) as err:
            raise ConfigValueError(f"--cfg-options {key}={value!r}: {err}") from None


def parse_args_checked(parser: Any, argv: list[str] | None = None) -> Any:
    """``parser.parse_args(argv)``; a malformed ``--cfg-options`` item exits naming it (argparse's usage
    error) instead of MMEngine's bare ``ValueError`` / ``AssertionError``."""
    import sys

    try:
        return parser.parse_args(argv)
    except (ValueError, AssertionError):
        argv = sys.argv[1:] if argv is None else list(argv)
        items = argv[argv.index("--cfg-options") + 1 :] if "--cfg-options" in argv else []
        items = items[: next((i for i, a in enumerate(items) if a.startswith("--")), len(items))]
        try:
            check_cfg_options(items)
        except ConfigValueError as err:
            parser.error(str(err))
        raise
