"""CLIP-MoE's Diversified Multiplet Upcycling: the training recipe, step by step.

Run it with ``tools/dmu.py CONFIG`` (``--compare``, ``--seeds``, ``--eval-split``). It trains: it imports the
runner (``clipadapt.engine``), which the plugin itself (``clipadapt_plugins.moe``) never does.

Steps, each recorded in ``<work-dir>/dmu_state.json`` when it finishes (a killed run restarts at the
first unfinished step; a step is redone from its start):

1. ``stage0``: the base CLIP embeds the training set; k-means (I image x T text clusters) gives labels.
2. ``stage1`` .. ``stage{E-1}``: a fresh copy of the base fine-tunes its MLPs (``MLPFineTune`` on the
   blocks that ``MoEUpcycle`` upcycles; schedule ``dmu.mlp_stage``), every batch drawn from one label of
   the previous stage (``ClusterBatchSampler``); its MLPs are saved, and (but for the last stage) the
   training set is embedded again and the labels refined, ``labels * (I*T) + T-cluster * I + I-cluster``.
3. ``router``: the model of ``model`` (with ``MoEUpcycle``) gets expert j = the MLPs of stage j, and
   trains its routers with the top-level schedule (``optim_wrapper``, ``param_scheduler``, ``train_cfg``).
4. ``eval``: retrieval on the test split, activated parameters per token and total parameters.
   ``--eval-split val`` evaluates on the val split instead (steps ``eval_val``, ...): the training
   steps are the same, so a run tuned on val reports test by a rerun without ``--eval-split``.

``--compare`` adds, at the same number of optimizer steps and batch size: plain upcycling (identical
experts; routers and experts train for the (E-1) MLP stages' steps with ``dmu.mlp_stage``'s schedule,
then the same router stage) and dense fine-tuning of the same MLPs (``MLPFineTune``, the MLP schedule,
for all the steps), plus the base CLIP; the table goes to ``compare.csv`` / ``compare.md``
(``compare_val.*`` for the val split).

``--seeds N ...`` runs the whole pipeline once per seed (``randomness.seed`` = ``dmu.seed`` = N, which
seeds the data order, the routers' initialisation and k-means) in ``<work-dir>/seed<N>``, and writes the
mean and sample standard deviation over the seeds to ``<work-dir>/compare[_val].{csv,md}``.
"""

from __future__ import annotations

import copy
import hashlib
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from mmengine.config import Config

from clipadapt.engine.run import train_in_process
from clipadapt.fileio import atomic_write

from .dmu import canonical_json
from .evaluation import predict, retrieval_row
from .journal import State
from .schedules import SCHEDULE_KEYS, stretch_schedulers
from .tables import write_table

__all__ = ["DMU_KEYS", "EVAL_STEPS", "SCHEDULE_KEYS", "SPLITS", "DMUPipeline", "stretch_schedulers"]

DMU_KEYS = {
    "image_clusters",
    "text_clusters",
    "mlp_stage",
    "embed_batch_size",
    "kmeans_batch_size",
    "kmeans_max_iter",
    "kmeans_tol",
    "kmeans_n_init",
    "cluster_sampler",
    "seed",
}
SPLITS = ("test", "val")
EVAL_STEPS = ("compare_base", "compare_dense_eval", "compare_upcycle_eval", "eval")  # the table's rows, in order
SPECIALISE_STEPS = ("compare_untrained_specialise", "compare_upcycle_specialise", "specialise")


def _with_pipeline(dataset: dict[str, Any], pipeline: list[Any]) -> dict[str, Any]:
    """The data set config with every (nested) ``pipeline`` replaced: deterministic embedding passes."""
    dataset = copy.deepcopy(dataset)
    if "pipeline" in dataset:
        dataset["pipeline"] = copy.deepcopy(pipeline)
    if "datasets" in dataset:
        dataset["datasets"] = [_with_pipeline(d, pipeline) for d in dataset["datasets"]]
    if "dataset" in dataset:
        dataset["dataset"] = _with_pipeline(dataset["dataset"], pipeline)
    return dataset


