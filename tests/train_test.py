"""The trainer: sharded steps, resumption after SIGKILL / SIGTERM, configs and the report."""

import dataclasses
import importlib
import json
import os
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from experiments import train
from experiments.configs import common, quickstart
from worldmodel import data, sharding

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MICRO = [
  "--config.video.resolution=16",
  "--config.video.num_frames=4",
  "--config.video.context_frames=2",
  "--config.model.size=micro",
  "--config.batch_size=8",
  "--config.log_every_steps=1",
  "--config.eval.num_cases=2",
  "--config.eval.batch_size=2",
  "--config.eval.sample_steps=2",
]


def micro_config():
  config = quickstart.get_config()
  config.video.update(resolution=16, num_frames=4, context_frames=2)
  config.model.size = "micro"
  config.batch_size = 8
  return config


def losses_on_mesh(config, mesh, steps=3):
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
    state, metrics = step(state, None, jax.random.key(0))
    losses.append(float(metrics["loss"]))
  return losses


def test_sharded_steps_give_the_same_losses_as_one_device():
  config = micro_config()
  devices = jax.devices()
  assert len(devices) == 8
  single = losses_on_mesh(config, sharding.make_mesh(1, 1, devices[:1]))
  assert single[2] < single[0]  # it learns
  for data_size, fsdp in [(8, 1), (2, 4)]:
    sharded = losses_on_mesh(config, sharding.make_mesh(data_size, fsdp))
    np.testing.assert_allclose(sharded, single, rtol=2e-5)


def test_video_batches_are_deterministic_and_in_range():
  scene = train.make_experiment(micro_config()).scene
  source = data.training_source(scene, "30K")
  first = data.video_batch(scene, source, jax.random.key(3), 4, 4, 16)
  np.testing.assert_array_equal(first, data.video_batch(scene, source, jax.random.key(3), 4, 4, 16))
  assert first.shape == (4, 4, 16, 16, 3) and float(first.min()) >= 0 and float(first.max()) <= 1
  with pytest.raises(ValueError, match=r"unknown dataset_size .*'10K'.*continuous"):
    data.training_source(scene, "10K")


def test_config_arguments_and_study_sizes():
  config = common.law_config("collision", size="B", data="3M")
  assert config.video.resolution == 128 and config.video.context_frames == 3
  assert common.parse_arg("size=L,data=300K", size="S", data="30K").to_dict() == {
    "size": "L",
    "data": "300K",
  }
  with pytest.raises(ValueError, match=r"unknown config argument 'model'; valid: size, data"):
    common.parse_arg("model=L", size="S", data="30K")
  bad = micro_config()
  bad.video.context_frames = 4
  with pytest.raises(ValueError, match=r"context_frames=4 must be in \[1, 3\]"):
    train.make_experiment(bad)


def run_main(workdir, *flags, wait=True):
  command = [
    sys.executable,
    "-m",
    "experiments.main",
    "--config=experiments/configs/quickstart.py",
    f"--workdir={workdir}",
    *MICRO,
    *flags,
  ]
  env = {**os.environ, "JAX_PLATFORMS": "cpu", "XLA_FLAGS": ""}
  process = subprocess.Popen(
    command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
  )
  if wait:
    output, _ = process.communicate(timeout=300)
    assert process.returncode == 0, output[-3000:]
    return output
  return process


def wait_for_checkpoint(directory, process, timeout=240):
  deadline = time.time() + timeout
  while time.time() < deadline:
    if os.path.isdir(directory) and any(name.isdigit() for name in os.listdir(directory)):
      time.sleep(1.0)  # let the save finish committing
      return sorted(int(name) for name in os.listdir(directory) if name.isdigit())
    assert process.poll() is None, process.stdout.read()[-3000:]
    time.sleep(0.2)
  raise TimeoutError(f"no checkpoint in {directory}")


def records(workdir):
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    return [json.loads(line) for line in f]


def test_sigkill_after_a_checkpoint_then_rerun_resumes_and_reports(tmp_path):
  workdir = str(tmp_path / "run")
  process = run_main(
    workdir, "--config.num_steps=100000", "--config.checkpoint_every_steps=3", wait=False
  )
  saved = wait_for_checkpoint(os.path.join(workdir, "checkpoints"), process)
  process.send_signal(signal.SIGKILL)
  process.wait()
  before = records(workdir)
  latest = max(int(n) for n in os.listdir(os.path.join(workdir, "checkpoints")) if n.isdigit())
  assert latest >= saved[0]
  run_main(workdir, f"--config.num_steps={latest + 4}", "--config.checkpoint_every_steps=3")
  after = records(workdir)
  assert after[: len(before)] == before  # nothing earlier was lost or rewritten
  resume = [r for r in after if r.get("event") == "resume"]
  assert len(resume) == 1 and resume[0]["step"] == latest
  assert [r["step"] for r in after[len(before) + 1 :]] == list(range(latest + 1, latest + 5))
  for name in ("id_best.gif", "id_worst.gif", "id_filmstrip.png", "error_heatmap.png"):
    assert os.path.exists(os.path.join(workdir, "report", name)), name
  with open(os.path.join(workdir, "report.md")) as f:
    assert "| ood_v_low |" in f.read()
  with open(os.path.join(workdir, "eval.json")) as f:
    evaluation = json.load(f)
  assert evaluation["step"] == latest + 4
  assert evaluation["ood_splits"] == ["ood_r", "ood_v", "ood_rv"]
  assert evaluation["splits"]["id"]["count"] == 2


def test_sigterm_saves_a_checkpoint_and_exits_cleanly(tmp_path):
  workdir = str(tmp_path / "run")
  process = run_main(
    workdir, "--config.num_steps=100000", "--config.checkpoint_every_steps=100000", wait=False
  )
  deadline = time.time() + 240
  metrics_path = os.path.join(workdir, "metrics.jsonl")
  while not (os.path.exists(metrics_path) and os.path.getsize(metrics_path) > 0):
    assert time.time() < deadline and process.poll() is None
    time.sleep(0.2)
  process.send_signal(signal.SIGTERM)
  output, _ = process.communicate(timeout=120)
  assert process.returncode == 0, output[-3000:]
  steps = [int(n) for n in os.listdir(os.path.join(workdir, "checkpoints")) if n.isdigit()]
  assert steps and max(steps) >= records(workdir)[-1]["step"]
  assert not os.path.exists(os.path.join(workdir, "report.md"))  # stopped before evaluating


def test_evaluate_on_a_missing_workdir_is_a_one_line_error(tmp_path):
  process = subprocess.run(
    [
      sys.executable,
      "-m",
      "experiments.main",
      "--config=experiments/configs/quickstart.py",
      f"--workdir={tmp_path / 'nope'}",
      "--mode=evaluate",
    ],
    cwd=ROOT,
    capture_output=True,
    text=True,
    timeout=120,
  )
  assert process.returncode != 0
  assert "does not exist" in process.stderr.strip().splitlines()[-1]


@pytest.mark.parametrize("name", ["uniform_motion", "parabola", "collision", "quickstart"])
def test_every_config_builds_its_experiment(name):
  module = importlib.import_module(f"experiments.configs.{name}")
  config = module.get_config(None)
  experiment = train.make_experiment(config)
  assert experiment.scene.name == config.task
  for split in config.eval.splits:
    assert len(experiment.scene.eval_params(split, config.eval.grid_points)) > 0
  assert config.eval.dataset == ""
