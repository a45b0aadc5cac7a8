"""The trainer: a video DiT learning frame prediction from simulator data made inside the step.

Sections, in order: setup (scene, data source, mesh) -> model and optimizer by shape ->
shardings -> initial or restored state -> the jitted step (simulate, render, denoise, update)
-> the loop (metrics, checkpoints, SIGTERM) -> evaluation and report.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import signal
import time
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import optax
from absl import logging
from flax import nnx
from jax.experimental import multihost_utils

import sims
from experiments import baselines, outputs, probes, video_metrics
from experiments import metrics as metrics_lib
from worldmodel import checkpoint as checkpoint_lib
from worldmodel import data, diffusion, dit, guides, physics, sharding, video_cache

TrainState = dict[str, Any]  # {"step", "params", "ema", "opt"}


@dataclasses.dataclass(frozen=True)
class Experiment:
  """Everything a config defines that training and evaluation share."""

  config: ml_collections.ConfigDict
  scene: sims.Scene
  objective: diffusion.Objective
  graphdef: nnx.GraphDef
  mesh: jax.sharding.Mesh
  eval_scene: sims.Scene  # the scene evaluated: `scene` with `eval.scene_options` over its options
  guide: guides.Guide  # what the simulator tells the model, from each video's context frames

  def for_evaluation(self) -> Experiment:
    """This experiment with the evaluated scene in place of the training one."""
    return dataclasses.replace(self, scene=self.eval_scene)

  @property
  def video_shape(self) -> tuple[int, int, int]:
    video = self.config.video
    return video.num_frames, video.resolution, video.resolution

  def apply_fn(self, params: nnx.State, guide: guides.GuideInputs | None = None):
    """The denoiser `(noisy, time, context, context_mask) -> output` for given parameters and
    the batch's guide (its channels and state; its noise goes to the objective)."""
    model = nnx.merge(self.graphdef, params)
    if guide is None:
      return model
    return functools.partial(model, guide=guide.channels, state=guide.state)

  def sample(
    self, params: nnx.State, key: jax.Array, frames: jax.Array, num_steps: int
  ) -> jax.Array:
    """Generated videos from the context frames of `frames` [B, T, H, W, 3], with the guide
    built from those context frames."""
    guide = self.guide.build(frames, jax.random.fold_in(key, 1))
    mask = self.context_mask(frames.shape[0])
    return self.objective.sample(
      self.apply_fn(params, guide), key, frames, mask, num_steps, guide.noise
    )

  def context_mask(self, batch_size: int) -> jax.Array:
    video = self.config.video
    return data.context_mask(batch_size, video.num_frames, video.context_frames)

  def training_batch(self, source: sims.Pool | str, data_input: Any, key: jax.Array) -> jax.Array:
    """The training frames of a step's data key: drawn from the video cache (`data.cache`, then
    `data_input` is the cache) or simulated from the source (`data_input`: its Pool or None)."""
    if self.config.data.cache:
      return video_cache.draw(data_input, key, self.config.batch_size)
    return self.video_batch(source if data_input is None else data_input, key)

  def training_guide(
    self,
    source: sims.Pool | str,
    data_input: Any,
    frames: jax.Array,
    data_key: jax.Array,
    key: jax.Array,
  ) -> guides.GuideInputs:
    """The guide (drawing with `key`) of a step's training frames, drawn with `data_key`: from
    their context fit, or (`guide.train_from="truth"`) their true states plus the fit's error."""
    true_state = None
    if self.guide.kind != "none" and self.config.guide.train_from == "truth":
      pool = source if data_input is None else data_input
      true_state = data.state_batch(self.scene, pool, data_key, self.config.batch_size)
    return self.guide.build(frames, key, true_state)

  def video_batch(self, source: sims.Pool | str, key: jax.Array) -> jax.Array:
    """A training batch sharded over the mesh, each device simulating its own examples."""
    num_frames, resolution, _ = self.video_shape
    return data.sharded_video_batch(
      self.scene, source, key, self.config.batch_size, num_frames, resolution, self.mesh
    )


