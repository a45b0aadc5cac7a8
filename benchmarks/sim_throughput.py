"""Videos per second of the `sims` JAX pipeline next to the study's Box2D + numpy pipeline.

    python -m benchmarks.sim_throughput --resolution 128 --frames 32 --batch 2,4,16,64

For each scene the JAX pipeline (sample, rollout and render in one jitted call) is compiled once,
then timed with `block_until_ready`; the reference pipeline (`box2d_reference.generate_videos`)
is timed at the same resolution and frame count. Both report the best of `--repeats` runs. The
JAX time is also split into sample + rollout and render, each jitted on its own and reported in
seconds per batch. Each batch size in `--batch` is timed and the fastest is reported as the JAX
rate: on a CPU, outputs larger than glibc's 32 MiB mmap threshold are fresh pages on every call,
and the page faults cost more than the rendering (64 videos at 128 x 128 x 32 are 400 MiB), so
small batches win there while accelerators want large ones. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from collections.abc import Callable, Sequence

import Box2D
import jax
import numpy as np

import sims
from benchmarks import box2d_reference


def best_seconds(run: Callable[[int], object], repeats: int) -> float:
  """Shortest wall time of `run(repeat)` over `repeats` calls."""
  best = float("inf")
  for repeat in range(repeats):
    start = time.perf_counter()
    jax.block_until_ready(run(repeat))
    best = min(best, time.perf_counter() - start)
  return best


def compile_ahead(fn: Callable, *args) -> tuple[Callable, float]:
  """Ahead-of-time compiles `jax.jit(fn)` for `args`; returns it and the compile seconds."""
  start = time.perf_counter()
  compiled = jax.jit(fn).lower(*args).compile()
  return compiled, time.perf_counter() - start


def benchmark_scene(
  name: str,
  batches: Sequence[int],
  num_frames: int,
  resolution: int,
  reference_videos: int,
  repeats: int,
) -> dict[str, object]:
  """Throughput of both pipelines on one scene, in videos per second."""
  by_batch = {batch: _time_jax(name, batch, num_frames, resolution, repeats) for batch in batches}
  best_batch = max(by_batch, key=lambda batch: by_batch[batch]["jax_videos_per_s"])
  rng = np.random.default_rng(0)
  box2d_s = best_seconds(
    lambda _: box2d_reference.generate_videos(
      rng, name, reference_videos, resolution=resolution, num_frames=num_frames
    ),
    repeats,
  )
  jax_rate, box2d_rate = by_batch[best_batch]["jax_videos_per_s"], reference_videos / box2d_s
  return {
    "jax_videos_per_s": jax_rate,
    "box2d_videos_per_s": round(box2d_rate, 2),
    "ratio": round(jax_rate / box2d_rate, 2),
    "best_batch": best_batch,
    "by_batch": by_batch,
  }


def _time_jax(
  name: str, batch: int, num_frames: int, resolution: int, repeats: int
) -> dict[str, float]:
  """The JAX pipeline's rate at one batch size, its compile time and its time split."""
  scene = sims.make(name)

  def simulate(key):
    return scene.rollout(scene.sample(key, batch, split="train"), num_frames=num_frames)

  def draw(traj):
    return sims.render(traj, resolution=resolution)

  def pipeline(key):
    return draw(simulate(key))

  keys = [jax.random.key(repeat) for repeat in range(repeats)]
  pipeline_fn, compile_s = compile_ahead(pipeline, keys[0])
  jax_s = best_seconds(lambda repeat: pipeline_fn(keys[repeat]), repeats)
  simulate_fn, _ = compile_ahead(simulate, keys[0])
  traj = simulate_fn(keys[0])
  draw_fn, _ = compile_ahead(draw, traj)
  simulate_s = best_seconds(lambda repeat: simulate_fn(keys[repeat]), repeats)
  draw_s = best_seconds(lambda _: draw_fn(traj), repeats)
  return {
    "jax_videos_per_s": round(batch / jax_s, 2),
    "compile_s": round(compile_s, 3),
    "jax_sample_rollout_s": round(simulate_s, 5),
    "jax_render_s": round(draw_s, 5),
  }


def machine_info() -> dict[str, object]:
  """Backend, device and software versions the numbers were measured with."""
  return {
    "jax_backend": jax.default_backend(),
    "device_kind": jax.devices()[0].device_kind,
    "device_count": jax.device_count(),
    "cpu_count": os.cpu_count(),
    "processor": platform.processor() or platform.machine(),
    "python": platform.python_version(),
    "jax_version": jax.__version__,
    "box2d_version": Box2D.__version__,
  }


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--resolution", type=int, default=128, help="frame height and width")
  parser.add_argument("--frames", type=int, default=box2d_reference.NUM_FRAMES)
  parser.add_argument(
    "--batch", default="2,4,16,64", help="comma-separated videos per jitted JAX call to try"
  )
  parser.add_argument("--reference_videos", type=int, default=16, help="videos per Box2D run")
  parser.add_argument("--repeats", type=int, default=5, help="timed runs; the best is kept")
  parser.add_argument("--scenes", default=",".join(box2d_reference.SCENES))
  return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> dict[str, object]:
  """Runs the benchmark, prints it as one JSON object and returns it."""
  args = parse_args(argv)
  batches = [int(batch) for batch in args.batch.split(",")]
  settings = {
    "resolution": args.resolution,
    "frames": args.frames,
    "batch": args.batch,
    "reference_videos": args.reference_videos,
    "repeats": args.repeats,
  }
  scenes = {
    name: benchmark_scene(
      name, batches, args.frames, args.resolution, args.reference_videos, args.repeats
    )
    for name in args.scenes.split(",")
  }
  report = {"machine": machine_info(), "settings": settings, "scenes": scenes}
  print(json.dumps(report, indent=2))
  return report


if __name__ == "__main__":
  main()
