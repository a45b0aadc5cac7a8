"""A fixed set of training videos simulated once, for scenes too slow to simulate every step.

`data.cache = N` replaces the in-step simulator by N videos made once, on device, before training:
the cache holds exactly the first N / batch_size batches that the streaming run would draw (the
same keys, `data.batch_key`), so a cached run trains on a subset of the streaming run's data, as
the study trained on fixed datasets. Frames are stored as 8-bit levels (the study's videos are
8-bit; 4 times less memory than float32) and sharded over the mesh along the example axis like a
batch. Each step draws batch_size indices uniformly from the whole cache; the draw depends on the
step's key only, so the data stream does not depend on the mesh.
"""

from __future__ import annotations

import functools
import os

import jax
import jax.numpy as jnp
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from worldmodel import sharding

# The cache may take at most this fraction of one device's memory.
MAX_MEMORY_FRACTION = 0.5


def cache_bytes(num_videos: int, num_frames: int, resolution: int) -> int:
  """Bytes of a cache of `num_videos` 8-bit RGB videos."""
  return num_videos * num_frames * resolution * resolution * 3


def device_memory_bytes(device: jax.Device) -> int:
  """One device's memory: the accelerator's limit, or the host's physical memory on a CPU."""
  stats = device.memory_stats() if device.platform != "cpu" else None
  if stats and "bytes_limit" in stats:
    return int(stats["bytes_limit"])
  return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def check_cache(
  num_videos: int, batch_size: int, num_frames: int, resolution: int, mesh: Mesh
) -> int:
  """The cache's bytes per device, after checking that it fits (one-line ValueErrors)."""
  if num_videos <= 0 or num_videos % batch_size:
    raise ValueError(
      f"data.cache={num_videos} must be a positive multiple of batch_size={batch_size} "
      "(the cache is the streaming run's first data.cache / batch_size batches); 0 turns it off"
    )
  per_device = cache_bytes(num_videos, num_frames, resolution) // mesh.size
  device = mesh.devices.flat[0]
  budget = MAX_MEMORY_FRACTION * device_memory_bytes(device)
  if device.platform == "cpu":  # a CPU mesh's devices share the host's memory
    budget /= mesh.size
  if per_device > budget:
    raise ValueError(
      f"data.cache={num_videos} needs {per_device / 2**30:.2f} GiB per device "
      f"({num_frames} x {resolution} x {resolution} 8-bit frames per video over {mesh.size} "
      f"devices); at most {budget / 2**30:.2f} GiB ({MAX_MEMORY_FRACTION:.0%} of a device's "
      "memory) is allowed"
    )
  return per_device


def build_cache(batch_fn, num_videos: int, batch_size: int, mesh: Mesh) -> jax.Array:
  """The cache [num_videos, T, H, W, 3] uint8, sharded over the mesh's example axis.

  `batch_fn(step)` (jitted) returns the streaming run's float frames [batch_size, T, H, W, 3] of
  a step; the cache holds steps 0, 1, ... in order, written in place batch by batch.
  """
  examples = NamedSharding(mesh, P(sharding.AXIS_NAMES))
  first = batch_fn(0)

  @functools.partial(jax.jit, donate_argnums=0, out_shardings=examples)
  def write(cache, frames, start):
    frames = jnp.round(jnp.clip(frames, 0.0, 1.0) * 255).astype(jnp.uint8)
    return jax.lax.dynamic_update_slice_in_dim(cache, frames, start, axis=0)

  shape = (num_videos, *first.shape[1:])
  cache = jax.jit(lambda: jnp.zeros(shape, jnp.uint8), out_shardings=examples)()
  cache = write(cache, first, 0)
  for step in range(1, num_videos // batch_size):
    cache = write(cache, batch_fn(step), step * batch_size)
  return cache


def draw(cache: jax.Array, key: jax.Array, batch_size: int) -> jax.Array:
  """A batch [batch_size, T, H, W, 3] of float frames in [0, 1], drawn uniformly from `cache`."""
  index = jax.random.randint(key, (batch_size,), 0, cache.shape[0])
  return jnp.take(cache, index, axis=0).astype(jnp.float32) / 255.0