def make_guide(
  config: ml_collections.ConfigDict, scene: sims.Scene, measure: bool = False
) -> guides.Guide:
  """The config's guide (`config.guide`) for `scene`'s videos; with `measure` and training
  guides from true states, with the context fit's error measured on training videos."""
  guide = guides.Guide(
    config.guide.kind,
    scene,
    config.video.context_frames,
    render=config.guide.render,
    fit_steps=config.guide.fit_steps,
  )
  if measure and guide.kind != "none" and config.guide.train_from == "truth":
    key = jax.random.key(config.seed + 3)
    video = config.video
    error = guides.measure_fit_error(guide, key, video.num_frames, video.resolution)
    guide = dataclasses.replace(guide, fit_error=error)
  return guide


def build_model(
  config: ml_collections.ConfigDict, seed: int, scene: sims.Scene | None = None
) -> dit.VideoDiT:
  """The config's DiT with fresh parameters from `seed` (`scene`: the training scene, made from
  the config if not given)."""
  model, video = config.model, config.video
  if scene is None:
    scene = sims.make(config.task, **config.scene_options)
  guide = make_guide(config, scene)
  return dit.make_dit(
    model.size,
    num_frames=video.num_frames,
    resolution=video.resolution,
    patch_size=tuple(model.patch_size),
    attention=model.attention,
    attention_impl=model.attention_impl,
    context_input=model.context_input,
    guide_channels=guide.channels,
    state_features=guide.state_features,
    dtype=jnp.dtype(model.dtype),
    remat=model.remat,
    rngs=nnx.Rngs(seed),
  )


def make_experiment(config: ml_collections.ConfigDict) -> Experiment:
  """Validates the config and builds the scene, objective, model structure and mesh.

  Every setting, the evaluation's included, is checked here, so that a bad one stops a run
  before it trains or writes anything.
  """
  video = config.video
  if not 0 < video.context_frames < video.num_frames:
    raise ValueError(
      f"video.context_frames={video.context_frames} must be in [1, {video.num_frames - 1}]"
    )
  scene = sims.make(config.task, num_frames=video.num_frames, **config.scene_options)
  data.check_dataset_size(scene, config.data.dataset_size)
  if config.physics.weight:
    physics.law_regularizer(scene, config.physics.weight)  # a one-line error for a bad setting
  sims.check_choice("reward.kind", config.reward.kind, physics.REWARDS)
  if config.reward.init_from:
    physics.check_law_scene(scene)
    if config.reward.samples < 2:
      raise ValueError(f"reward.samples={config.reward.samples} must be >= 2 (best of n)")
    scene.check_split(config.reward.split)
    if not 0.0 <= config.reward.simulator_fraction < 1.0:
      raise ValueError(
        f"reward.simulator_fraction={config.reward.simulator_fraction} must be in [0, 1)"
      )
  eval_options = config.eval.get("scene_options", {})
  eval_scene = (
    sims.make(config.task, num_frames=video.num_frames, **{**config.scene_options, **eval_options})
    if eval_options
    else scene
  )
  check_eval_settings(config, eval_scene)
  sims.check_choice("guide.train_from", config.guide.train_from, guides.TRAIN_FROM)
  if config.guide.train_from == "truth" and (config.data.cache or config.reward.init_from):
    raise ValueError(
      "guide.train_from='truth' needs the simulator's own training states: data.cache and "
      "reward.init_from must be off"
    )
  guide = make_guide(config, scene, measure=True)
  name = sims.check_choice("objective.name", config.objective.name, diffusion.OBJECTIVES)
  objective = diffusion.make_objective(name, **config.objective[name])
  graphdef, _ = nnx.split(nnx.eval_shape(lambda: build_model(config, config.seed, scene)))
  mesh = sharding.make_mesh(config.mesh.data, config.mesh.fsdp)
  if config.batch_size % mesh.size:
    raise ValueError(f"batch_size={config.batch_size} must divide over {mesh.size} devices")
  if config.data.cache:
    video_cache.check_cache(
      config.data.cache, config.batch_size, video.num_frames, video.resolution, mesh
    )
  return Experiment(config, scene, objective, graphdef, mesh, eval_scene, guide)


