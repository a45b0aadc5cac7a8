"""The trainer: a video DiT learning frame prediction from simulator data made inside the step.

Sections, in order: setup (scene, data source, mesh) -> model and optimizer by shape ->
shardings -> initial or restored state -> the jitted step (simulate, render, denoise, update)
-> the loop (metrics, checkpoints, SIGTERM) -> evaluation and report.
"""

from __future__ import annotations

import dataclasses
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

import sims
from experiments import metrics as metrics_lib
from worldmodel import checkpoint as checkpoint_lib
from worldmodel import data, diffusion, dit, sharding

TrainState = dict[str, Any]  # {"step", "params", "ema", "opt"}


@dataclasses.dataclass(frozen=True)
class Experiment:
  """Everything a config defines that training and evaluation share."""

  config: ml_collections.ConfigDict
  scene: sims.Scene
  objective: diffusion.Objective
  graphdef: nnx.GraphDef
  mesh: jax.sharding.Mesh

  @property
  def video_shape(self) -> tuple[int, int, int]:
    video = self.config.video
    return video.num_frames, video.resolution, video.resolution

  def apply_fn(self, params: nnx.State):
    """The denoiser `(noisy, time, context, context_mask) -> output` for given parameters."""
    return nnx.merge(self.graphdef, params)

  def context_mask(self, batch_size: int) -> jax.Array:
    video = self.config.video
    return data.context_mask(batch_size, video.num_frames, video.context_frames)


def build_model(config: ml_collections.ConfigDict, seed: int) -> dit.VideoDiT:
  model, video = config.model, config.video
  return dit.make_dit(
    model.size,
    num_frames=video.num_frames,
    resolution=video.resolution,
    patch_size=tuple(model.patch_size),
    attention=model.attention,
    dtype=jnp.dtype(model.dtype),
    rngs=nnx.Rngs(seed),
  )


def make_experiment(config: ml_collections.ConfigDict) -> Experiment:
  """Validates the config and builds the scene, objective, model structure and mesh."""
  video = config.video
  if not 0 < video.context_frames < video.num_frames:
    raise ValueError(
      f"video.context_frames={video.context_frames} must be in [1, {video.num_frames - 1}]"
    )
  scene = sims.make(config.task, **config.scene_options)
  objective = diffusion.make_objective(config.objective.name, **config.objective.options)
  graphdef, _ = nnx.split(nnx.eval_shape(lambda: build_model(config, config.seed)))
  mesh = sharding.make_mesh(config.mesh.data, config.mesh.fsdp)
  if config.batch_size % mesh.size:
    raise ValueError(f"batch_size={config.batch_size} must divide over {mesh.size} devices")
  return Experiment(config, scene, objective, graphdef, mesh)


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


def init_state(experiment: Experiment, tx: optax.GradientTransformation) -> TrainState:
  params = nnx.state(build_model(experiment.config, experiment.config.seed), nnx.Param)
  return {"step": jnp.zeros((), jnp.int32), "params": params, "ema": params, "opt": tx.init(params)}


def make_train_step(
  experiment: Experiment,
  tx: optax.GradientTransformation,
  schedule: optax.Schedule,
  source: sims.Pool | str,
):
  """The pure update: simulate and render a batch, take one optimizer step, update the EMA.

  The returned `train_step(state, pool, base_key)` takes the Pool as an argument (so a 3M-entry
  pool is an input buffer, not a compile-time constant); with a named split, pool is None.
  """
  config = experiment.config
  num_frames, resolution, _ = experiment.video_shape
  batch_sharding = sharding.batch_sharding(experiment.mesh)
  mask = experiment.context_mask(config.batch_size)

  def train_step(state: TrainState, pool: sims.Pool | None, base_key: jax.Array):
    key = jax.random.fold_in(base_key, state["step"])
    data_key, loss_key = jax.random.split(key)
    frames = data.video_batch(
      experiment.scene,
      source if pool is None else pool,
      data_key,
      config.batch_size,
      num_frames,
      resolution,
    )
    frames = jax.lax.with_sharding_constraint(frames, batch_sharding)

    def loss_fn(params):
      return experiment.objective.loss(experiment.apply_fn(params), loss_key, frames, mask)

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
    }
    new_state = {"step": state["step"] + 1, "params": params, "ema": ema, "opt": opt_state}
    return new_state, step_metrics

  return train_step


