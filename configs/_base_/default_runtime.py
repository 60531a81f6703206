# Runtime shared by every clipadapt config: hooks, logging (text + TensorBoard), environment.
default_scope = "clipadapt"

default_hooks = dict(
    runtime_info=dict(type="RuntimeInfoHook"),
    timer=dict(type="IterTimerHook"),
    sampler_seed=dict(type="DistSamplerSeedHook"),
    logger=dict(type="LoggerHook", interval=10),
    param_scheduler=dict(type="ParamSchedulerHook"),
    checkpoint=dict(type="CheckpointHook", interval=1, max_keep_ckpts=2, save_last=True),
    # clipadapt: class names from dataset.metainfo['classes'] before train/val/test, and
    # checkpoints of adapted models that hold the adapter only (plus a reference to the base weights).
    class_names=dict(type="ClassNamesHook"),
    adapter_checkpoint=dict(type="AdapterCheckpointHook"),
)

env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method="fork", opencv_num_threads=0),
    dist_cfg=dict(backend="nccl"),  # tools/train.py switches to gloo when there is no GPU
)

visualizer = dict(type="Visualizer", vis_backends=[dict(type="LocalVisBackend"), dict(type="TensorboardVisBackend")])
log_processor = dict(by_epoch=True, window_size=10)
log_level = "INFO"
load_from = None
resume = False
randomness = dict(seed=0, deterministic=False)
