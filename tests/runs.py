"""Helpers for tests that train tiny models, in this process or as `experiments.main` runs."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import time

import jax

from experiments import train
from experiments.configs import quickstart
from worldmodel import sharding

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# A 16 x 16, 4-frame video task and a micro DiT: each step takes milliseconds.
MICRO = [
  "--config=experiments/configs/quickstart.py",
  "--config.video.resolution=16",
  "--config.video.num_frames=4",
  "--config.video.context_frames=2",
  "--config.model.size=micro",
  "--config.batch_size=8",
  "--config.log_every_steps=1",
  "--config.eval.num_cases=2",
  "--config.eval.batch_size=2",
  "--config.eval.sample_steps=2",
  "--config.eval.physics_score=false",
]
# During warmup the learning rate does not depend on num_steps, so runs of different lengths
# take identical steps.
LONG_WARMUP = "--config.optimizer.warmup_steps=1000"


def micro_config(num_steps: int = 1500, warmup_steps: int | None = None):
  """The config that MICRO gives on the command line."""
  config = quickstart.get_config()
  config.video.update(resolution=16, num_frames=4, context_frames=2)
  config.model.size = "micro"
  config.batch_size = 8
  config.eval.physics_score = False
  config.num_steps = num_steps
  if warmup_steps is not None:
    config.optimizer.warmup_steps = warmup_steps
  return config


def losses_on_mesh(config, mesh, steps: int = 3) -> list[float]:
  """Training losses of the first `steps` steps of `config`, computed here on `mesh`."""
  experiment = dataclasses.replace(train.make_experiment(config), mesh=mesh)
  tx, schedule = train.make_optimizer(config)
  abstract = jax.eval_shape(lambda: train.init_state(experiment, tx))
  state_sharding = sharding.fsdp_sharding(mesh, abstract)
  state = jax.jit(lambda: train.init_state(experiment, tx), out_shardings=state_sharding)()
  step = jax.jit(
    train.make_train_step(experiment, tx, schedule, "train"),
    in_shardings=(state_sharding, None, None),
    out_shardings=(state_sharding, None),
  )
  losses = []
  for _ in range(steps):
    state, metrics = step(state, None, jax.random.key(config.seed))
    losses.append(float(metrics["loss"]))
  return losses


def main_command(workdir, *flags, micro: bool = True) -> list[str]:
  """`experiments.main` on `workdir` with `flags`, after the MICRO flags unless micro=False."""
  return [
    sys.executable,
    "-m",
    "experiments.main",
    f"--workdir={workdir}",
    *(MICRO if micro else []),
    *flags,
  ]


def environment(devices: int = 1) -> dict[str, str]:
  """The environment of a CPU run with `devices` devices."""
  return {
    **os.environ,
    "JAX_PLATFORMS": "cpu",
    "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}",
  }


def start_main(workdir, *flags, devices: int = 1, micro: bool = True) -> subprocess.Popen:
  return subprocess.Popen(
    main_command(workdir, *flags, micro=micro),
    cwd=ROOT,
    env=environment(devices),
    stdout=subprocess.PIPE,
    stderr=subprocess.STDOUT,
    text=True,
  )


def run_main(workdir, *flags, devices: int = 1, micro: bool = True, timeout: float = 300) -> str:
  """Runs `experiments.main` to completion; returns its output."""
  process = start_main(workdir, *flags, devices=devices, micro=micro)
  output, _ = process.communicate(timeout=timeout)
  assert process.returncode == 0, output[-3000:]
  return output


def checkpoint_steps(workdir) -> list[int]:
  directory = os.path.join(workdir, "checkpoints")
  if not os.path.isdir(directory):
    return []
  return sorted(int(name) for name in os.listdir(directory) if name.isdigit())


def wait_for_checkpoint(workdir, processes, timeout: float = 240) -> list[int]:
  """Waits until `workdir` holds a checkpoint; fails if a process exits first."""
  deadline = time.time() + timeout
  while time.time() < deadline:
    if checkpoint_steps(workdir):
      time.sleep(1.0)  # let the save finish committing
      return checkpoint_steps(workdir)
    for process in processes:
      assert process.poll() is None, process.stdout.read()[-3000:]
    time.sleep(0.2)
  raise TimeoutError(f"no checkpoint in {workdir}")


def wait_for_metrics(workdir, processes, steps: int = 1, timeout: float = 240) -> None:
  """Waits until metrics.jsonl of `workdir` holds `steps` step records."""
  deadline = time.time() + timeout
  while time.time() < deadline:
    path = os.path.join(workdir, "metrics.jsonl")
    if os.path.exists(path):
      with open(path) as f:
        if sum('"loss"' in line for line in f) >= steps:
          return
    for process in processes:
      assert process.poll() is None, process.stdout.read()[-3000:]
    time.sleep(0.2)
  raise TimeoutError(f"no metrics in {workdir}")


def records(workdir) -> list[dict]:
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    return [json.loads(line) for line in f]


def losses_by_step(workdir) -> dict[int, float]:
  return {r["step"]: r["loss"] for r in records(workdir) if "loss" in r}
