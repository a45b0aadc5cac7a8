"""Evaluation: roll out held-out cases from their context frames, score them, write the report.

For each split in `config.eval.splits` a fixed set of cases (a grid deterministic from the config
seed, simulated now or read from a stored eval set) is rolled out by the model from its context
frames. The study's velocity-error probe scores the generated frames (`velocity_probe`), and the
run's workdir gets `eval.json` with the numbers and `report.md` with the table, the heat map,
error against velocity, a filmstrip and the best and worst rollouts of each split.
"""

from __future__ import annotations

import dataclasses
import json
import os
import zlib
from typing import Any

import imageio.v2 as imageio
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import logging
from flax import nnx

import sims
from experiments import eval_sets, phyworld_hdf5, plots, train, velocity_probe
from worldmodel import checkpoint as checkpoint_lib
from worldmodel import sharding

REPORT_DIR = "report"
FILMSTRIP_CASES = 4


def restore_params(experiment: train.Experiment, workdir: str) -> tuple[int, nnx.State]:
  """The EMA parameters of the newest good checkpoint in `workdir`."""
  tx, _ = train.make_optimizer(experiment.config)
  abstract_state = jax.eval_shape(lambda: train.init_state(experiment, tx))
  shardings = sharding.fsdp_sharding(experiment.mesh, abstract_state)
  directory = os.path.join(workdir, "checkpoints")
  with checkpoint_lib.Checkpointer(directory) as checkpoints:
    restored = checkpoints.restore(checkpoint_lib.abstract_like(abstract_state, shardings))
  if restored is None:
    raise FileNotFoundError(f"no checkpoint in {directory}; train first (--mode=train)")
  step, state, _ = restored
  return step, state["ema"]


def eval_cases(experiment: train.Experiment, split: str) -> sims.BallState:
  """The split's evaluation grid as initial states, deterministic from the config seed.

  The grid (`Scene.eval_params`) is thinned evenly to at most `eval.num_cases` cases; case i is
  placed with the key folded from the seed, the split name and i.
  """
  config = experiment.config
  params = experiment.scene.eval_params(split, config.eval.grid_points)
  if len(params) > config.eval.num_cases:
    keep = np.unique(np.linspace(0, len(params) - 1, config.eval.num_cases).round().astype(int))
    params = params[keep]
  key = jax.random.fold_in(jax.random.key(config.seed + 1), zlib.crc32(split.encode()))
  keys = jax.vmap(jax.random.fold_in, (None, 0))(key, jnp.arange(len(params)))
  return experiment.scene.place(keys, jnp.asarray(params))


def make_predictor(experiment: train.Experiment):
  """A jitted `(params, frames, key) -> generated frames` from the context frames of `frames`."""
  config = experiment.config

  @jax.jit
  def predict(params, frames, key):
    mask = experiment.context_mask(frames.shape[0])
    return experiment.objective.sample(
      experiment.apply_fn(params), key, frames, mask, config.eval.sample_steps
    )

  return predict


def to_uint8(frames: np.ndarray, scale: int) -> np.ndarray:
  frames = np.asarray(frames)
  if scale > 1:
    frames = frames.repeat(scale, axis=-3).repeat(scale, axis=-2)
  return (np.clip(frames, 0.0, 1.0) * 255).round().astype(np.uint8)


def side_by_side(truth: np.ndarray, prediction: np.ndarray, scale: int) -> np.ndarray:
  """[T, rows * H, 2 * W + gap, 3] uint8: each case's ground truth (left) and prediction."""
  truth, prediction = to_uint8(truth, scale), to_uint8(prediction, scale)
  gap = np.full((*truth.shape[:3], 4, 3), 128, np.uint8)
  rows = np.concatenate([truth, gap, prediction], axis=3)  # [n, T, H, 2W + gap, 3]
  separator = np.full((rows.shape[0], rows.shape[1], 4, *rows.shape[3:]), 128, np.uint8)
  rows = np.concatenate([rows, separator], axis=2)
  return np.concatenate(list(rows), axis=1)


