"""Eval sets as TFDS array_record datasets: exact round trips, metadata, errors, no TensorFlow."""

import glob
import os
import sys

import jax
import numpy as np
import pytest
import tensorflow_datasets as tfds
from array_record.python import array_record_module

import sims
from experiments import eval_sets

NAME = "uniform_motion_eval_test"
N = 5
METADATA = {"task": "uniform_motion", "resolution": 16, "seed": 3, "param_names": ["r", "v"]}


def sims_split(split, seed):
  """N uniform-motion videos of 4 frames at 16 x 16 with their physical parameters."""
  scene = sims.make("uniform_motion")
  state = scene.sample(jax.random.key(seed), N, split)
  traj = scene.rollout(state, num_frames=4)
  frames = np.asarray(sims.render(traj, resolution=16))
  return {
    "frames": (frames * 255).round().astype(np.uint8),
    "params": np.asarray(scene.params_of(state)),
    "position": np.asarray(traj.position),
    "velocity": np.asarray(traj.velocity),
    "radius": np.asarray(traj.radius),
    "level": np.asarray([split] * N),
  }


@pytest.fixture(scope="module")
def written(tmp_path_factory):
  data_dir = str(tmp_path_factory.mktemp("eval_sets"))
  splits = {"id": sims_split("id", 0), "ood_v_low": sims_split("ood_v_low", 1)}
  path = eval_sets.write_eval_set(data_dir, NAME, splits, METADATA)
  return data_dir, path, splits


def test_round_trip_is_exact_with_metadata_and_without_tensorflow(written):
  data_dir, path, splits = written
  assert path == os.path.join(data_dir, NAME, eval_sets.DATASET_VERSION)
  read, metadata = eval_sets.read_eval_set(data_dir, NAME)
  assert list(read) == ["id", "ood_v_low"]
  assert metadata == METADATA
  for split, arrays in splits.items():
    assert sorted(read[split]) == sorted(arrays)
    for field, expected in arrays.items():
      assert read[split][field].shape == expected.shape, field
      assert read[split][field].dtype.kind == expected.dtype.kind, field
      np.testing.assert_array_equal(read[split][field], expected, err_msg=field)
  # The two splits differ (speeds below 0.8 only in ood_v_low), so no split was read twice.
  speeds = np.linalg.norm(read["ood_v_low"]["velocity"][:, 0, 0], axis=-1)
  assert speeds.max() < 0.8 < np.linalg.norm(read["id"]["velocity"][:, 0, 0], axis=-1).min()
  assert "tensorflow" not in sys.modules


def test_files_are_array_records_in_example_order(written):
  data_dir, path, splits = written
  for split, arrays in splits.items():
    (shard,) = glob.glob(os.path.join(path, f"{NAME}-{split}.array_record-*"))
    reader = array_record_module.ArrayRecordReader(shard)
    assert reader.num_records() == len(arrays["frames"])
    reader.close()
  source = tfds.data_source(NAME, data_dir=data_dir)
  assert len(source["ood_v_low"]) == N
  (example,) = source["ood_v_low"].__getitems__([3])
  np.testing.assert_array_equal(example["frames"], splits["ood_v_low"]["frames"][3])
  assert example["level"] == b"ood_v_low"


def test_read_selected_splits(written):
  data_dir, _, splits = written
  read, _ = eval_sets.read_eval_set(data_dir, NAME, splits=["ood_v_low"])
  assert list(read) == ["ood_v_low"]
  np.testing.assert_array_equal(read["ood_v_low"]["params"], splits["ood_v_low"]["params"])


def test_missing_eval_set_or_split_names_what_exists(written):
  data_dir, _, _ = written
  with pytest.raises(FileNotFoundError, match=f"no eval set 'nope'.*eval sets there: {NAME}"):
    eval_sets.read_eval_set(data_dir, "nope")
  with pytest.raises(KeyError, match=r"no split 'ood_r'.*splits: id, ood_v_low"):
    eval_sets.read_eval_set(data_dir, NAME, splits=["ood_r"])


def test_existing_set_needs_overwrite(written, tmp_path):
  data_dir, _, splits = written
  with pytest.raises(FileExistsError, match=f"eval set '{NAME}' already exists"):
    eval_sets.write_eval_set(data_dir, NAME, splits)
  small = {"id": {k: v[:2] for k, v in splits["id"].items()}}
  eval_sets.write_eval_set(str(tmp_path), NAME, splits)
  eval_sets.write_eval_set(str(tmp_path), NAME, small, {"note": "replaced"}, overwrite=True)
  read, metadata = eval_sets.read_eval_set(str(tmp_path), NAME)
  assert list(read) == ["id"] and len(read["id"]["frames"]) == 2
  assert metadata == {"note": "replaced"}


def test_inconsistent_splits_are_rejected(written, tmp_path):
  split = {field: values[:2] for field, values in written[2]["id"].items()}
  other = dict(split, params=split["params"][:, :1])
  with pytest.raises(ValueError, match=r"split 'b' fields .* differ from split 'a'"):
    eval_sets.write_eval_set(str(tmp_path), "bad_set", {"a": split, "b": other})
  with pytest.raises(ValueError, match="lacks fields velocity"):
    eval_sets.write_eval_set(
      str(tmp_path), "bad_set", {"a": {k: v for k, v in split.items() if k != "velocity"}}
    )
  with pytest.raises(ValueError, match="frames must be uint8"):
    eval_sets.write_eval_set(
      str(tmp_path), "bad_set", {"a": dict(split, frames=split["frames"] / 255)}
    )
  with pytest.raises(ValueError, match="TFDS catalog dataset"):
    eval_sets.write_eval_set(str(tmp_path), "mnist", {"a": split})
  assert not os.listdir(tmp_path)