def _save_config(config: ml_collections.ConfigDict, workdir: str) -> None:
  """Writes config.json; an earlier, different config is kept as config.<n>.json."""
  path = os.path.join(workdir, "config.json")
  text = config.to_json_best_effort(indent=2, sort_keys=True)
  if os.path.exists(path):
    with open(path) as f:
      if f.read() == text:
        return
    index = 1
    while os.path.exists(os.path.join(workdir, f"config.{index}.json")):
      index += 1
    os.rename(path, os.path.join(workdir, f"config.{index}.json"))
  with open(path, "w") as f:
    f.write(text)


def _time_calls(fn, args, calls: int = 3) -> float:
  best = float("inf")
  for _ in range(calls):
    start = time.perf_counter()
    jax.block_until_ready(fn(*args))
    best = min(best, time.perf_counter() - start)
  return best


class _Preemption:
  """Turns SIGTERM into a flag the loop checks after each step."""

  def __init__(self):
    self.requested = False
    self._previous = signal.signal(signal.SIGTERM, self._handle)

  def _handle(self, signum, frame):
    logging.warning("SIGTERM received: saving a checkpoint and stopping")
    self.requested = True

  def restore(self):
    signal.signal(signal.SIGTERM, self._previous)


def run(config: ml_collections.ConfigDict, workdir: str) -> TrainState:
  """Trains, resuming from the newest good checkpoint in `workdir`; returns the final state."""
  # --- Setup --------------------------------------------------------------------------------
  os.makedirs(workdir, exist_ok=True)
  experiment = make_experiment(config)
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
  restored = checkpoints.restore(checkpoint_lib.abstract_like(abstract_state, state_sharding))
  if restored is None:
    state = jax.jit(lambda: init_state(experiment, tx), out_shardings=state_sharding)()
  else:
    step, state, _ = restored
    logging.info("resumed from step %d", step)
    writer.event("resume", step=step)

  # --- The jitted step --------------------------------------------------------------------------
  pool = jax.device_put(pool, replicated) if pool is not None else None
  step_fn = jax.jit(
    make_train_step(experiment, tx, schedule, source),
    in_shardings=(state_sharding, replicated, replicated),
    out_shardings=(state_sharding, replicated),
    donate_argnums=(0,),
  )
  num_frames, resolution, _ = experiment.video_shape
  data_fn = jax.jit(
    lambda pool, key: data.video_batch(
      experiment.scene,
      source if pool is None else pool,
      key,
      config.batch_size,
      num_frames,
      resolution,
    ),
    out_shardings=sharding.batch_sharding(mesh),
  )
  base_key = jax.random.key(config.seed)

  # --- Loop -----------------------------------------------------------------------------------
  preemption = _Preemption()
  step = int(state["step"])
  data_seconds = None
  last_saved = step
  try:
    while step < config.num_steps and not preemption.requested:
      state, step_metrics = step_fn(state, pool, base_key)
      step += 1
      if step % config.log_every_steps == 0 or step == config.num_steps:
        values = {k: float(v) for k, v in jax.device_get(step_metrics).items()}
        if not all(map(_finite, values.values())):
          raise FloatingPointError(f"non-finite metrics at step {step}: {values}")
        if data_seconds is None:  # the data generation alone, timed once after compiling
          data_seconds = _time_calls(data_fn, (pool, base_key))
        writer.write(step, values, data_seconds=data_seconds)
      if step % config.checkpoint_every_steps == 0:
        checkpoints.save(step, state, metadata={"step": step})
        last_saved = step
    if step != last_saved:
      checkpoints.save(step, state, metadata={"step": step}, force=True)
    checkpoints.wait()
  finally:
    preemption.restore()
    checkpoints.close()
    writer.close()
  if preemption.requested:
    logging.warning("stopped at step %d after SIGTERM; rerun the same command to resume", step)
  return state


def _finite(value: float) -> bool:
  return value == value and abs(value) != float("inf")