EVAL_COUNTS = ("grid_points", "num_cases", "sample_steps", "best_of", "batch_size", "gif_scale")


def check_eval_settings(config: ml_collections.ConfigDict, scene: sims.Scene) -> None:
  """A one-line ValueError for the first bad `eval.*` setting: split, metric, count or eval set."""
  settings = config.eval
  if not settings.splits:
    raise ValueError(f"eval.splits is empty; valid: {', '.join(scene.splits)}")
  for split in settings.splits:
    scene.check_split(split)
  for name in settings.get("metrics", ()):
    sims.check_choice("eval.metrics entry", name, video_metrics.METRICS)
  baselines.check(scene, settings.baselines)
  probes.check(settings.probes, scene)
  for name in EVAL_COUNTS:
    if settings[name] < 1:
      raise ValueError(f"eval.{name}={settings[name]} must be >= 1")
  if settings.best_of > 1 or settings.physics_score:
    physics.check_law_scene(scene)
  if settings.dataset:
    sims.check_choice("scene for eval.dataset", scene.name, tuple(sims.laws.LAWS))
    check_eval_set(config)


def check_eval_set(config: ml_collections.ConfigDict) -> None:
  """A one-line ValueError unless `eval.dataset` is an eval set with every split of
  `eval.splits`, made for the config's task, resolution and clip length."""
  import tensorflow_datasets as tfds  # loaded only by runs that read a stored eval set

  from experiments import eval_sets

  path = config.eval.dataset
  version_dir = os.path.join(path, eval_sets.DATASET_VERSION)
  if not os.path.exists(os.path.join(version_dir, "dataset_info.json")):
    raise ValueError(
      f"eval.dataset={path!r} is not an eval set (write one with --mode=write_eval_set)"
    )
  info = tfds.builder_from_directory(version_dir).info
  for split in config.eval.splits:
    sims.check_choice(f"split of eval set {path!r}", split, tuple(info.splits))
  metadata = dict(info.metadata or {})
  expected = {
    "task": config.task,
    "resolution": config.video.resolution,
    "num_frames": config.video.num_frames,
  }
  for field, value in expected.items():
    if metadata.get(field) != value:
      raise ValueError(
        f"eval set {path} has {field}={metadata.get(field)!r}; the config has {value!r}"
      )


def make_optimizer(config: ml_collections.ConfigDict) -> tuple[optax.GradientTransformation, Any]:
  """AdamW with linear warmup, cosine decay and global-norm clipping."""
  opt = config.optimizer
  schedule = optax.warmup_cosine_decay_schedule(
    init_value=0.0,
    peak_value=opt.learning_rate,
    warmup_steps=opt.warmup_steps,
    decay_steps=max(config.num_steps, opt.warmup_steps + 1),
    end_value=opt.learning_rate * opt.final_lr_fraction,
  )
  tx = optax.chain(
    optax.clip_by_global_norm(opt.grad_clip),
    optax.adamw(schedule, b1=opt.b1, b2=opt.b2, weight_decay=opt.weight_decay),
  )
  return tx, schedule


def init_state(
  experiment: Experiment, tx: optax.GradientTransformation, params: nnx.State | None = None
) -> TrainState:
  """Step 0: new parameters from the config's seed (or `params`), EMA equal to them."""
  if params is None:
    model = build_model(experiment.config, experiment.config.seed, experiment.scene)
    params = nnx.state(model, nnx.Param)
  return {"step": jnp.zeros((), jnp.int32), "params": params, "ema": params, "opt": tx.init(params)}


# Checkpoints written before the DiT's blocks were stacked for a scan hold per-block
# parameters (blocks/0/..., blocks/1/...); they are stacked once, at restore time.
EARLIER_LAYOUTS = (
  checkpoint_lib.Layout(
    "per-block DiT parameters", dit.unstack_block_params, dit.stack_block_params
  ),
)


