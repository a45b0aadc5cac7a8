"""Evaluation on every device: the rollouts are sharded over the mesh and give the numbers of a
one-device evaluation."""

import dataclasses
import json
import os
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import runs
from flax import nnx

from experiments import evaluate, train
from worldmodel import sharding

# Three cases two at a time: the last batch is padded, and on 8 devices every batch is padded
# further to 8 cases.
EVAL_FLAGS = ("--config.eval.num_cases=3", "--config.eval.splits=('id', 'ood_v')")


def micro_experiment(devices):
  config = runs.micro_config(num_steps=3)
  config.eval.batch_size = 2
  experiment = train.make_experiment(config).for_evaluation()
  return dataclasses.replace(experiment, mesh=sharding.make_mesh(devices=devices))


def test_padded_batch_size_rounds_up_to_the_devices():
  assert [evaluate.padded_batch_size(b, 8) for b in (1, 2, 8, 9, 16)] == [8, 8, 8, 16, 16]
  assert evaluate.padded_batch_size(3, 1) == 3


def test_sharded_rollouts_are_those_of_one_device_and_run_on_all_eight():
  assert jax.device_count() == 8  # tests/conftest.py
  eight, one = micro_experiment(jax.devices()), micro_experiment(jax.devices()[:1])
  config = eight.config
  params = nnx.state(train.build_model(config, config.seed), nnx.Param)
  cases = evaluate.eval_cases(eight, "id")
  _, frames = evaluate.simulated_split(eight, cases)
  truth = frames(np.array([0, 1, 2, 2, 2, 2, 2, 2]))
  key = jax.random.fold_in(evaluate.rollout_key(config, "id"), 0)

  sharded, param_shardings = evaluate.make_sharded_predictor(eight)
  placed = jax.device_put(params, param_shardings(params))
  batch = jax.device_put(truth, sharding.batch_sharding(eight.mesh))
  prediction = sharded(placed, batch, np.asarray(jax.random.key_data(key)))
  for array in (batch, prediction):
    assert len(array.sharding.device_set) == 8
    assert {shard.data.shape[0] for shard in array.addressable_shards} == {1}
  assert prediction.shape == truth.shape

  # Through make_predictor, the batch of 2 cases padded to 8 on 8 devices and not on 1.
  on_eight = evaluate.make_predictor(eight)(params, truth[:2], key)
  on_one = evaluate.make_predictor(one)(params, truth[:2], key)
  assert on_eight.shape == on_one.shape == truth[:2].shape
  np.testing.assert_allclose(np.asarray(on_eight), np.asarray(on_one), rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(np.asarray(prediction[:2]), np.asarray(on_one), rtol=1e-5, atol=1e-6)
  assert not jnp.allclose(on_one, truth[:2])  # the model generated something


def numbers(workdir):
  with open(os.path.join(workdir, "eval.json")) as f:
    return json.load(f)["splits"]


def assert_close(a, b, path=()):
  if isinstance(a, dict):
    assert a.keys() == b.keys(), path
    for name in a:
      assert_close(a[name], b[name], (*path, name))
  elif isinstance(a, float):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7, err_msg=str(path))
  else:
    assert a == b, path


@pytest.mark.slow
def test_evaluation_on_eight_devices_gives_the_numbers_of_one(tmp_path):
  """A tiny model trained on one device, then evaluated as `--mode=evaluate` runs on 1 and on 8
  fake devices (subprocesses): eval.json holds the same numbers."""
  one, eight = str(tmp_path / "one"), str(tmp_path / "eight")
  runs.run_main(one, "--config.num_steps=3", "--mode=train", *EVAL_FLAGS, devices=1)
  shutil.copytree(one, eight)
  runs.run_main(one, "--config.num_steps=3", "--mode=evaluate", *EVAL_FLAGS, devices=1)
  runs.run_main(eight, "--config.num_steps=3", "--mode=evaluate", *EVAL_FLAGS, devices=8)
  found, expected = numbers(eight), numbers(one)
  assert expected["id"]["cases"] == 3 and "velocity_error" in json.dumps(expected)
  assert_close(found, expected)
  for split in ("id", "ood_v"):
    assert np.isfinite(expected[split]["frame_mse"])