def filmstrip(truth: np.ndarray, prediction: np.ndarray, scale: int) -> np.ndarray:
  """One image: per case, a row of ground-truth frames above a row of predicted frames."""
  pair = np.stack([to_uint8(truth, scale), to_uint8(prediction, scale)], axis=1)  # [n,2,T,H,W,3]
  pair = np.pad(pair, ((0, 0), (0, 0), (0, 0), (0, 2), (0, 2), (0, 0)), constant_values=128)
  n, _, t, h, w, c = pair.shape
  rows = pair.transpose(0, 1, 3, 2, 4, 5).reshape(n, 2 * h, t * w, c)
  rows = np.pad(rows, ((0, 0), (0, 6), (0, 0), (0, 0)), constant_values=255)
  return rows.reshape(n * (2 * h + 6), t * w, c)


@dataclasses.dataclass
class _Extremes:
  """The best- and worst-scoring cases seen so far, with their frames."""

  best: tuple[float, np.ndarray, np.ndarray] | None = None
  worst: tuple[float, np.ndarray, np.ndarray] | None = None

  def update(self, errors: np.ndarray, truth: np.ndarray, prediction: np.ndarray) -> None:
    if not np.isfinite(errors).any():
      return
    low, high = int(np.nanargmin(errors)), int(np.nanargmax(errors))
    if self.best is None or errors[low] < self.best[0]:
      self.best = (float(errors[low]), truth[low], prediction[low])
    if self.worst is None or errors[high] > self.worst[0]:
      self.worst = (float(errors[high]), truth[high], prediction[high])


def to_8bit(frames: jax.Array) -> jax.Array:
  """Frames rounded to 8-bit levels, as stored eval sets (and the study's videos) hold them."""
  return jnp.round(frames * 255.0) / 255.0


def simulated_split(experiment: train.Experiment, split: str) -> tuple[sims.Trajectory, Any]:
  """A split's cases simulated now: the trajectory and a `frames(index)` renderer."""
  config = experiment.config
  traj = experiment.scene.rollout(eval_cases(experiment, split), config.video.num_frames)

  def frames(index: np.ndarray) -> jax.Array:
    chunk = jax.tree.map(lambda x: x[index], traj)
    return to_8bit(sims.render(chunk, config.video.resolution))

  return traj, frames


def stored_split(arrays: dict[str, np.ndarray]) -> tuple[sims.Trajectory, Any]:
  """A split read from an eval set: the trajectory and a `frames(index)` reader."""
  traj = sims.Trajectory(
    *(jnp.asarray(arrays[f]) for f in ("position", "velocity", "radius", "color", "shape"))
  )
  return traj, lambda index: jnp.asarray(arrays["frames"][index], jnp.float32) / 255.0


def evaluate_split(
  experiment: train.Experiment,
  params: nnx.State,
  split: str,
  predict: Any,
  cases: tuple[sims.Trajectory, Any],
) -> tuple[velocity_probe.CaseErrors, float, _Extremes, np.ndarray]:
  """Errors of every case of a split, its frame MSE, best and worst rollouts and a filmstrip."""
  config = experiment.config
  traj_all, frames = cases
  batch, num_cases = config.eval.batch_size, traj_all.radius.shape[0]
  key = jax.random.fold_in(jax.random.key(config.seed + 2), zlib.crc32(split.encode()))
  errors, squared, extremes = None, [], _Extremes()
  for start in range(0, num_cases, batch):
    index = np.minimum(np.arange(start, start + batch), num_cases - 1)  # pad the last batch
    traj = jax.tree.map(lambda x, index=index: x[index], traj_all)
    truth = frames(index)
    prediction = predict(params, truth, jax.random.fold_in(key, start))
    real = slice(0, min(batch, num_cases - start))
    found = velocity_probe.case_errors(
      experiment.scene, traj, truth, prediction, config.video.context_frames, split
    )
    found = found.select(real)
    errors = found if errors is None else errors.concatenate(found)
    generated = slice(config.video.context_frames, None)
    squared.append(np.asarray(jnp.mean((prediction - truth)[real, generated] ** 2, (2, 3, 4))))
    extremes.update(found.velocity_error, np.asarray(truth[real]), np.asarray(prediction[real]))
    if start == 0:
      shown = slice(0, min(FILMSTRIP_CASES, real.stop))
      strip = filmstrip(truth[shown], prediction[shown], config.eval.gif_scale)
  frame_mse = np.concatenate(squared)
  return errors, float(frame_mse.mean()), extremes, strip