def restore_params(experiment: Experiment, workdir: str) -> tuple[int, nnx.State]:
  """The step and EMA parameters of the newest good checkpoint in `workdir`."""
  tx, _ = make_optimizer(experiment.config)
  abstract_state = jax.eval_shape(lambda: init_state(experiment, tx))
  shardings = sharding.fsdp_sharding(experiment.mesh, abstract_state)
  directory = os.path.join(workdir, "checkpoints")
  with checkpoint_lib.Checkpointer(directory) as checkpoints:
    restored = checkpoints.restore(
      checkpoint_lib.abstract_like(abstract_state, shardings), earlier_layouts=EARLIER_LAYOUTS
    )
  if restored is None:
    raise FileNotFoundError(f"no checkpoint in {directory}; train first (--mode=train)")
  step, state, _ = restored
  return step, state["ema"]


def step_keys(base_key: jax.Array, step: int | jax.Array) -> jax.Array:
  """A step's data, loss and reward keys."""
  return jax.random.split(jax.random.fold_in(base_key, step), 3)


def make_train_step(
  experiment: Experiment,
  tx: optax.GradientTransformation,
  schedule: optax.Schedule,
  source: sims.Pool | str,
):
  """The pure update: simulate and render a batch, take one optimizer step, update the EMA.

  The returned `train_step(state, data_input, base_key)` takes the Pool (or, with
  `data.cache`, the video cache) as an argument, so that a 3M-entry pool is an input buffer, not
  a compile-time constant; with a named split and no cache, data_input is None.
  """
  config = experiment.config
  mask = experiment.context_mask(config.batch_size)
  regularizer = (
    physics.law_regularizer(experiment.scene, config.physics.weight)
    if config.physics.weight > 0
    else None
  )

  reward = config.reward
  num_simulated = round(reward.simulator_fraction * config.batch_size)

  def reward_batch(params, simulated, key):
    """Frames and loss mask for reward fine-tuning, and its metrics.

    The first `num_simulated` examples keep the simulator's frames; the others are the model's
    best-of-n rollouts of contexts from `reward.split` by the physics score (only those are
    sampled). Rollouts that could not be scored at all (no ball measurable in any draw) are left
    out of the loss by marking all their frames as context.
    """
    context_key, sample_key = jax.random.split(key)
    context = experiment.video_batch(reward.split, context_key)[num_simulated:]
    rollout_mask = mask[num_simulated:]

    def sample(draw_key):
      return experiment.sample(params, draw_key, context, reward.sample_steps)

    score = physics.make_score(experiment.scene, reward.kind, config.video.context_frames)
    rollouts, best, scores = physics.best_of_n(sample, score, sample_key, reward.samples)
    scored, finite = jnp.isfinite(best), jnp.isfinite(scores)
    frames = jnp.concatenate([simulated[:num_simulated], rollouts])
    loss_mask = jnp.concatenate(
      [mask[:num_simulated], jnp.where(scored[:, None], rollout_mask, 1.0)]
    )
    metrics = {  # rewards are minus the scores, over the rollouts that could be scored
      "reward_best": -jnp.sum(jnp.where(scored, best, 0.0)) / jnp.maximum(scored.sum(), 1),
      "reward_mean": -jnp.sum(jnp.where(finite, scores, 0.0)) / jnp.maximum(finite.sum(), 1),
      "reward_scored": jnp.mean(scored),
    }
    return jax.lax.stop_gradient(frames), loss_mask, metrics

  def train_step(state: TrainState, data_input: Any, base_key: jax.Array):
    data_key, loss_key, reward_key = step_keys(base_key, state["step"])
    frames = experiment.training_batch(source, data_input, data_key)
    loss_mask, reward_metrics = mask, {}
    if reward.init_from:  # fine-tuning on the model's own most physical rollouts
      frames, loss_mask, reward_metrics = reward_batch(state["params"], frames, reward_key)

    guide_key = jax.random.fold_in(loss_key, 1)
    guide = experiment.training_guide(source, data_input, frames, data_key, guide_key)

    def loss_fn(params):
      return experiment.objective.loss(
        experiment.apply_fn(params, guide), loss_key, frames, loss_mask, regularizer, guide.noise
      )

    (loss, aux), grads = jax.value_and_grad(loss_fn, has_aux=True)(state["params"])
    updates, opt_state = tx.update(grads, state["opt"], state["params"])
    params = optax.apply_updates(state["params"], updates)
    decay = config.optimizer.ema_decay
    ema = jax.tree.map(lambda e, p: decay * e + (1.0 - decay) * p, state["ema"], params)
    step_metrics = {
      "loss": loss,
      "grad_norm": optax.tree.norm(grads),
      "learning_rate": schedule(state["step"]),
      **aux,
      **reward_metrics,
    }
    new_state = {"step": state["step"] + 1, "params": params, "ema": ema, "opt": opt_state}
    return new_state, step_metrics

  return train_step


