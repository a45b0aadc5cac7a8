"""Evaluation: roll out held-out cases from their context frames and write `report.md`.

For each split in `config.eval.splits` a fixed set of cases (deterministic from the config seed)
is simulated, the model generates the frames after the context, and the report shows the
per-split error and the ground truth beside the prediction as GIFs and a PNG filmstrip.
"""

from __future__ import annotations

import os
import zlib

import imageio.v2 as imageio
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import logging
from flax import nnx

import sims
from experiments import train
from worldmodel import checkpoint as checkpoint_lib
from worldmodel import sharding

REPORT_DIR = "report"


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


def eval_cases(experiment: train.Experiment, split: str) -> sims.Trajectory:
  """The fixed evaluation cases of a split (the same for every run with this seed)."""
  config = experiment.config
  key = jax.random.fold_in(jax.random.key(config.seed + 1), zlib.crc32(split.encode()))
  state = experiment.scene.sample(key, config.eval.num_cases, split)
  return experiment.scene.rollout(state, config.video.num_frames)


def predict(experiment: train.Experiment, params: nnx.State, frames: jax.Array) -> jax.Array:
  """Generated videos [n, T, H, W, 3] from the context frames of `frames`, in eval batches."""
  config = experiment.config
  batch = config.eval.batch_size

  @jax.jit
  def sample(params, frames, key):
    mask = experiment.context_mask(frames.shape[0])
    return experiment.objective.sample(
      experiment.apply_fn(params), key, frames, mask, config.eval.sample_steps
    )

  key = jax.random.key(config.seed + 2)
  chunks = []
  for start in range(0, frames.shape[0], batch):
    chunk = frames[start : start + batch]
    pad = batch - chunk.shape[0]
    padded = jnp.concatenate([chunk, jnp.repeat(chunk[-1:], pad, axis=0)]) if pad else chunk
    chunks.append(sample(params, padded, jax.random.fold_in(key, start))[: chunk.shape[0]])
  return jnp.concatenate(chunks)


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


def run(
  config: ml_collections.ConfigDict, workdir: str, params: nnx.State | None = None
) -> dict[str, dict[str, float]]:
  """Evaluates the newest checkpoint (or `params`) and writes `report.md`; returns the numbers."""
  experiment = train.make_experiment(config)
  step = None
  if params is None:
    step, params = restore_params(experiment, workdir)
  out_dir = os.path.join(workdir, REPORT_DIR)
  os.makedirs(out_dir, exist_ok=True)
  context = config.video.context_frames
  results, figures = {}, []
  for split in config.eval.splits:
    truth = sims.render(eval_cases(experiment, split), config.video.resolution)
    prediction = predict(experiment, params, truth)
    error = np.asarray(jnp.mean((prediction - truth)[:, context:] ** 2, axis=(0, 2, 3, 4)))
    results[split] = {"frame_mse": float(error.mean()), "last_frame_mse": float(error[-1])}
    video = side_by_side(truth, prediction, config.eval.gif_scale)
    gif, png = f"{split}_rollouts.gif", f"{split}_filmstrip.png"
    imageio.mimsave(os.path.join(out_dir, gif), list(video), duration=200, loop=0)
    strip = filmstrip(truth, prediction, config.eval.gif_scale)
    imageio.imwrite(os.path.join(out_dir, png), strip)
    figures.append((split, gif, png))
    logging.info("eval %s: %s", split, results[split])
  _write_report(workdir, config, step, results, figures)
  return results


def _write_report(workdir, config, step, results, figures) -> None:
  lines = [
    f"# {config.task}: DiT-{config.model.size}, data {config.data.dataset_size}",
    "",
    f"Checkpoint step: {step if step is not None else config.num_steps}. "
    f"{config.eval.num_cases} held-out cases per split; the model sees the first "
    f"{config.video.context_frames} of {config.video.num_frames} frames and generates the rest "
    f"in {config.eval.sample_steps} sampling steps.",
    "",
    "| split | mean squared error per pixel (generated frames) | last frame |",
    "|---|---|---|",
  ]
  for split, numbers in results.items():
    lines.append(f"| {split} | {numbers['frame_mse']:.5f} | {numbers['last_frame_mse']:.5f} |")
  for split, gif, png in figures:
    lines += [
      "",
      f"## {split}: ground truth (left) and prediction (right)",
      "",
      f"![{split} rollouts]({REPORT_DIR}/{gif})",
      "",
      f"![{split} filmstrip]({REPORT_DIR}/{png})",
    ]
  with open(os.path.join(workdir, "report.md"), "w") as f:
    f.write("\n".join(lines) + "\n")