def eval_set_name(config: ml_collections.ConfigDict) -> str:
  return f"{config.task}_eval_{config.video.resolution}px"


def write_eval_set(config: ml_collections.ConfigDict, data_dir: str) -> str:
  """Writes the config's evaluation cases (every split) as a TFDS array_record eval set."""
  experiment = train.make_experiment(config)
  splits = {}
  for split in config.eval.splits:
    traj, frames = simulated_split(experiment, split)
    count = traj.radius.shape[0]
    chunks = [
      np.asarray(frames(np.arange(start, min(start + config.eval.batch_size, count))))
      for start in range(0, count, config.eval.batch_size)
    ]
    params = np.asarray(experiment.scene.params_of(velocity_probe.initial_state(traj)))
    splits[split] = {
      "frames": (np.concatenate(chunks) * 255).round().astype(np.uint8),
      "params": params,
      "level": velocity_probe.sublevels(experiment.scene, params, split),
      **{f: np.asarray(getattr(traj, f)) for f in ("position", "velocity", "radius", "color")},
      "shape": np.asarray(traj.shape, np.int32),
    }
  return eval_sets.write_eval_set(
    data_dir, eval_set_name(config), splits, _eval_set_metadata(experiment, source="simulated")
  )


def import_phyworld_hdf5(config: ml_collections.ConfigDict, path: str, data_dir: str) -> str:
  """Converts one of the study's HDF5 eval files into an eval set for `--config.eval.dataset`.

  Frames are resized to the config's resolution; the file's videos must have its frame count.
  """
  experiment = train.make_experiment(config)
  data = phyworld_hdf5.read_phyworld_hdf5(path, resolution=config.video.resolution)
  if data["frames"].shape[1] != config.video.num_frames:
    raise ValueError(
      f"{path} has {data['frames'].shape[1]} frames per video; the config has "
      f"{config.video.num_frames} (set --config.video.num_frames)"
    )
  splits = phyworld_hdf5.to_eval_splits(experiment.scene, data)
  return eval_sets.write_eval_set(
    data_dir, eval_set_name(config), splits, _eval_set_metadata(experiment, source=path)
  )


def _eval_set_metadata(experiment: train.Experiment, source: str) -> dict[str, Any]:
  config = experiment.config
  return {
    "task": config.task,
    "resolution": config.video.resolution,
    "num_frames": config.video.num_frames,
    "seed": config.seed,
    "grid_points": config.eval.grid_points,
    "num_cases": config.eval.num_cases,
    "param_names": list(experiment.scene.param_names),
    "source": source,
  }


def _stored_splits(config: ml_collections.ConfigDict) -> dict[str, dict[str, np.ndarray]]:
  data_dir, name = os.path.split(os.path.normpath(config.eval.dataset))
  splits, metadata = eval_sets.read_eval_set(data_dir, name, list(config.eval.splits))
  for field in ("task", "resolution", "num_frames"):
    expected = config.task if field == "task" else config.video[field]
    if metadata.get(field) != expected:
      raise ValueError(
        f"eval set {config.eval.dataset} has {field}={metadata.get(field)!r}; "
        f"the config has {expected!r}"
      )
  return splits


def run(
  config: ml_collections.ConfigDict, workdir: str, params: nnx.State | None = None
) -> dict[str, dict[str, float]]:
  """Evaluates the newest checkpoint (or `params`); writes eval.json and report.md."""
  experiment = train.make_experiment(config)
  step = config.num_steps
  if params is None:
    step, params = restore_params(experiment, workdir)
  out_dir = os.path.join(workdir, REPORT_DIR)
  os.makedirs(out_dir, exist_ok=True)
  scene, predict = experiment.scene, make_predictor(experiment)
  stored = _stored_splits(config) if config.eval.dataset else None
  summary, per_case, figures = {}, {}, {}
  for split in config.eval.splits:
    cases = stored_split(stored[split]) if stored else simulated_split(experiment, split)
    errors, frame_mse, extremes, strip = evaluate_split(experiment, params, split, predict, cases)
    imageio.imwrite(os.path.join(out_dir, f"{split}_filmstrip.png"), strip)
    per_case[split] = errors
    summary[split] = {
      **velocity_probe.summarize(scene, errors),
      "frame_mse": frame_mse,
    }
    for level in sorted(set(errors.level) - {split}):
      mask = errors.level == level
      summary[level] = velocity_probe.summarize(scene, errors.select(mask))
    figures[split] = {}
    for kind in ("best", "worst"):
      case = getattr(extremes, kind)
      if case is None:
        continue
      error, truth, prediction = case
      video = side_by_side(truth[None], prediction[None], config.eval.gif_scale)
      name = f"{split}_{kind}.gif"
      imageio.mimsave(os.path.join(out_dir, name), list(video), duration=200, loop=0)
      figures[split][kind] = (name, error)
    logging.info("eval %s: %s", split, summary[split])
  plots.error_heatmap(scene, per_case, os.path.join(out_dir, "error_heatmap.png"))
  plots.error_vs_velocity(scene, per_case, os.path.join(out_dir, "error_vs_velocity.png"))
  _write_eval_json(workdir, config, step, summary)
  _write_report(workdir, config, step, summary, figures)
  return summary