def _save_config(config: ml_collections.ConfigDict, workdir: str) -> None:
  """Writes config.json; an earlier, different config is kept as config.<n>.json."""
  path = outputs.path(workdir, "config.json")
  text = config.to_json_best_effort(indent=2, sort_keys=True)
  if path.exists():
    if path.read_text() == text:
      return
    index = 1
    while outputs.path(workdir, f"config.{index}.json").exists():
      index += 1
    path.rename(outputs.path(workdir, f"config.{index}.json"))
  path.write_text(text)


def _time_calls(fn, args, calls: int = 3) -> float:
  best = float("inf")
  for _ in range(calls):
    start = time.perf_counter()
    jax.block_until_ready(fn(*args))
    best = min(best, time.perf_counter() - start)
  return best


class _Preemption:
  """Says when to save and stop because SIGTERM (a preemption notice) arrived.

  One process: a SIGTERM handler sets a flag. Several processes: JAX's preemption service (started
  by `jax.distributed.initialize`) catches the signal on whichever host gets it and picks one step
  at which every host stops, so that all of them save the same checkpoint.
  """

  def __init__(self):
    self.requested = False
    self._multi_process = jax.process_count() > 1
    if not self._multi_process:
      self._previous = signal.signal(signal.SIGTERM, self._handle)

  def _handle(self, signum, frame):
    logging.warning("SIGTERM received: saving a checkpoint and stopping")
    self.requested = True

  def check(self, step: int) -> bool:
    """Whether to stop after `step`; every process must call it after every step."""
    if self._multi_process and multihost_utils.reached_preemption_sync_point(step):
      logging.warning("preemption notice: every host saves step %d and stops", step)
      self.requested = True
    return self.requested

  def restore(self):
    if not self._multi_process:
      signal.signal(signal.SIGTERM, self._previous)


