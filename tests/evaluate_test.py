"""Evaluation: stored eval sets give the same numbers as simulating the cases."""

import json
import math
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import sims
from experiments import eval_sets, evaluate, phyworld_hdf5, train
from experiments.configs import quickstart


def small_config():
  config = quickstart.get_config()
  config.video.update(resolution=16, num_frames=6, context_frames=2)
  config.model.size = "micro"
  config.eval.update(splits=("id", "ood_v"), num_cases=3, batch_size=2, sample_steps=2)
  return config


def initial_params(config):
  return nnx.state(train.build_model(config, config.seed), nnx.Param)


def same(a, b):
  if isinstance(a, dict):
    return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
  return a == b or (math.isnan(a) and math.isnan(b))


@pytest.mark.slow
def test_stored_eval_set_gives_identical_numbers(tmp_path):
  config = small_config()
  params = initial_params(config)
  simulated = evaluate.run(config, str(tmp_path / "simulated"), params=params)
  path = evaluate.write_eval_set(config, str(tmp_path / "data"))
  assert os.path.isdir(path)
  config.eval.dataset = os.path.join(str(tmp_path / "data"), evaluate.eval_set_name(config))
  stored = evaluate.run(config, str(tmp_path / "stored"), params=params)
  assert simulated.keys() == stored.keys()
  for split, numbers in simulated.items():
    for name, value in numbers.items():
      assert same(value, stored[split][name]), (split, name, value, stored[split][name])
  assert simulated["id"]["cases"] == 3 and "ood_v_low" in simulated


@pytest.mark.slow
def test_baselines_are_scored_beside_the_model_with_the_same_keys(tmp_path):
  config = small_config()
  config.eval.physics_score = True
  summary = evaluate.run(config, str(tmp_path), params=initial_params(config))
  record = json.loads((tmp_path / "eval.json").read_text())
  for split in ("id", "ood_v"):
    model = record["splits"][split]
    found = model["baselines"]
    assert sorted(found) == ["blank", "copy_last", "extrapolate"]
    for numbers in found.values():
      assert set(numbers) == set(model) - {"baselines", "beats_copy_last"}
      assert numbers["physics"].keys() == model["physics"].keys()
    # the law applied to the context parsed at 16 px beats a frozen frame, which beats nothing
    assert found["extrapolate"]["frame_mse"] < found["copy_last"]["frame_mse"]
    assert found["copy_last"]["frame_mse"] < found["blank"]["frame_mse"]
    # an untrained model generates noise: worse than nothing moving, and marked so
    assert model["beats_copy_last"] is False and summary[split]["beats_copy_last"] is False
  # guide following is measured only where a speed is out of the training range
  assert np.isnan(record["splits"]["id"]["physics"]["follows_guide"])
  # the law on the context parsed at 16 px: 2 of the 3 cases nearer the guide than the range
  extrapolated = record["splits"]["ood_v"]["baselines"]["extrapolate"]["physics"]
  assert extrapolated["follows_guide"] > 0.6
  report = (tmp_path / "report.md").read_text()
  assert "| follows the guide |" in report
  assert "| id (no better than copy_last) |" in report
  assert "| ood_v: extrapolate |" in report


def test_eval_set_of_another_resolution_is_refused(tmp_path):
  config = small_config()
  evaluate.write_eval_set(config, str(tmp_path))
  config.eval.dataset = os.path.join(str(tmp_path), evaluate.eval_set_name(config))
  config.video.resolution = 32
  with pytest.raises(ValueError, match=r"has resolution=16; the config has 32"):
    evaluate.run(config, str(tmp_path / "run"), params=initial_params(config))


def test_eval_cases_are_deterministic_and_thinned_evenly():
  config = small_config()
  experiment = train.make_experiment(config)
  first = evaluate.eval_cases(experiment, "ood_v")
  second = evaluate.eval_cases(experiment, "ood_v")
  np.testing.assert_array_equal(first.position, second.position)
  assert first.radius.shape == (3, 1)
  speeds = np.abs(np.asarray(first.velocity[:, 0, 0]))
  assert speeds.min() < 0.8 and speeds.max() > 4.5  # both ends of the OOD grid are kept
  assert jax.tree.leaves(first)[0].shape[0] == 3


@pytest.mark.slow
def test_the_study_hdf5_layout_imports_into_splits_and_evaluates(tmp_path):
  config = small_config()
  config.task = "collision"
  config.eval.splits = ("id", "ood_v1v2")
  scene = sims.make("collision")
  params = np.array(
    [
      [1.0, 1.0, 2.0, 2.0],  # id
      [0.8, 1.2, 3.0, 1.5],  # id
      [1.0, 1.0, 5.0, 5.5],  # ood_v1v2 (high)
      [1.0, 1.0, 0.5, 5.0],  # ood_v1v2 (cross)
      [1.0, 1.8, 2.0, 2.0],  # only r2 out of range: no level of the study, dropped
    ],
    np.float32,
  )
  keys = jax.vmap(jax.random.fold_in, (None, 0))(jax.random.key(0), np.arange(len(params)))
  traj = scene.rollout(scene.place(keys, jnp.asarray(params)), config.video.num_frames)
  frames = (np.asarray(sims.render(traj, 16)) * 255).round().astype(np.uint8)
  path = str(tmp_path / "collision_eval.hdf5")
  phyworld_hdf5.write_phyworld_hdf5(path, frames, np.asarray(traj.position), params)
  evaluate.import_phyworld_hdf5(config, path, str(tmp_path / "data"))
  splits, metadata = eval_sets.read_eval_set(str(tmp_path / "data"), evaluate.eval_set_name(config))
  assert sorted(splits) == ["id", "ood_v1v2"] and metadata["source"] == path
  assert len(splits["id"]["params"]) == 2
  assert sorted(splits["ood_v1v2"]["level"]) == ["ood_v1v2_cross", "ood_v1v2_high"]
  np.testing.assert_allclose(splits["id"]["velocity"][:, 0, :, 0], [[2.0, -2.0], [3.0, -1.5]])
  config.eval.dataset = os.path.join(str(tmp_path / "data"), evaluate.eval_set_name(config))
  summary = evaluate.run(config, str(tmp_path / "run"), params=initial_params(config))
  assert summary["id"]["cases"] == 2 and summary["ood_v1v2"]["cases"] == 2
