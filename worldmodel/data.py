"""Video batches simulated and rendered on device, inside the training step.

Example i of a batch is drawn with its own key, the batch key folded with i, so a batch is the
same whatever the device mesh, and any slice of it can be made on its own. In a sharded step every
device makes just the examples of its own batch shard: hosts never exchange data, and there is no
host input pipeline.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.sharding import Mesh
from jax.sharding import PartitionSpec as P

import sims
from worldmodel import sharding

CONTINUOUS = "continuous"  # dataset_size meaning: fresh draws from the training range every step


def check_dataset_size(scene: sims.Scene, dataset_size: str) -> str:
  """`dataset_size` if the scene has a pool of that level or it is CONTINUOUS, else a ValueError."""
  return sims.check_choice(
    f"dataset_size for scene {scene.name!r}", dataset_size, (*scene.dataset_sizes, CONTINUOUS)
  )


def training_source(scene: sims.Scene, dataset_size: str, seed: int = 0) -> sims.Pool | str:
  """The study's fixed pool for a dataset-size level, or the "train" split for CONTINUOUS."""
  if check_dataset_size(scene, dataset_size) == CONTINUOUS:
    return "train"
  return scene.pool(dataset_size, seed)


def state_batch(
  scene: sims.Scene,
  source: sims.Pool | str,
  key: jax.Array,
  batch_size: int,
  first_index: int | jax.Array = 0,
) -> sims.BallState:
  """The initial states of `video_batch`'s examples."""
  index = first_index + jnp.arange(batch_size)
  keys = jax.vmap(jax.random.fold_in, (None, 0))(key, index)
  state = jax.vmap(lambda example_key: scene.sample(example_key, 1, source))(keys)
  return jax.tree.map(lambda x: x[:, 0], state)  # [batch, 1, ...] -> [batch, ...]


def trajectory_batch(
  scene: sims.Scene,
  source: sims.Pool | str,
  key: jax.Array,
  batch_size: int,
  num_frames: int,
  first_index: int | jax.Array = 0,
) -> sims.Trajectory:
  """The simulated videos of `video_batch`, before rendering."""
  return scene.rollout(state_batch(scene, source, key, batch_size, first_index), num_frames)


def video_batch(
  scene: sims.Scene,
  source: sims.Pool | str,
  key: jax.Array,
  batch_size: int,
  num_frames: int,
  resolution: int,
  first_index: int | jax.Array = 0,
) -> jax.Array:
  """Frames [batch_size, num_frames, H, W, 3] in [0, 1] drawn from a pool or a named split.

  The examples are numbers first_index, first_index + 1, ... of the stream that `key` defines.
  """
  traj = trajectory_batch(scene, source, key, batch_size, num_frames, first_index)
  return sims.render(traj, resolution)


def sharded_video_batch(
  scene: sims.Scene,
  source: sims.Pool | str,
  key: jax.Array,
  batch_size: int,
  num_frames: int,
  resolution: int,
  mesh: Mesh,
) -> jax.Array:
  """`video_batch` as one array sharded over the mesh, each device making only its own shard.

  Call it inside `jax.jit`. The result equals `video_batch(...)` on one device, example for
  example; the pool (if any) and the key are replicated inputs.
  """
  shards = mesh.size
  if batch_size % shards:
    raise ValueError(f"batch_size={batch_size} must divide over the {shards} devices of the mesh")
  local_size = batch_size // shards
  pool = source if isinstance(source, sims.Pool) else None

  def local_batch(pool: sims.Pool | None, key: jax.Array) -> jax.Array:
    shard = jax.lax.axis_index(sharding.AXIS_NAMES)  # row-major over (data, fsdp), as the batch
    return video_batch(
      scene,
      source if pool is None else pool,
      key,
      local_size,
      num_frames,
      resolution,
      first_index=shard * local_size,
    )

  # check_vma=False: the simulator's scans start from constants that become device-varying.
  return jax.shard_map(
    local_batch,
    mesh=mesh,
    in_specs=(P(), P()),
    out_specs=P(sharding.AXIS_NAMES),
    check_vma=False,
  )(pool, key)


def context_mask(batch_size: int, num_frames: int, context_frames: int) -> jax.Array:
  """[batch_size, num_frames] float mask, 1 on the first `context_frames` frames."""
  frame_is_context = (jnp.arange(num_frames) < context_frames).astype(jnp.float32)
  return jnp.broadcast_to(frame_is_context, (batch_size, num_frames))
