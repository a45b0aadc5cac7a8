"""Shared config pieces: the `:key=value` argument parser and the law-task base config."""

from __future__ import annotations

from typing import Any

import ml_collections

TRUE_WORDS = ("1", "true", "yes")
FALSE_WORDS = ("0", "false", "no")


def parse_arg(arg: str | None, **defaults: Any) -> ml_collections.ConfigDict:
  """Parses "key=value,key2=value2" against typed defaults (the text after `config.py:`).

  Values are converted to the type of their default; unknown keys and values that do not convert
  raise a one-line ValueError.
  """
  parsed = ml_collections.ConfigDict(defaults)
  for item in filter(None, (arg or "").split(",")):
    key, sep, value = item.partition("=")
    if not sep:
      raise ValueError(f"config argument {item!r} must look like key=value")
    check_arg("config argument", key, tuple(defaults))
    parsed[key] = _convert(key, value, type(defaults[key]))
  return parsed


def _convert(key: str, value: str, kind: type) -> Any:
  """`value` as the type `kind` of the argument `key`'s default."""
  if kind is bool:
    check_arg(f"value of config argument {key}", value.lower(), TRUE_WORDS + FALSE_WORDS)
    return value.lower() in TRUE_WORDS
  try:
    return kind(value)
  except ValueError:
    raise ValueError(f"config argument {key}={value!r} must be a {kind.__name__}") from None


def check_arg(kind: str, value: str, allowed: tuple[str, ...]) -> str:
  """Returns `value` if it is one of `allowed`, else raises a one-line ValueError listing them."""
  if value not in allowed:
    raise ValueError(f"unknown {kind} {value!r}; valid: {', '.join(allowed)}")
  return value


def law_config(task: str, size: str = "S", data: str = "30K") -> ml_collections.ConfigDict:
  """The study's settings for a law task: 128 x 128, 32 frames, 3 context frames."""
  config = ml_collections.ConfigDict()
  config.task = task
  config.scene_options = ml_collections.ConfigDict()
  config.seed = 0
  # cache: > 0 simulates that many training videos once and trains on them (worldmodel/video_cache)
  config.data = ml_collections.ConfigDict(dict(dataset_size=data, pool_seed=0, cache=0))
  config.video = ml_collections.ConfigDict(dict(num_frames=32, context_frames=3, resolution=128))
  config.model = ml_collections.ConfigDict(
    # remat: recompute each block's activations in the backward pass (less memory, ~1/3 more
    # compute); worth it at 128 x 128 x 32 (4096 tokens) on accelerators with little memory.
    # context_input: "masked" (context frames only) or "held" (worldmodel/dit.py).
    # attention_impl: xla | cudnn (NVIDIA) | blockwise (chunked, low memory) | splash (TPU).
    dict(
      size=size,
      patch_size=(2, 8, 8),
      attention="full",
      attention_impl="xla",
      context_input="masked",
      dtype="bfloat16",
      remat=False,
    )
  )
  # What the simulator tells the model (worldmodel/guides.py): kind none | render | flow_noise |
  # state, built from each video's context frames by a fit of fit_steps iterations; render: the
  # rendered guide's "masks" (one channel) or "full" (RGB); train_from: "fit" (training guides
  # from the same fit) or "truth" (the true state plus noise of the fit's measured error).
  config.guide = ml_collections.ConfigDict(
    dict(kind="none", render="masks", fit_steps=10, train_from="fit")
  )
  # `name` picks the objective; the options of each are its fields (worldmodel/diffusion.py).
  config.objective = ml_collections.ConfigDict(
    dict(name="flow", flow=dict(time_sampling="logit_normal"), ddpm_v=dict())
  )
  config.optimizer = ml_collections.ConfigDict(
    dict(
      learning_rate=1e-4,
      warmup_steps=2000,
      final_lr_fraction=0.1,
      weight_decay=0.0,
      b1=0.9,
      b2=0.99,
      grad_clip=1.0,
      ema_decay=0.9999,
    )
  )
  # weight of the law-residual loss on the clean-frame estimate (worldmodel.physics); 0 = off.
  config.physics = ml_collections.ConfigDict(dict(weight=0.0))
  # Reward fine-tuning (experiments/train.py): with init_from (the workdir of a trained run), train
  # on the model's own best-of-`samples` rollouts of contexts simulated from `split`, ranked by
  # the score of `kind` (worldmodel.physics.make_score: "law", the law residuals, or "context",
  # those plus the context velocity gap; eval.best_of ranks by it too); `simulator_fraction` of
  # each batch stays the simulator's training frames.
  config.reward = ml_collections.ConfigDict(
    dict(
      init_from="",
      kind="law",
      split="train",
      samples=4,
      sample_steps=8,
      simulator_fraction=0.5,
    )
  )
  config.batch_size = 256
  config.num_steps = 100_000
  config.log_every_steps = 100
  config.checkpoint_every_steps = 5000
  config.keep_checkpoints = 3
  config.mesh = ml_collections.ConfigDict(dict(data=-1, fsdp=1))
  config.eval = ml_collections.ConfigDict(
    dict(
      splits=("id",),
      grid_points=8,  # grid values per parameter and band (Scene.eval_params)
      num_cases=512,  # at most this many cases per split, thinned evenly from the grid
      sample_steps=32,
      best_of=1,  # > 1: keep the most physical of this many rollouts (worldmodel.physics)
      physics_score=False,  # fit the simulator to every rollout (experiments/physics_probe.py)
      batch_size=32,
      gif_scale=2,
      dataset="",  # DATA_DIR/NAME of a stored eval set (--mode=write_eval_set); "" simulates
      # predictors scored beside the model on the same cases (experiments/baselines.py)
      baselines=("copy_last", "blank", "extrapolate"),
      # probes of the study's mechanism experiments run on these splits (experiments/probes)
      probes=(),
      # options over `scene_options` for the evaluated scene (e.g. templates="ambiguity")
      scene_options=ml_collections.ConfigDict(),
    )
  )
  return config


OOD_LEVELS = {
  "uniform_motion": ("ood_r", "ood_v", "ood_rv"),
  "parabola": ("ood_r", "ood_v", "ood_rv"),
  "collision": ("ood_r1", "ood_v1", "ood_r1r2", "ood_v1v2", "ood_r1v1", "ood_all"),
}


def cpu_law_config(task: str, num_steps: int = 1500) -> ml_collections.ConfigDict:
  """The quickstart's recipe for a law task on 2 CPU cores (`quickstart.py` explains it): 32 x
  32, 8 frames (3 context), a 1M-parameter DiT over 8 x 8 patches, x-prediction flow."""
  config = law_config(task, size="tiny", data="continuous")
  config.video.update(num_frames=8, context_frames=3, resolution=32)
  config.model.update(patch_size=(1, 8, 8), attention="full", dtype="float32")
  config.objective.flow.update(prediction="x")
  config.optimizer.update(learning_rate=1e-3, warmup_steps=100, ema_decay=0.99)
  config.batch_size = 16
  config.num_steps = num_steps
  config.log_every_steps = 50
  config.checkpoint_every_steps = 500
  config.eval.update(sample_steps=8, batch_size=16, gif_scale=4)
  return config


def law_task_config(task: str, arg: str | None) -> ml_collections.ConfigDict:
  """A law-task config from its `:size=...,data=...` argument; evaluates ID and all OOD levels."""
  args = parse_arg(arg, size="S", data="30K")
  config = law_config(task, size=args.size, data=args.data)
  config.eval.splits = ("id", *OOD_LEVELS[task])
  return config
