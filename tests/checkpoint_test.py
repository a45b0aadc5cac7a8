"""Tests for worldmodel.checkpoint on 8 fake CPU devices."""

import logging
import os
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx
from jax.sharding import PartitionSpec as P

from worldmodel import checkpoint, sharding


def _state(mesh, value: float, step: int = 0):
  """A small training-state-like tree whose arrays are all filled with `value`."""
  params = {
    "dense": {"kernel": jnp.full((64, 32), value), "bias": jnp.full((32,), value)},
    "data_sharded": jnp.full((16, 8), value),
  }
  tree = {"params": params, "step": step, "rng": jax.random.key(int(value))}
  shardings = sharding.fsdp_sharding(mesh, tree, min_size=64)
  shardings["params"]["data_sharded"] = sharding.batch_sharding(mesh)
  return sharding.shard_like(tree, shardings)


def _kernel_value(state) -> float:
  kernel = np.asarray(state["params"]["dense"]["kernel"])
  assert np.all(kernel == kernel.flat[0])
  return float(kernel.flat[0])


def _save_steps(directory, steps, mesh, **kwargs):
  with checkpoint.Checkpointer(directory, **kwargs) as ckpt:
    for step in steps:
      assert ckpt.save(step, _state(mesh, float(step), step), metadata={"position": 10 * step})


def test_round_trip_nnx_state_step_and_typed_key(tmp_path):
  mesh = sharding.make_mesh(4, 2)
  params = nnx.state(nnx.Linear(16, 64, rngs=nnx.Rngs(0)), nnx.Param)
  state = {
    "params": params,
    "opt_state": optax.adamw(1e-3).init(params),
    "step": 7,
    "rng": jax.random.key(42),
  }
  state = sharding.shard_like(state, sharding.fsdp_sharding(mesh, state, min_size=512))
  state["step"] = 7
  metadata = {"data": {"shard": 3, "position": 1234}, "config": {"lr": 1e-3, "name": "tiny"}}

  with checkpoint.Checkpointer(tmp_path) as ckpt:
    assert ckpt.save(7, state, metadata=metadata)
    step, restored, restored_metadata = ckpt.restore(checkpoint.abstract_like(state))

  assert step == 7
  assert restored_metadata == metadata
  assert restored["step"] == 7
  assert jax.tree.structure(restored) == jax.tree.structure(state)
  for got, want in zip(jax.tree.leaves(restored), jax.tree.leaves(state), strict=True):
    if isinstance(want, jax.Array):
      assert got.sharding == want.sharding
  kernel = restored["params"]["kernel"][...]
  np.testing.assert_array_equal(kernel, params["kernel"][...])
  assert kernel.sharding.spec == P(None, "fsdp")
  assert jax.dtypes.issubdtype(restored["rng"].dtype, jax.dtypes.prng_key)
  np.testing.assert_array_equal(jax.random.key_data(restored["rng"]), [0, 42])
  assert jax.random.normal(restored["rng"]) == jax.random.normal(jax.random.key(42))


