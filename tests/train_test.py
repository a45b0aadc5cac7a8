"""The trainer: sharded steps, resumption after SIGKILL / SIGTERM, configs and the report."""

import importlib
import json
import os
import signal
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import runs
from sims_test import approaching

import sims
from experiments import evaluate, train
from experiments.configs import combinatorial, common, quickstart
from experiments.configs import physics as physics_config
from experiments.configs.mechanisms import collision_hole, memorization, velocity_gap
from worldmodel import data, diffusion, sharding


@pytest.mark.slow
def test_sharded_steps_give_the_same_losses_as_one_device():
  config = runs.micro_config()
  devices = jax.devices()
  assert len(devices) == 8
  single = runs.losses_on_mesh(config, sharding.make_mesh(1, 1, devices[:1]))
  assert single[2] < single[0]  # it learns
  for data_size, fsdp in [(8, 1), (4, 2), (2, 4)]:
    sharded = runs.losses_on_mesh(config, sharding.make_mesh(data_size, fsdp))
    np.testing.assert_allclose(sharded, single, rtol=2e-5)


def test_video_batches_are_deterministic_and_in_range():
  scene = train.make_experiment(runs.micro_config()).scene
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
  bad = runs.micro_config()
  bad.video.context_frames = 4
  with pytest.raises(ValueError, match=r"context_frames=4 must be in \[1, 3\]"):
    train.make_experiment(bad)


@pytest.mark.slow
def test_sharded_batches_equal_the_one_device_batch_example_for_example():
  scene = train.make_experiment(runs.micro_config()).scene
  for source in ("train", data.training_source(scene, "30K")):
    whole = jax.jit(lambda key, source=source: data.video_batch(scene, source, key, 16, 4, 16))(
      jax.random.key(5)
    )
    for shape in [(8, 1), (4, 2), (2, 4)]:
      mesh = sharding.make_mesh(*shape)
      sharded = jax.jit(
        lambda key, mesh=mesh, source=source: data.sharded_video_batch(
          scene, source, key, 16, 4, 16, mesh
        )
      )(jax.random.key(5))
      assert sharded.sharding.is_equivalent_to(sharding.batch_sharding(mesh), 5)
      np.testing.assert_array_equal(sharded, whole)
    # Any slice of the stream can be made on its own.
    tail = data.video_batch(scene, source, jax.random.key(5), 4, 4, 16, first_index=12)
    np.testing.assert_allclose(tail, whole[12:], atol=1e-5)
  with pytest.raises(ValueError, match=r"batch_size=12 must divide over the 8 devices"):
    data.sharded_video_batch(scene, "train", jax.random.key(0), 12, 4, 16, sharding.make_mesh())


@pytest.mark.slow
def test_sigkill_then_resume_on_another_mesh_continues_the_same_run(tmp_path):
  """A killed run resumes from its last checkpoint, here on 8 devices (2 x 4) instead of 1, and
  takes the steps an uninterrupted run takes; the evaluation report follows."""
  workdir = str(tmp_path / "run")
  process = runs.start_main(
    workdir, "--config.num_steps=100000", "--config.checkpoint_every_steps=3", runs.LONG_WARMUP
  )
  saved = runs.wait_for_checkpoint(workdir, [process])
  process.send_signal(signal.SIGKILL)
  process.wait()
  before = runs.records(workdir)
  latest = runs.checkpoint_steps(workdir)[-1]
  assert latest >= saved[0]
  runs.run_main(
    workdir,
    f"--config.num_steps={latest + 4}",
    "--config.checkpoint_every_steps=3",
    "--config.mesh.data=2",
    "--config.mesh.fsdp=4",
    runs.LONG_WARMUP,
    devices=8,
  )
  after = runs.records(workdir)
  assert after[: len(before)] == before  # nothing earlier was lost or rewritten
  resume = [r for r in after if r.get("event") == "resume"]
  assert len(resume) == 1 and resume[0]["step"] == latest
  assert [r["step"] for r in after[len(before) + 1 :]] == list(range(latest + 1, latest + 5))
  uninterrupted = runs.losses_on_mesh(
    runs.micro_config(warmup_steps=1000), sharding.make_mesh(1, 1, jax.devices()[:1]), latest + 4
  )
  resumed = [r["loss"] for r in after[len(before) + 1 :]]
  np.testing.assert_allclose(resumed, uninterrupted[latest:], rtol=2e-5)
  for name in ("id_best.gif", "id_worst.gif", "id_filmstrip.png", "error_heatmap.png"):
    assert os.path.exists(os.path.join(workdir, "report", name)), name
  with open(os.path.join(workdir, "report.md")) as f:
    assert "| ood_v_low |" in f.read()
  with open(os.path.join(workdir, "eval.json")) as f:
    evaluation = json.load(f)
  assert evaluation["step"] == latest + 4
  assert evaluation["ood_splits"] == ["ood_r", "ood_v", "ood_rv"]
  assert evaluation["splits"]["id"]["count"] == 2


