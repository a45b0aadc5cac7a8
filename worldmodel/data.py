"""Video batches simulated and rendered on device, inside the training step."""

from __future__ import annotations

import jax
import jax.numpy as jnp

import sims

CONTINUOUS = "continuous"  # dataset_size meaning: fresh draws from the training range every step


def training_source(scene: sims.Scene, dataset_size: str, seed: int = 0) -> sims.Pool | str:
  """The study's fixed pool for a dataset-size level, or the "train" split for CONTINUOUS."""
  if dataset_size == CONTINUOUS:
    return "train"
  sims.check_choice(
    f"dataset_size for scene {scene.name!r}", dataset_size, (*scene.dataset_sizes, CONTINUOUS)
  )
  return scene.pool(dataset_size, seed)


def video_batch(
  scene: sims.Scene,
  source: sims.Pool | str,
  key: jax.Array,
  batch_size: int,
  num_frames: int,
  resolution: int,
) -> jax.Array:
  """Frames [batch_size, num_frames, H, W, 3] in [0, 1] drawn from a pool or a named split."""
  state = scene.sample(key, batch_size, source)
  return sims.render(scene.rollout(state, num_frames), resolution)


def context_mask(batch_size: int, num_frames: int, context_frames: int) -> jax.Array:
  """[batch_size, num_frames] float mask, 1 on the first `context_frames` frames."""
  frame_is_context = (jnp.arange(num_frames) < context_frames).astype(jnp.float32)
  return jnp.broadcast_to(frame_is_context, (batch_size, num_frames))
