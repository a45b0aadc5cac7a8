"""Videos per second of the 3-D ray caster (`sims.world3d.render.render3d`).

    python -m benchmarks.render3d --resolution 64 --frames 32 --batch 8 --objects 1,2,10

For each object count, random spheres and cubes (half of each, tumbling, in front of the default
camera) are rendered by one jitted call, compiled ahead of time and timed with
`block_until_ready`, best of `--repeats`; the same is done for the gradient of the frames' sum
w.r.t. the positions and sizes on `--grad_batch` videos (the backward pass keeps every
pixel x object x object intermediate: about 150 MB per 64 x 64 frame with 10 objects). Prints one
JSON object.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence

import jax
import jax.numpy as jnp

from benchmarks.sim_throughput import best_seconds, compile_ahead, machine_info
from sims.world3d.bodies import Trajectory3D
from sims.world3d.render import render3d


def random_trajectory(key: jax.Array, batch: int, frames: int, objects: int) -> Trajectory3D:
  """Bodies drifting over the floor in view of the default camera, tumbling about random axes."""
  keys = jax.random.split(key, 5)
  low, high = jnp.array([-2.0, -1.0, 0.3]), jnp.array([2.0, 3.0, 1.5])
  start = jax.random.uniform(keys[0], (batch, 1, objects, 3), minval=low, maxval=high)
  velocity = jax.random.normal(keys[1], (batch, 1, objects, 3)) * 0.5
  time = jnp.arange(frames, dtype=jnp.float32)[None, :, None, None] * 0.05
  axis = jax.random.normal(keys[2], (batch, 1, objects, 3))
  axis = axis / jnp.linalg.norm(axis, axis=-1, keepdims=True)
  half_angle = jnp.broadcast_to(time, (batch, frames, objects, 1)) * 2.0
  orientation = jnp.concatenate([jnp.cos(half_angle), jnp.sin(half_angle) * axis], -1)
  return Trajectory3D(
    position=start + velocity * time,
    orientation=orientation,
    velocity=jnp.broadcast_to(velocity, (batch, frames, objects, 3)),
    angular_velocity=jnp.zeros((batch, frames, objects, 3)),
    shape=jnp.arange(objects)[None, :].repeat(batch, 0) % 2,
    size=jax.random.uniform(keys[3], (batch, objects), minval=0.15, maxval=0.35),
    mass=jnp.ones((batch, objects)),
    color=jax.random.uniform(keys[4], (batch, objects, 3)),
    active=jnp.ones((batch, objects), bool),
  )


def benchmark(
  batch: int, grad_batch: int, frames: int, objects: int, resolution: int, repeats: int
) -> dict[str, float]:
  """Rates and compile times of the frames and of their gradient for one object count."""
  traj = random_trajectory(jax.random.key(objects), batch, frames, objects)
  few = jax.tree.map(lambda x: x[:grad_batch], traj)

  def forward(traj):
    return render3d(traj, resolution)

  def backward(position, size):
    return jax.grad(lambda p, s: forward(few.replace(position=p, size=s)).sum(), (0, 1))(
      position, size
    )

  forward_fn, forward_compile_s = compile_ahead(forward, traj)
  forward_s = best_seconds(lambda _: forward_fn(traj), repeats)
  backward_fn, backward_compile_s = compile_ahead(backward, few.position, few.size)
  backward_s = best_seconds(lambda _: backward_fn(few.position, few.size), repeats)
  return {
    "videos_per_s": round(batch / forward_s, 2),
    "render_s": round(forward_s, 4),
    "compile_s": round(forward_compile_s, 2),
    "grad_videos_per_s": round(grad_batch / backward_s, 2),
    "grad_s": round(backward_s, 4),
    "grad_compile_s": round(backward_compile_s, 2),
  }


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--resolution", type=int, default=64, help="frame height and width")
  parser.add_argument("--frames", type=int, default=32)
  parser.add_argument("--batch", type=int, default=8, help="videos per jitted call")
  parser.add_argument("--grad_batch", type=int, default=1, help="videos per gradient call")
  parser.add_argument("--objects", default="1,2,10", help="comma-separated bodies per video")
  parser.add_argument("--repeats", type=int, default=3, help="timed runs; the best is kept")
  return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> dict[str, object]:
  """Runs the benchmark, prints it as one JSON object and returns it."""
  args = parse_args(argv)
  settings = {
    k: getattr(args, k) for k in ("resolution", "frames", "batch", "grad_batch", "repeats")
  }
  by_objects = {
    objects: benchmark(
      args.batch, args.grad_batch, args.frames, int(objects), args.resolution, args.repeats
    )
    for objects in args.objects.split(",")
  }
  report = {"machine": machine_info(), "settings": settings, "objects": by_objects}
  print(json.dumps(report, indent=2))
  return report


if __name__ == "__main__":
  main()