@pytest.mark.slow
def test_sigterm_saves_a_checkpoint_and_exits_cleanly(tmp_path):
  workdir = str(tmp_path / "run")
  process = runs.start_main(
    workdir, "--config.num_steps=100000", "--config.checkpoint_every_steps=100000"
  )
  runs.wait_for_metrics(workdir, [process])
  process.send_signal(signal.SIGTERM)
  output, _ = process.communicate(timeout=120)
  assert process.returncode == 0, output[-3000:]
  steps = runs.checkpoint_steps(workdir)
  assert steps and max(steps) >= runs.records(workdir)[-1]["step"]
  assert not os.path.exists(os.path.join(workdir, "report.md"))  # stopped before evaluating


@pytest.mark.slow
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
    cwd=runs.ROOT,
    capture_output=True,
    text=True,
    timeout=120,
  )
  assert process.returncode != 0
  assert "does not exist" in process.stderr.strip().splitlines()[-1]


@pytest.mark.parametrize(
  "name",
  [
    "uniform_motion",
    "parabola",
    "collision",
    "quickstart",
    "mechanisms.velocity_gap",
    "mechanisms.collision_hole",
    "mechanisms.memorization",
    "mechanisms.attributes",
    "mechanisms.composition",
    "mechanisms.ambiguity",
    "grounded",
  ],
)
def test_every_config_builds_its_experiment(name):
  module = importlib.import_module(f"experiments.configs.{name}")
  config = module.get_config(None)
  experiment = train.make_experiment(config)
  assert experiment.scene.name == experiment.eval_scene.name == config.task
  for split in config.eval.splits:
    assert len(experiment.eval_scene.eval_params(split, config.eval.grid_points)) > 0
  assert config.eval.dataset == ""


@pytest.mark.slow
def test_an_8_frame_collision_config_has_every_contact_inside_its_clips():
  """Training batches (2 frames before the contact, 2 after) and every evaluation case (1 before,
  2 after) of the quickstart's 8-frame collision task show the collision."""
  config = quickstart.get_config("task=collision")
  experiment = train.make_experiment(config)
  num_frames = config.video.num_frames
  assert num_frames == 8
  source = data.training_source(experiment.scene, config.data.dataset_size)
  batch = jax.jit(
    lambda key: data.trajectory_batch(experiment.scene, source, key, 256, num_frames)
  )(jax.random.key(1))
  closing = approaching(batch)
  assert closing[:, :2].all() and not closing[:, -2:].any()
  for split in config.eval.splits:
    traj, _ = evaluate.simulated_split(experiment, evaluate.eval_cases(experiment, split))
    closing = approaching(traj)
    assert closing[:, :1].all() and not closing[:, -2:].any(), split


def bad_settings():
  """(a config with one bad setting, the error it must raise)."""
  splits = quickstart.get_config()
  splits.eval.splits = ("id", "ood_vv")
  metrics = combinatorial.get_config("size=micro,resolution=32,frames=4")
  metrics.eval.metrics = ("psnr", "fid")
  dataset = quickstart.get_config()
  dataset.eval.dataset = "/nonexistent/uniform_motion_eval_32px"
  count = quickstart.get_config()
  count.eval.num_cases = 0
  data_size = quickstart.get_config()
  data_size.data.dataset_size = "30k"
  return [
    (splits, r"unknown split for scene 'uniform_motion' 'ood_vv'; valid: train, id, ood_r,"),
    (metrics, r"unknown eval.metrics entry 'fid'; valid: psnr, ssim, lpips, fvd"),
    (dataset, r"eval.dataset='/nonexistent/uniform_motion_eval_32px' is not an eval set"),
    (count, r"eval.num_cases=0 must be >= 1"),
    (data_size, r"unknown dataset_size for scene 'uniform_motion' '30k'; valid: 30K, 300K"),
  ]