@pytest.mark.parametrize(("save_shape", "restore_shape"), [((8, 1), (2, 4)), ((8, 1), (1, 1))])
def test_restore_onto_different_mesh(tmp_path, save_shape, restore_shape):
  save_mesh = sharding.make_mesh(*save_shape)
  _save_steps(tmp_path, [5], save_mesh)
  data, fsdp = restore_shape
  restore_mesh = sharding.make_mesh(data, fsdp, devices=jax.devices()[: data * fsdp])
  template = _state(restore_mesh, 0.0)

  with checkpoint.Checkpointer(tmp_path) as ckpt:
    step, restored, metadata = ckpt.restore(checkpoint.abstract_like(template))

  assert (step, metadata) == (5, {"position": 50})
  assert _kernel_value(restored) == 5.0
  np.testing.assert_array_equal(restored["params"]["data_sharded"], np.full((16, 8), 5.0))
  kernel, data_sharded = restored["params"]["dense"]["kernel"], restored["params"]["data_sharded"]
  assert kernel.sharding == template["params"]["dense"]["kernel"].sharding
  assert len(kernel.sharding.device_set) == data * fsdp
  assert {s.data.shape for s in kernel.addressable_shards} == {(64 // fsdp, 32)}
  assert {s.data.shape for s in data_sharded.addressable_shards} == {(16 // (data * fsdp), 8)}


def test_restore_with_explicit_shardings(tmp_path):
  mesh = sharding.make_mesh(8, 1)
  _save_steps(tmp_path, [1], mesh)
  single = jax.sharding.SingleDeviceSharding(jax.devices()[3])
  with checkpoint.Checkpointer(tmp_path) as ckpt:
    _, restored, _ = ckpt.restore(checkpoint.abstract_like(_state(mesh, 0.0), single))
  assert restored["params"]["dense"]["kernel"].devices() == {jax.devices()[3]}
  assert _kernel_value(restored) == 1.0


def test_max_to_keep_keeps_latest(tmp_path):
  mesh = sharding.make_mesh()
  _save_steps(tmp_path, [1, 2, 3, 4, 5], mesh, max_to_keep=2)
  assert sorted(p.name for p in tmp_path.iterdir()) == ["4", "5"]
  with checkpoint.Checkpointer(tmp_path, max_to_keep=2) as ckpt:
    assert ckpt.all_steps() == [4, 5]
    assert ckpt.latest_step() == 5
    step, restored, _ = ckpt.restore(checkpoint.abstract_like(_state(mesh, 0.0)), step=4)
  assert step == 4
  assert _kernel_value(restored) == 4.0


def test_save_interval_and_force(tmp_path):
  mesh = sharding.make_mesh()
  with checkpoint.Checkpointer(tmp_path, save_interval_steps=3, max_to_keep=10) as ckpt:
    saved = [step for step in range(8) if ckpt.save(step, _state(mesh, float(step)))]
    assert ckpt.save(7, _state(mesh, 7.0), force=True)
    ckpt.wait()
    assert saved == [0, 3, 6]
    assert ckpt.all_steps() == [0, 3, 6, 7]


def test_empty_directory_restores_none(tmp_path):
  directory = tmp_path / "new" / "run"
  with checkpoint.Checkpointer(directory) as ckpt:
    assert ckpt.latest_step() is None
    assert ckpt.all_steps() == []
    assert ckpt.restore(checkpoint.abstract_like(_state(sharding.make_mesh(), 0.0))) is None
  assert directory.is_dir()


def test_existing_step_is_not_overwritten(tmp_path, caplog):
  mesh = sharding.make_mesh()
  _save_steps(tmp_path, [1, 2], mesh)
  with checkpoint.Checkpointer(tmp_path) as ckpt, caplog.at_level(logging.WARNING):
    assert not ckpt.save(2, _state(mesh, 99.0))
    assert not ckpt.save(2, _state(mesh, 99.0), force=True)
    _, restored, metadata = ckpt.restore(checkpoint.abstract_like(_state(mesh, 0.0)))
  assert "step 2 already exists" in caplog.text
  assert _kernel_value(restored) == 2.0
  assert metadata == {"position": 20}


def _data_files(step_dir):
  return [path for path in (step_dir / "state").rglob("*") if path.parent.name == "d"]


def _truncate_array_data(step_dir):
  for path in _data_files(step_dir):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _delete_array_data(step_dir):
  for path in _data_files(step_dir):
    path.unlink()


def _garble_metadata(step_dir):
  (step_dir / "metadata" / "metadata").write_text("{not json")


def _empty_step_dir(step_dir):
  shutil.rmtree(step_dir)
  step_dir.mkdir()


# A failed TensorStore read may complete a callback after Orbax closed its event loop.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.parametrize(
  "corrupt", [_truncate_array_data, _delete_array_data, _garble_metadata, _empty_step_dir]
)
def test_corrupt_latest_falls_back_to_previous(tmp_path, caplog, corrupt):
  mesh = sharding.make_mesh()
  _save_steps(tmp_path, [1, 2, 3], mesh)
  assert _data_files(tmp_path / "3")
  corrupt(tmp_path / "3")

  with checkpoint.Checkpointer(tmp_path) as ckpt, caplog.at_level(logging.WARNING):
    assert ckpt.latest_step() == 3
    step, restored, metadata = ckpt.restore(checkpoint.abstract_like(_state(mesh, 0.0)))

  assert (step, metadata) == (2, {"position": 20})
  assert _kernel_value(restored) == 2.0
  assert "Cannot restore checkpoint step 3" in caplog.text
  # The corrupt step is moved aside, the good ones stay; a restart neither tries it again nor
  # refuses to save step 3 afresh.
  assert _step_names(tmp_path) == ["1", "2", "3.corrupt"]
  caplog.clear()
  with checkpoint.Checkpointer(tmp_path) as ckpt, caplog.at_level(logging.WARNING):
    assert ckpt.all_steps() == [1, 2]
    step, _, _ = ckpt.restore(checkpoint.abstract_like(_state(mesh, 0.0)))
    assert step == 2 and "Cannot restore" not in caplog.text
    assert ckpt.save(3, _state(mesh, 3.0))
  assert _step_names(tmp_path) == ["1", "2", "3", "3.corrupt"]


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_a_corrupt_step_is_deleted_where_directories_cannot_be_renamed(tmp_path, monkeypatch):
  mesh = sharding.make_mesh()
  _save_steps(tmp_path, [1, 2], mesh)
  _truncate_array_data(tmp_path / "2")

  def rename(self, target):
    raise NotImplementedError("directory renames are not supported")

  monkeypatch.setattr(type(checkpoint.epath.Path(tmp_path)), "rename", rename)
  with checkpoint.Checkpointer(tmp_path) as ckpt:
    step, restored, _ = ckpt.restore(checkpoint.abstract_like(_state(mesh, 0.0)))
    assert (step, _kernel_value(restored)) == (1, 1.0)
    assert ckpt.all_steps() == [1]
  assert _step_names(tmp_path) == ["1"]


def _step_names(directory):
  return sorted(path.name for path in directory.iterdir() if path.name[0].isdigit())


def _failing_restore(monkeypatch, step, error):
  """Makes reading checkpoint `step` raise `error`, as a storage failure would."""
  original = checkpoint.ocp.CheckpointManager.restore

  def restore(self, candidate, *args, **kwargs):
    if candidate == step:
      raise error
    return original(self, candidate, *args, **kwargs)

  monkeypatch.setattr(checkpoint.ocp.CheckpointManager, "restore", restore)


@pytest.mark.parametrize(
  "error",
  [
    PermissionError(13, "Permission denied"),
    OSError(5, "Input/output error"),
    ValueError("UNAVAILABLE: Error reading: 503 Service Unavailable"),
  ],
)
def test_storage_errors_propagate_instead_of_falling_back(tmp_path, monkeypatch, error):
  mesh = sharding.make_mesh()
  _save_steps(tmp_path, [1, 2], mesh)
  _failing_restore(monkeypatch, 2, error)
  with checkpoint.Checkpointer(tmp_path) as ckpt, pytest.raises(type(error)) as raised:
    ckpt.restore(checkpoint.abstract_like(_state(mesh, 0.0)))
  assert raised.value is error
  assert _step_names(tmp_path) == ["1", "2"]


def test_every_process_restores_the_step_process_0_could_restore(tmp_path, monkeypatch):
  """As process 1 of 2: it can read step 3, but process 0 could not, so both restore step 2."""
  mesh = sharding.make_mesh()
  _save_steps(tmp_path, [1, 2, 3], mesh)
  process_0_read = iter([False, True])  # process 0's outcomes for steps 3 and 2
  broadcasts = []

  def broadcast_one_to_all(value):
    broadcasts.append(np.asarray(value).tolist())
    if np.asarray(value).dtype == bool:  # this process's outcome of a restore
      return np.bool_(next(process_0_read))
    return value  # the step list, the same on every process here

  monkeypatch.setattr(checkpoint, "_process", lambda: (1, 2))
  monkeypatch.setattr(checkpoint.multihost_utils, "broadcast_one_to_all", broadcast_one_to_all)
  monkeypatch.setattr(checkpoint.multihost_utils, "sync_global_devices", lambda name: None)
  with checkpoint.Checkpointer(tmp_path) as ckpt:
    step, restored, _ = ckpt.restore(checkpoint.abstract_like(_state(mesh, 0.0)))
  assert (step, _kernel_value(restored)) == (2, 2.0)
  assert broadcasts == [3, [1, 2, 3], True, True]
  assert _step_names(tmp_path) == ["1", "2", "3"]  # process 0 alone moves steps aside


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_all_corrupt_raises_checkpoint_error(tmp_path):
  mesh = sharding.make_mesh()
  _save_steps(tmp_path, [1, 2], mesh)
  _truncate_array_data(tmp_path / "1")
  _garble_metadata(tmp_path / "2")
  abstract = checkpoint.abstract_like(_state(mesh, 0.0))

  with checkpoint.Checkpointer(tmp_path) as ckpt:
    with pytest.raises(checkpoint.CheckpointError) as error:
      ckpt.restore(abstract)
    message = str(error.value)
    assert message.startswith(f"No restorable checkpoint in {tmp_path}: tried steps [2, 1]")
    assert "\n" not in message
    with pytest.raises(checkpoint.CheckpointError, match=r"tried steps \[2\]"):
      ckpt.restore(abstract, step=2)
    with pytest.raises(checkpoint.CheckpointError, match=r"No checkpoint at step 4 .*\[1, 2\]"):
      ckpt.restore(abstract, step=4)
  assert _step_names(tmp_path) == ["1", "2"]  # with no good step to prove it, none is moved


def test_leftover_temporary_directory_is_ignored(tmp_path, caplog):
  mesh = sharding.make_mesh()
  _save_steps(tmp_path, [1, 2], mesh)
  partial = tmp_path / "3.orbax-checkpoint-tmp"
  (partial / "state").mkdir(parents=True)
  (partial / "state" / "_METADATA").write_text("{")

  with checkpoint.Checkpointer(tmp_path) as ckpt, caplog.at_level(logging.WARNING):
    assert ckpt.all_steps() == [1, 2]
    step, _, _ = ckpt.restore(checkpoint.abstract_like(_state(mesh, 0.0)))
    assert step == 2
    assert "Cannot restore" not in caplog.text
    assert ckpt.save(3, _state(mesh, 3.0))
    step, restored, _ = ckpt.restore(checkpoint.abstract_like(_state(mesh, 0.0)))
  assert step == 3
  assert _kernel_value(restored) == 3.0


def test_failed_async_save_keeps_earlier_checkpoints(tmp_path, monkeypatch):
  atomicity = pytest.importorskip("orbax.checkpoint._src.path.atomicity")
  mesh = sharding.make_mesh()
  _save_steps(tmp_path, [1, 2], mesh, max_to_keep=2)

  async def fail_finalize(*args, **kwargs):
    raise OSError("simulated storage failure")

  with checkpoint.Checkpointer(tmp_path, max_to_keep=2) as ckpt:
    with monkeypatch.context() as patch:
      patch.setattr(atomicity.AtomicRenameTemporaryPath, "finalize", fail_finalize)
      assert ckpt.save(3, _state(mesh, 3.0))
      with pytest.raises(OSError, match="simulated storage failure"):
        ckpt.wait()
    assert ckpt.all_steps() == [1, 2]
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.isdigit()) == ["1", "2"]
    step, restored, _ = ckpt.restore(checkpoint.abstract_like(_state(mesh, 0.0)))
    assert (step, _kernel_value(restored)) == (2, 2.0)
    assert ckpt.save(3, _state(mesh, 3.0))
    ckpt.wait()
    assert ckpt.all_steps() == [2, 3]


def test_a_relative_directory_saves_and_restores(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  state = {"w": jnp.arange(4.0)}
  with checkpoint.Checkpointer("runs/relative") as checkpoints:
    assert checkpoints.save(1, state)
    checkpoints.wait()
  with checkpoint.Checkpointer("runs/relative") as checkpoints:
    step, restored, _ = checkpoints.restore(checkpoint.abstract_like(state))
  assert step == 1
  np.testing.assert_array_equal(restored["w"], state["w"])
  assert os.path.isdir(tmp_path / "runs" / "relative" / "1")
