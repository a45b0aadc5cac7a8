"""Training-step time, its data-generation share, and model FLOP/s against the matmul peak.

    python -m benchmarks.train_step --sizes=S,B --resolution=128 --batch=32          # a GPU
    python -m benchmarks.train_step --sizes=tiny --resolution=32 --frames=8 --batch=16 \
        --patch=1,8,8 --dtype=float32                                                 # a CPU
    # the cost of each simulator guide (worldmodel/guides.py: a fit to the context in the step)
    python -m benchmarks.train_step --sizes=tiny --resolution=32 --frames=8 --batch=16 \
        --patch=1,8,8 --dtype=float32 --guides=none,render,flow_noise,state
    # the combinatorial scene (6 templates), simulated in the step
    python -m benchmarks.train_step --task=phyre --sizes=tiny --resolution=64 --frames=8 \
        --batch=16 --patch=2,8,8 --dtype=float32
    # a 3-D scene (brax + the ray caster in the step; world3d.py's CPU recipe)
    python -m benchmarks.train_step --task=bounce3d --sizes=tiny --resolution=64 --frames=8 \
        --batch=16 --patch=2,8,8 --dtype=float32

For each DiT size: the full jitted step (simulate + render + forward + backward + AdamW + EMA),
the data generation alone and its rendering alone are timed after compilation (median of
--steps calls). Model FLOP/s counts 3x the analytic forward FLOPs (forward + backward) per
example; the reference peak is the best dense matmul FLOP/s measured in the same run, in the
same dtype. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Sequence

import jax
import jax.numpy as jnp

import sims
from experiments import train
from experiments.configs import combinatorial, common, world3d
from worldmodel import data, dit, sharding


def _median_seconds(fn, args, calls: int) -> float:
  jax.block_until_ready(fn(*args))
  times = []
  for _ in range(calls):
    start = time.perf_counter()
    jax.block_until_ready(fn(*args))
    times.append(time.perf_counter() - start)
  return statistics.median(times)


def matmul_peak(dtype: jnp.dtype, sizes: Sequence[int] = (1024, 2048, 4096)) -> dict:
  """Best measured FLOP/s of a square matmul in `dtype` over a few sizes."""
  best = {"flops_per_s": 0.0}
  for n in sizes:
    a = jax.random.normal(jax.random.key(0), (n, n), dtype)
    b = jax.random.normal(jax.random.key(1), (n, n), dtype)
    seconds = _median_seconds(jax.jit(jnp.matmul), (a, b), calls=5)
    rate = 2 * n**3 / seconds
    if rate > best["flops_per_s"]:
      best = {"flops_per_s": rate, "n": n}
  return best


def _config(args: argparse.Namespace, size: str):
  """The law task's config, the 3-D scenes' (world3d.py) or for `phyre` the combinatorial one
  (6 templates), simulating in the step rather than from a cache."""
  if args.task in world3d.OOD_LEVELS:
    return world3d.get_config(f"scene={args.task},size={size},data=continuous")
  if args.task != "phyre":
    return common.law_config(args.task, size=size, data="continuous")
  config = combinatorial.get_config(
    f"templates=6,size={size},resolution={args.resolution},frames={args.frames}"
  )
  config.data.cache = 0
  return config


def benchmark_size(args: argparse.Namespace, size: str, guide: str = "none") -> dict:
  config = _config(args, size)
  config.guide.kind = guide
  config.video.update(num_frames=args.frames, resolution=args.resolution)
  config.model.update(patch_size=tuple(args.patch), attention=args.attention, dtype=args.dtype)
  config.batch_size = args.batch
  config.physics.weight = args.physics_weight
  experiment = train.make_experiment(config)
  tx, schedule = train.make_optimizer(config)
  abstract = jax.eval_shape(lambda: train.init_state(experiment, tx))
  state_sharding = sharding.fsdp_sharding(experiment.mesh, abstract)
  state = jax.jit(lambda: train.init_state(experiment, tx), out_shardings=state_sharding)()
  step = jax.jit(
    train.make_train_step(experiment, tx, schedule, "train"),
    in_shardings=(state_sharding, None, None),
    out_shardings=(state_sharding, None),
  )
  key = jax.random.key(0)
  start = time.perf_counter()
  state, _ = step(state, None, key)
  jax.block_until_ready(state)
  compile_s = time.perf_counter() - start

  times = []
  for _ in range(args.steps):
    start = time.perf_counter()
    state, _ = step(state, None, key)
    jax.block_until_ready(state)
    times.append(time.perf_counter() - start)
  step_s = statistics.median(times)

  def generate(key):
    return data.video_batch(
      experiment.scene, "train", key, args.batch, args.frames, args.resolution
    )

  data_s = _median_seconds(jax.jit(generate), (key,), calls=args.steps)
  traj = data.trajectory_batch(experiment.scene, "train", key, args.batch, args.frames)
  render_s = _median_seconds(
    jax.jit(lambda t: sims.render(t, args.resolution)), (traj,), args.steps
  )
  model = train.build_model(config, 0, experiment.scene)
  flops = 3 * dit.forward_flops(model) * args.batch
  params = sum(x.size for x in jax.tree.leaves(abstract["params"]))
  return {
    "params_m": round(params / 1e6, 2),
    "tokens": model.config.num_tokens,
    "compile_s": round(compile_s, 2),
    "step_s": round(step_s, 4),
    "examples_per_s": round(args.batch / step_s, 1),
    "data_s": round(data_s, 4),
    "data_share": round(data_s / step_s, 4),
    "render_s": round(render_s, 4),
    "render_share": round(render_s / step_s, 4),
    "model_tflops_per_s": round(flops / step_s / 1e12, 3),
  }


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument(
    "--task", default="uniform_motion", help="a law task, phyre, or a 3-D scene (e.g. bounce3d)"
  )
  parser.add_argument("--sizes", default="S,B", help="comma-separated DiT sizes")
  parser.add_argument("--resolution", type=int, default=128)
  parser.add_argument("--frames", type=int, default=32)
  parser.add_argument("--patch", default="2,8,8", help="patch size t,h,w")
  parser.add_argument("--attention", default="full", choices=dit.ATTENTION_KINDS)
  parser.add_argument("--dtype", default="bfloat16")
  parser.add_argument("--batch", type=int, default=32)
  parser.add_argument("--steps", type=int, default=5, help="timed steps (median is reported)")
  parser.add_argument(
    "--guides", default="none", help="comma-separated guide kinds (worldmodel/guides.py)"
  )
  parser.add_argument(
    "--physics_weight", type=float, default=0.0, help="weight of the law loss (0: off)"
  )
  args = parser.parse_args(argv)
  args.patch = [int(p) for p in args.patch.split(",")]
  return args


def main(argv: Sequence[str] | None = None) -> dict:
  args = parse_args(argv)
  peak = matmul_peak(jnp.dtype(args.dtype))
  sizes = {
    size if guide == "none" else f"{size}+{guide}": benchmark_size(args, size, guide)
    for size in args.sizes.split(",")
    for guide in args.guides.split(",")
  }
  for result in sizes.values():
    result["mfu_vs_matmul_peak"] = round(
      result["model_tflops_per_s"] * 1e12 / peak["flops_per_s"], 3
    )
  report = {
    "machine": {
      "backend": jax.default_backend(),
      "device_kind": jax.devices()[0].device_kind,
      "device_count": jax.device_count(),
      "jax_version": jax.__version__,
    },
    "settings": {k: v for k, v in vars(args).items()},
    "matmul_peak_tflops_per_s": round(peak["flops_per_s"] / 1e12, 3),
    "sizes": sizes,
  }
  print(json.dumps(report, indent=2))
  return report


if __name__ == "__main__":
  main()