@pytest.mark.parametrize("index", range(len(bad_settings())))
def test_a_bad_setting_stops_the_run_before_it_writes_anything(tmp_path, index):
  config, message = bad_settings()[index]
  config.num_steps = 1  # were it not refused, the run would train one step and write
  workdir = tmp_path / "run"
  with pytest.raises(ValueError, match=message) as error:
    train.run(config, str(workdir))
  assert "\n" not in str(error.value)
  assert not workdir.exists()


def test_config_argument_typos_are_one_line_errors():
  with pytest.raises(ValueError, match=r"unknown task 'colision'; valid: uniform_motion, parabola"):
    quickstart.get_config("task=colision")
  with pytest.raises(ValueError, match=r"unknown task 'colision'"):
    physics_config.get_config("task=colision")
  with pytest.raises(ValueError, match=r"unknown panel '7'; valid: 1, 2, 3, 4, 5"):
    velocity_gap.get_config("panel=7")
  with pytest.raises(ValueError, match=r"unknown hole 'donut'; valid: square_2_3, "):
    collision_hole.get_config("hole=donut")
  with pytest.raises(ValueError, match=r"unknown size 'gpu'; valid: cpu, study"):
    memorization.get_config("size=gpu")
  with pytest.raises(ValueError, match=r"config argument num_steps='1e3' must be a int"):
    quickstart.get_config("num_steps=1e3")
  with pytest.raises(ValueError, match=r"unknown value of config argument on 'ture'; valid: 1,"):
    common.parse_arg("on=ture", on=False)
  assert common.parse_arg("on=Yes", on=False).on is True


def test_non_finite_metrics_are_an_error_naming_the_step():
  finite = {"loss": jnp.float32(0.5), "grad_norm": jnp.float32(2.0)}
  assert train.finite_metrics(3, finite) == {"loss": 0.5, "grad_norm": 2.0}
  for bad in (jnp.nan, jnp.inf):
    with pytest.raises(FloatingPointError, match=r"non-finite metrics at step 4: .*'grad_norm'"):
      train.finite_metrics(4, {**finite, "grad_norm": jnp.float32(bad)})


@pytest.mark.slow
def test_a_non_finite_loss_stops_the_run_before_that_state_is_saved(tmp_path, monkeypatch):
  """The state goes NaN at step 3; with checkpoints every 2 steps and metrics logged only at the
  end, the run must stop at step 4 with step 2 its newest checkpoint."""
  make_train_step = train.make_train_step

  def poisoned(*args):
    train_step = make_train_step(*args)

    def step(state, pool, key):
      state, metrics = train_step(state, pool, key)
      poison = jnp.where(state["step"] >= 3, jnp.nan, 0.0)
      state["params"] = jax.tree.map(lambda p: p + poison, state["params"])
      return state, {**metrics, "loss": metrics["loss"] + poison}

    return step

  monkeypatch.setattr(train, "make_train_step", poisoned)
  config = runs.micro_config(num_steps=6)
  config.update(log_every_steps=100, checkpoint_every_steps=2)
  with pytest.raises(FloatingPointError, match="non-finite metrics at step 4"):
    train.run(config, str(tmp_path))
  assert runs.checkpoint_steps(str(tmp_path)) == [2]


def test_either_objective_is_chosen_by_name_with_its_own_options():
  config = runs.micro_config()
  assert isinstance(train.make_experiment(config).objective, diffusion.RectifiedFlow)
  config.objective.name = "ddpm_v"
  config.objective.ddpm_v.beta_schedule = "cosine"
  objective = train.make_experiment(config).objective
  assert isinstance(objective, diffusion.VPredictionDDPM) and objective.beta_schedule == "cosine"
  config.objective.name = "ddpm"
  with pytest.raises(ValueError, match=r"unknown objective.name 'ddpm'; valid: flow, ddpm_v"):
    train.make_experiment(config)


def test_eval_scene_options_change_the_evaluated_scene_only():
  config = importlib.import_module("experiments.configs.mechanisms.ambiguity").get_config(None)
  experiment = train.make_experiment(config)
  assert type(experiment.scene) is sims.Phyre
  assert isinstance(experiment.eval_scene, sims.phyre_ambiguity.PhyreAmbiguity)
  assert experiment.for_evaluation().scene is experiment.eval_scene
  config.eval.splits = ("out_of_template",)  # the training scene's split, not the evaluated one's
  with pytest.raises(ValueError, match=r"unknown split for scene 'phyre' 'out_of_template'"):
    train.make_experiment(config)