def _write_eval_json(workdir, config, step, summary) -> None:
  splits = list(config.eval.splits)
  record = {
    "task": config.task,
    "model_size": config.model.size,
    "dataset_size": config.data.dataset_size,
    "step": int(step),
    "resolution": config.video.resolution,
    "splits": summary,
    "id_split": "id",
    "ood_splits": [s for s in splits if s.startswith("ood_")],
  }
  with open(os.path.join(workdir, "eval.json"), "w") as f:
    json.dump(record, f, indent=2, allow_nan=True)


def _write_report(workdir, config, step, summary, figures) -> None:
  video = config.video
  lines = [
    f"# {config.task}: DiT-{config.model.size}, data {config.data.dataset_size}, step {step}",
    "",
    f"The model sees the first {video.context_frames} of {video.num_frames} frames "
    f"({video.resolution} x {video.resolution}) and generates the rest in "
    f"{config.eval.sample_steps} sampling steps. Velocity errors are in world units / s: the "
    "study's parser (colour thresholds, mask centroid, forward differences) on the generated "
    "frames against the simulator's velocities, over generated frame pairs with the ball fully "
    "in view (post-collision pairs only for collisions). The floor is the same parser on the "
    "ground-truth frames. 'Mean abs error' is the paper's formula, the mean over frame pairs of "
    "|v - v_true|; 'mean-then-abs' is its code's |mean v - mean v_true|, the variant behind its "
    "published numbers (Figure 3, and the 0.0099 floor at 128 x 128).",
    "",
    "| split | cases (scored) | mean abs error (floor) | mean-then-abs (floor) "
    "| study filter: mean abs (floor, n) | frame MSE |",
    "|---|---|---|---|---|---|",
  ]
  for split, numbers in summary.items():
    mse = f"{numbers['frame_mse']:.5f}" if "frame_mse" in numbers else ""
    lines.append(
      f"| {split} | {numbers['cases']} ({numbers['count']}) "
      f"| {numbers['velocity_error']:.4f} ({numbers['floor']:.4f}) "
      f"| {numbers['velocity_error_mean_then_abs']:.4f} ({numbers['floor_mean_then_abs']:.4f}) "
      f"| {numbers['velocity_error_study_filter']:.4f} ({numbers['floor_study_filter']:.4f}, "
      f"{numbers['count_study_filter']}) | {mse} |"
    )
  lines += [
    "",
    "The study filter drops cases whose radius the study's evaluator skipped (r < 0.6 for one "
    "ball, r <= 0.5 for either ball in a collision).",
    "",
    f"![error heat map]({REPORT_DIR}/error_heatmap.png)",
    "",
    f"![error vs velocity]({REPORT_DIR}/error_vs_velocity.png)",
  ]
  for split, cases in figures.items():
    lines += [
      "",
      f"## {split}",
      "",
      "The first cases, frames left to right, ground truth above the prediction:",
      "",
      f"![{split} filmstrip]({REPORT_DIR}/{split}_filmstrip.png)",
      "",
      "Best and worst cases, ground truth (left) beside the prediction (right):",
      "",
    ]
    for kind, (name, error) in cases.items():
      lines += [
        f"{kind} case (velocity error {error:.4f}):",
        "",
        f"![{split} {kind}]({REPORT_DIR}/{name})",
        "",
      ]
  with open(os.path.join(workdir, "report.md"), "w") as f:
    f.write("\n".join(lines) + "\n")