def run(config: ml_collections.ConfigDict, workdir: str) -> TrainState:
  """Trains, resuming from the newest good checkpoint in `workdir`; returns the final state."""
  # --- Setup --------------------------------------------------------------------------------
  experiment = make_experiment(config)  # first: a bad config leaves no workdir behind
  outputs.make_dirs(outputs.path(workdir))
  mesh = experiment.mesh
  if jax.process_index() == 0:
    _save_config(config, workdir)
  source = data.training_source(experiment.scene, config.data.dataset_size, config.data.pool_seed)
  pool = source if isinstance(source, sims.Pool) else None
  logging.info(
    "task %s, data %s (%s examples), mesh %s",
    config.task,
    config.data.dataset_size,
    pool.size if pool is not None else "unbounded",
    dict(mesh.shape),
  )

  # --- Model, optimizer and shardings by shape ------------------------------------------------
  tx, schedule = make_optimizer(config)
  abstract_state = jax.eval_shape(lambda: init_state(experiment, tx))
  state_sharding = sharding.fsdp_sharding(mesh, abstract_state)
  replicated = sharding.replicated(mesh)
  num_params = sum(x.size for x in jax.tree.leaves(abstract_state["params"]))
  logging.info("model %s: %.2fM parameters", config.model.size, num_params / 1e6)

  # --- Initial or restored state --------------------------------------------------------------
  checkpoints = checkpoint_lib.Checkpointer(
    os.path.join(workdir, "checkpoints"), max_to_keep=config.keep_checkpoints
  )
  writer = metrics_lib.MetricWriter(workdir, config.num_steps, config.batch_size)
  restored = checkpoints.restore(
    checkpoint_lib.abstract_like(abstract_state, state_sharding), earlier_layouts=EARLIER_LAYOUTS
  )
  if restored is None and config.reward.init_from:
    base_step, base = restore_params(experiment, config.reward.init_from)
    logging.info("reward fine-tuning from step %d of %s", base_step, config.reward.init_from)
    state = jax.jit(lambda p: init_state(experiment, tx, p), out_shardings=state_sharding)(base)
  elif restored is None:
    state = jax.jit(lambda: init_state(experiment, tx), out_shardings=state_sharding)()
  else:
    step, state, _ = restored
    logging.info("resumed from step %d", step)
    writer.event("resume", step=step)

  # --- The jitted step --------------------------------------------------------------------------
  # Every process holds the same pool and key; jit makes them global replicated arrays once.
  global_arrays = jax.jit(lambda *arrays: arrays, out_shardings=replicated)
  pool, base_key = global_arrays(pool, jax.random.key(config.seed))
  data_input = pool
  if config.data.cache:
    data_input = _build_video_cache(experiment, source, pool, base_key)
  step_fn = jax.jit(
    make_train_step(experiment, tx, schedule, source),
    in_shardings=(state_sharding, None, replicated),  # the data input keeps its own sharding
    out_shardings=(state_sharding, replicated),
    donate_argnums=(0,),
  )
  data_fn = jax.jit(functools.partial(experiment.training_batch, source))

  # --- Loop -----------------------------------------------------------------------------------
  preemption = _Preemption()
  step = int(state["step"])
  data_seconds = None
  last_saved = step
  try:
    while step < config.num_steps and not preemption.check(step):
      state, step_metrics = step_fn(state, data_input, base_key)
      step += 1
      logged = step % config.log_every_steps == 0 or step == config.num_steps
      saved = step % config.checkpoint_every_steps == 0
      if logged or saved:  # a non-finite state is never logged as good or saved
        values = finite_metrics(step, step_metrics)
      if logged:
        if data_seconds is None:  # the data generation alone, timed once after compiling
          data_seconds = _time_calls(data_fn, (data_input, base_key))
        writer.write(step, values, data_seconds=data_seconds)
      if saved:
        checkpoints.save(step, state, metadata={"step": step})
        last_saved = step
    if step != last_saved:
      finite_metrics(step, step_metrics)
      checkpoints.save(step, state, metadata={"step": step}, force=True)
    checkpoints.wait()
  finally:
    preemption.restore()
    checkpoints.close()
    writer.close()
  if preemption.requested:
    logging.warning("stopped at step %d after SIGTERM; rerun the same command to resume", step)
  return state


def _build_video_cache(
  experiment: Experiment, source: sims.Pool | str, pool: sims.Pool | None, base_key: jax.Array
) -> jax.Array:
  """The `data.cache` videos: the streaming run's first batches, simulated once."""
  config = experiment.config
  start = time.perf_counter()
  batch_fn = jax.jit(
    lambda pool, step: experiment.video_batch(
      source if pool is None else pool, step_keys(base_key, step)[0]
    )
  )
  cache = video_cache.build_cache(
    functools.partial(batch_fn, pool), config.data.cache, config.batch_size, experiment.mesh
  )
  cache.block_until_ready()
  logging.info(
    "video cache: %d videos, %.1f MiB per device, simulated in %.0f s",
    config.data.cache,
    cache.nbytes / experiment.mesh.size / 2**20,
    time.perf_counter() - start,
  )
  return cache


def finite_metrics(step: int, step_metrics: dict[str, jax.Array]) -> dict[str, float]:
  """The step's metrics as floats; a FloatingPointError if any (the loss, say) is not finite."""
  values = {k: float(v) for k, v in jax.device_get(step_metrics).items()}
  if not all(math.isfinite(value) for value in values.values()):
    raise FloatingPointError(
      f"non-finite metrics at step {step}: {values}; stopped without saving this state"
    )
  return values