def _save_npy(path: str, array: np.ndarray) -> None:
    with open(path, "wb") as handle:  # a file object: np.save would append ".npy" to a path
        np.save(handle, array)


class DMUPipeline:
    """The steps of DMU (and of ``--compare``) on one prepared config; see the module docstring."""

    def __init__(self, cfg: Config, dmu: dict[str, Any], work_dir: Path, eval_split: str = "test") -> None:
        if eval_split not in SPLITS:
            raise ValueError(f"eval_split must be one of {SPLITS}, got {eval_split!r}")
        unknown = set(dmu) - DMU_KEYS
        if unknown:
            raise SystemExit(f"dmu.{sorted(unknown)[0]}: unknown DMU setting (known: {', '.join(sorted(DMU_KEYS))})")
        self.cfg, self.dmu, self.work_dir, self.eval_split = cfg, dmu, work_dir, eval_split
        self.plugins = [dict(p) for p in cfg.model.get("plugins") or []]
        moe = [i for i, p in enumerate(self.plugins) if p.get("type") == "MoEUpcycle"]
        if len(moe) != 1:
            raise SystemExit("a DMU config's model.plugins must hold exactly one dict(type='MoEUpcycle', ...)")
        self.moe_index = moe[0]
        self.moe_cfg = self.plugins[self.moe_index]
        self.num_experts = int(self.moe_cfg.get("num_experts", 4))
        if self.num_experts < 2:
            raise SystemExit(f"MoEUpcycle num_experts must be >= 2, got {self.num_experts}")
        self.mlp_cfg = dict(
            type="MLPFineTune",
            vision_layers=self.moe_cfg.get("vision_layers"),
            text_layers=self.moe_cfg.get("text_layers"),
        )
        self.mlp_schedule = {k: copy.deepcopy(dmu["mlp_stage"][k]) for k in SCHEDULE_KEYS}
        self.router_schedule = {k: copy.deepcopy(cfg[k]) for k in SCHEDULE_KEYS}
        self.state = State(work_dir / "dmu_state.json", self._fingerprint())

    # ------------------------------------------------------------------------------ helpers
    def _with(self, plugin: dict[str, Any] | None) -> list[dict[str, Any]]:
        """The config's plugins with ``MoEUpcycle`` replaced by ``plugin`` (None: left out); others stay."""
        plugins = copy.deepcopy(self.plugins)
        if plugin is None:
            del plugins[self.moe_index]
        else:
            plugins[self.moe_index] = copy.deepcopy(plugin)
        return plugins

    def _fingerprint(self) -> str:
        keys = ("model", "train_dataloader", "optim_wrapper", "param_scheduler", "train_cfg", "randomness")
        blob = canonical_json({k: self.cfg.get(k) for k in keys} | {"dmu": self.dmu})
        return hashlib.sha256(blob.encode()).hexdigest()

    def _build_task(self, plugins: list[dict[str, Any]]) -> Any:
        from mmengine.registry import DefaultScope

        from clipadapt.registry import MODELS

        with DefaultScope.overwrite_default_scope("clipadapt"):
            return MODELS.build(dict(copy.deepcopy(self.cfg.model), plugins=plugins))

    def _loader(self, loader_cfg: dict[str, Any]) -> Any:
        from mmengine.registry import DefaultScope
        from mmengine.runner import Runner

        with DefaultScope.overwrite_default_scope("clipadapt"):
            return Runner.build_dataloader(loader_cfg)

    def _training_set(self) -> Any:
        """The training set in index order, with the test pipeline."""
        train = self.cfg.train_dataloader
        return self._loader(
            dict(
                batch_size=int(self.dmu.get("embed_batch_size", 256)),
                num_workers=train.get("num_workers", 0),
                sampler=dict(type="DefaultSampler", shuffle=False),
                collate_fn=train.get("collate_fn", dict(type="default_collate")),
                dataset=_with_pipeline(train.dataset, self.cfg.test_dataloader.dataset.pipeline),
            )
        )

    def _embed_training_set(self, task: Any, step: str) -> tuple[np.ndarray, np.ndarray]:
        """Normalised image and text embeddings of the training set, in index order, test pipeline."""
        preds = predict(task, self._training_set(), f"{step}: embedding the training set")
        images = torch.stack([p["image_feature"] for p in preds]).numpy()
        texts = torch.stack([p["text_feature"] for p in preds]).numpy()
        return images, texts

    def _cluster(self, task: Any, step: str, previous: np.ndarray | None) -> Path:
        from clipadapt_plugins.moe import refine_labels

        images, texts = self._embed_training_set(task, step)
        labels = refine_labels(
            previous,
            images,
            texts,
            image_clusters=int(self.dmu.get("image_clusters", 3)),
            text_clusters=int(self.dmu.get("text_clusters", 3)),
            seed=int(self.dmu.get("seed", 0)),
            batch_size=int(self.dmu.get("kmeans_batch_size", 1024)),
            max_iter=int(self.dmu.get("kmeans_max_iter", 100)),
            tol=float(self.dmu.get("kmeans_tol", 0.0)),
            n_init=self.dmu.get("kmeans_n_init", 3),
        )
        path = self.work_dir / step / "labels.npy"
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, lambda tmp: _save_npy(tmp, labels))
        return path

    def _train(
        self,
        step: str,
        plugins: list[dict[str, Any]],
        schedule: dict[str, Any],
        labels: Path | None = None,
        init: Callable[[Any], None] | None = None,
        max_iters: int | None = None,
    ) -> Any:
        """One runner: train ``plugins`` with ``schedule`` (cluster batches from ``labels``); the trained task."""
        cfg = Config(copy.deepcopy(self.cfg.to_dict()))
        cfg.model.plugins = plugins
        for key in SCHEDULE_KEYS:
            cfg[key] = copy.deepcopy(schedule[key])
        if max_iters is not None:
            cfg.train_cfg.max_iters = max_iters
        cfg.param_scheduler = stretch_schedulers(schedule, max_iters)
        if labels is not None:
            sampler = dict(self.dmu.get("cluster_sampler") or {})  # remainder / order (default: the original's)
            cfg.train_dataloader.batch_sampler = dict(type="ClusterBatchSampler", labels=str(labels), **sampler)
        for phase in ("val", "test"):  # evaluation is this tool's own, after training
            cfg[f"{phase}_dataloader"] = cfg[f"{phase}_cfg"] = cfg[f"{phase}_evaluator"] = None
        cfg.work_dir = str(self.work_dir / step)
        cfg.experiment_name = f"{step}_{time.strftime('%Y%m%d_%H%M%S')}_{time.monotonic_ns() % 10**6}"
        cfg.log_level = "WARNING"  # the progress bar speaks instead
        cfg.log_processor = dict(by_epoch=cfg.train_cfg.get("by_epoch", True), window_size=10)
        cfg.default_hooks.checkpoint = dict(type="CheckpointHook", interval=-1, save_last=False)
        cfg.custom_hooks = [*(cfg.get("custom_hooks") or []), dict(type="ProgressBarHook", desc=step)]
        _, task = train_in_process(cfg, init=None if init is None else lambda task: init(task.clip))
        return task

    def _save_adapter(self, task: Any, step: str) -> str:
        import clipadapt

        return str(clipadapt.save_adapter(task.clip, self.work_dir / step / "adapter.pt"))

    def _evaluate(
        self, name: str, plugins: list[dict[str, Any]], adapter: str | None, steps: int | None
    ) -> dict[str, Any]:
        from mmengine.registry import DefaultScope

        import clipadapt
        from clipadapt.registry import METRICS

        task = self._build_task(plugins)
        if adapter is not None:
            clipadapt.load_adapter(adapter, model=task.clip)
        with DefaultScope.overwrite_default_scope("clipadapt"):
            metric = METRICS.build(copy.deepcopy(self.cfg[f"{self.eval_split}_evaluator"]))
        loader = self._loader(copy.deepcopy(self.cfg[f"{self.eval_split}_dataloader"]))
        batch = int(self.cfg.train_dataloader.batch_size)
        return retrieval_row(task, loader, metric, name, self.eval_split, steps, batch)

    def _specialise(self, name: str, adapter: str | None) -> dict[str, Any]:
        """Routing and expert statistics of an MoE model over the training set, by its stage-0 clusters."""
        import clipadapt

        from .specialisation import task_specialisation

        task = self._build_task(self._with(self.moe_cfg))
        if adapter is not None:
            clipadapt.load_adapter(adapter, model=task.clip)
        labels = torch.from_numpy(np.load(self.state.get("stage0")["labels"]))
        clusters = int(self.dmu.get("image_clusters", 3)) * int(self.dmu.get("text_clusters", 3))
        return {"method": name, "layers": task_specialisation(task, self._training_set(), labels, clusters, name)}

    def _iters(self, schedule: dict[str, Any], what: str) -> int:
        train_cfg = schedule["train_cfg"]
        if train_cfg.get("by_epoch", True) or "max_iters" not in train_cfg:
            raise SystemExit(f"--compare needs an iteration-based {what} (train_cfg=dict(by_epoch=False, max_iters=N))")
        return int(train_cfg["max_iters"])

    # -------------------------------------------------------------------------------- steps
    def _eval_name(self, step: str) -> str:
        """An evaluation step's name in the state: ``eval`` for the test split, ``eval_val`` for val."""
        return step if self.eval_split == "test" else f"{step}_{self.eval_split}"

    def steps(self, compare: bool) -> list[tuple[str, Callable[[], dict[str, Any]]]]:
        """The ordered steps; each returns what ``dmu_state.json`` records for it."""
        steps: list[tuple[str, Callable[[], dict[str, Any]]]] = [("stage0", self._stage0)]
        steps += [(f"stage{s}", lambda s=s: self._mlp_stage(s)) for s in range(1, self.num_experts)]
        steps += [("router", self._router_stage), (self._eval_name("eval"), self._eval_dmu)]
        steps += [("specialise", lambda: self._specialise("DMU MoE", self.state.get("router")["adapter"]))]
        if compare:
            upcycled = lambda: self.state.get("compare_upcycle_router")["adapter"]  # noqa: E731
            steps += [
                (self._eval_name("compare_base"), self._compare_base),
                ("compare_untrained_specialise", lambda: self._specialise("Upcycled, untrained", None)),
                ("compare_upcycle_experts", self._upcycle_experts),
                ("compare_upcycle_router", self._upcycle_router),
                (self._eval_name("compare_upcycle_eval"), self._upcycle_eval),
                ("compare_upcycle_specialise", lambda: self._specialise("Upcycling (identical experts)", upcycled())),
                ("compare_dense", self._dense),
                (self._eval_name("compare_dense_eval"), self._dense_eval),
            ]
        return steps

    def _stage0(self) -> dict[str, Any]:
        task = self._build_task(self._with(None))
        return {"labels": str(self._cluster(task, "stage0", None))}

    def _mlp_stage(self, stage: int) -> dict[str, Any]:
        previous = Path(self.state.get(f"stage{stage - 1}")["labels"])
        task = self._train(f"stage{stage}", self._with(self.mlp_cfg), self.mlp_schedule, labels=previous)
        info = {"adapter": self._save_adapter(task, f"stage{stage}")}
        if stage < self.num_experts - 1:  # the last stage's labels would train nothing
            info["labels"] = str(self._cluster(task, f"stage{stage}", np.load(previous)))
        return info

    def _router_stage(self) -> dict[str, Any]:
        from clipadapt_plugins.moe import load_stage_experts

        stages = [None] + [self.state.get(f"stage{s}")["adapter"] for s in range(1, self.num_experts)]
        task = self._train(
            "router", self._with(self.moe_cfg), self.router_schedule, init=lambda c: load_stage_experts(c, stages)
        )
        return {"adapter": self._save_adapter(task, "router")}

    def _dmu_steps(self) -> int | None:
        """Optimizer steps of the whole DMU run (iteration-based schedules; None for epoch-based ones)."""
        mlp, router = self.mlp_schedule["train_cfg"], self.router_schedule["train_cfg"]
        if mlp.get("by_epoch", True) or router.get("by_epoch", True):
            return None
        return (self.num_experts - 1) * int(mlp["max_iters"]) + int(router["max_iters"])

    def _eval_dmu(self) -> dict[str, Any]:
        return self._evaluate(
            "DMU MoE", self._with(self.moe_cfg), self.state.get("router")["adapter"], self._dmu_steps()
        )

    def _compare_base(self) -> dict[str, Any]:
        return self._evaluate("Base CLIP (no training)", self._with(None), None, 0)

    def _upcycle_experts(self) -> dict[str, Any]:
        iters = (self.num_experts - 1) * self._iters(self.mlp_schedule, "dmu.mlp_stage")
        plugin = dict(self.moe_cfg, trainable="all")
        task = self._train("compare_upcycle_experts", self._with(plugin), self.mlp_schedule, max_iters=iters)
        return {"adapter": self._save_adapter(task, "compare_upcycle_experts")}

    def _upcycle_router(self) -> dict[str, Any]:
        import clipadapt

        phase1 = self.state.get("compare_upcycle_experts")["adapter"]
        task = self._train(
            "compare_upcycle_router",
            self._with(self.moe_cfg),
            self.router_schedule,
            init=lambda c: clipadapt.load_adapter(phase1, model=c),
        )
        return {"adapter": self._save_adapter(task, "compare_upcycle_router")}

    def _upcycle_eval(self) -> dict[str, Any]:
        adapter = self.state.get("compare_upcycle_router")["adapter"]
        return self._evaluate("Upcycling (identical experts)", self._with(self.moe_cfg), adapter, self._dmu_steps())

    def _dense(self) -> dict[str, Any]:
        iters = (self.num_experts - 1) * self._iters(self.mlp_schedule, "dmu.mlp_stage")
        iters += self._iters(self.router_schedule, "router stage")
        task = self._train("compare_dense", self._with(self.mlp_cfg), self.mlp_schedule, max_iters=iters)
        return {"adapter": self._save_adapter(task, "compare_dense")}

    def _dense_eval(self) -> dict[str, Any]:
        adapter = self.state.get("compare_dense")["adapter"]
        return self._evaluate("Dense MLP fine-tuning", self._with(self.mlp_cfg), adapter, self._dmu_steps())

    def run(self, compare: bool = False) -> dict[str, Any]:
        """Run every unfinished step in order (with a progress bar over the steps); the state's records."""
        from tqdm import tqdm

        if compare:  # equal budgets are counted in optimizer steps: check before anything trains
            self._iters(self.mlp_schedule, "dmu.mlp_stage")
            self._iters(self.router_schedule, "router stage")
        steps = self.steps(compare)
        todo = [(name, fn) for name, fn in steps if self.state.get(name) is None]
        bar = tqdm(total=len(steps), initial=len(steps) - len(todo), desc="DMU", unit="step", dynamic_ncols=True)
        for name, fn in todo:
            bar.set_postfix_str(name)
            start = time.time()
            info = fn()
            self.state.record(name, {**info, "seconds": round(time.time() - start, 1)})
            bar.update(1)
        bar.close()
        if compare:
            write_table(self.table(), self.work_dir, self.eval_split)
        return self.state.data["done"]

    def specialisation(self) -> list[dict[str, Any]]:
        """The finished ``specialise`` steps' records: untrained upcycling, plain upcycling, DMU."""
        records = [self.state.get(n) for n in SPECIALISE_STEPS]
        return [{"method": r["method"], "layers": r["layers"]} for r in records if r is not None]

    def table(self) -> list[dict[str, Any]]:
        """The rows of the comparison that have been evaluated on ``eval_split``, base CLIP first."""
        names = [self._eval_name(n) for n in EVAL_STEPS]
        return [self.state.get(n) for n in names if self.state.get(n) is not None]
