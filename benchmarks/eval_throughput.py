"""Evaluation rollouts per second of the sharded predictor on 1 device and on all local devices.

    python -m benchmarks.eval_throughput --devices=2   # 2 fake CPU devices (sets XLA_FLAGS)

The predictor is `experiments.evaluate.make_predictor` (the batch padded to a multiple of the
devices and sharded over the mesh, parameters placed as in training) for the quickstart model
(`experiments/configs/quickstart.py`) with random parameters, on one batch of `eval.batch_size`
(or `--batch`) ground-truth videos of the id split. Each mesh is warmed up first (compile time
excluded); the time is the best of `--repeats` calls. With `--devices=N` on a CPU the host is
split into N fake devices: that measures the overhead and scaling of the sharding, not an
accelerator's speedup. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from collections.abc import Sequence


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument(
    "--devices", type=int, default=None, help="fake CPU devices (sets XLA_FLAGS before JAX)"
  )
  parser.add_argument("--batch", type=int, default=None, help="cases per batch (eval.batch_size)")
  parser.add_argument("--repeats", type=int, default=3)
  return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> dict:
  args = parse_args(argv)
  if args.devices is not None:
    if "jax" in sys.modules:
      raise RuntimeError("--devices must be set before JAX is imported")
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    os.environ["XLA_FLAGS"] = (
      os.environ.get("XLA_FLAGS", "") + f" --xla_force_host_platform_device_count={args.devices}"
    ).strip()
  import jax
  import numpy as np
  from flax import nnx

  from experiments import evaluate, train
  from experiments.configs import quickstart
  from worldmodel import sharding

  config = quickstart.get_config()
  if args.batch is not None:
    config.eval.batch_size = args.batch
  batch = config.eval.batch_size
  base = train.make_experiment(config).for_evaluation()
  params = nnx.state(train.build_model(config, config.seed), nnx.Param)
  _, frames = evaluate.simulated_split(base, evaluate.eval_cases(base, "id"))
  num_cases = int(evaluate.eval_cases(base, "id").radius.shape[0])
  truth = frames(np.minimum(np.arange(batch), num_cases - 1))
  key = jax.random.fold_in(evaluate.rollout_key(config, "id"), 0)

  results = {}
  for devices in sorted({1, jax.local_device_count()}):
    mesh = sharding.make_mesh(devices=jax.local_devices()[:devices])
    experiment = dataclasses.replace(base, mesh=mesh)
    predict = evaluate.make_predictor(experiment)
    placed = jax.device_put(params, sharding.fsdp_sharding(mesh, params))
    jax.block_until_ready(predict(placed, truth, key))  # compile
    seconds = []
    for _ in range(args.repeats):
      start = time.perf_counter()
      jax.block_until_ready(predict(placed, truth, key))
      seconds.append(time.perf_counter() - start)
    results[str(devices)] = {
      "seconds_per_batch": round(min(seconds), 4),
      "rollouts_per_s": round(batch / min(seconds), 2),
      "padded_batch": evaluate.padded_batch_size(batch, devices),
    }
  record = {
    "model": f"DiT-{config.model.size}",
    "video": [config.video.num_frames, config.video.resolution, config.video.resolution],
    "sample_steps": config.eval.sample_steps,
    "batch": batch,
    "platform": jax.devices()[0].platform,
    "local_devices": jax.local_device_count(),
    "devices": results,
  }
  if len(results) > 1:
    one, every = results["1"]["rollouts_per_s"], results[str(jax.local_device_count())]
    record["speedup"] = round(every["rollouts_per_s"] / one, 3)
  print(json.dumps(record))
  return record


if __name__ == "__main__":
  main()
