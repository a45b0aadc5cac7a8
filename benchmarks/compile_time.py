"""Time to lower and compile the full training step, per DiT size (nothing is run).

    python -m benchmarks.compile_time --sizes=S          # one size per process, e.g.
    for size in S B L XL; do timeout 300 python -m benchmarks.compile_time --sizes=$size; done

The step is the one `experiments/train.py` jits (simulate + render + forward + backward + AdamW
+ EMA) at the study's video by default (`common.law_config`: 32 frames of 128 x 128, patch
(2, 8, 8), bfloat16), batch 1; it is lowered from abstract shapes, so no parameters are built.
Prints one JSON object {size: {"lower_s", "compile_s"}}.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence

import jax

from experiments import train
from experiments.configs import common
from worldmodel import sharding


def compile_time(args: argparse.Namespace, size: str) -> dict:
  config = common.law_config(args.task, size=size, data="continuous")
  config.video.update(num_frames=args.frames, resolution=args.resolution)
  config.model.update(patch_size=tuple(args.patch), dtype=args.dtype)
  config.batch_size = args.batch
  experiment = train.make_experiment(config)
  tx, schedule = train.make_optimizer(config)
  abstract = jax.eval_shape(lambda: train.init_state(experiment, tx))
  state_sharding = sharding.fsdp_sharding(experiment.mesh, abstract)
  step = jax.jit(
    train.make_train_step(experiment, tx, schedule, "train"),
    in_shardings=(state_sharding, None, None),
    out_shardings=(state_sharding, None),
  )
  state = jax.tree.map(
    lambda leaf, s: jax.ShapeDtypeStruct(leaf.shape, leaf.dtype, sharding=s),
    abstract,
    state_sharding,
  )
  start = time.perf_counter()
  lowered = step.lower(state, None, jax.random.key(0))
  lower_s = time.perf_counter() - start
  start = time.perf_counter()
  lowered.compile()
  compile_s = time.perf_counter() - start
  return {"lower_s": round(lower_s, 2), "compile_s": round(compile_s, 2)}


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--task", default="uniform_motion")
  parser.add_argument("--sizes", default="S", help="comma-separated DiT sizes")
  parser.add_argument("--resolution", type=int, default=128)
  parser.add_argument("--frames", type=int, default=32)
  parser.add_argument("--patch", default="2,8,8", help="patch size t,h,w")
  parser.add_argument("--dtype", default="bfloat16")
  parser.add_argument("--batch", type=int, default=1)
  args = parser.parse_args(argv)
  args.patch = [int(p) for p in args.patch.split(",")]
  return args


def main(argv: Sequence[str] | None = None) -> dict:
  args = parse_args(argv)
  results = {size: compile_time(args, size) for size in args.sizes.split(",")}
  print(json.dumps(results))
  return results


if __name__ == "__main__":
  main()
