"""Tests for worldmodel.sharding on 8 fake CPU devices."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx
from jax.sharding import PartitionSpec as P

from worldmodel import sharding


def test_make_mesh_default_uses_all_devices_for_data():
  mesh = sharding.make_mesh()
  assert mesh.axis_names == ("data", "fsdp")
  assert dict(mesh.shape) == {"data": 8, "fsdp": 1}
  assert mesh.axis_types == (jax.sharding.AxisType.Auto,) * 2


@pytest.mark.parametrize(
  ("data", "fsdp", "expected"), [(-1, 4, (2, 4)), (2, -1, (2, 4)), (4, 2, (4, 2)), (1, 8, (1, 8))]
)
def test_make_mesh_sizes(data, fsdp, expected):
  mesh = sharding.make_mesh(data, fsdp)
  assert (mesh.shape["data"], mesh.shape["fsdp"]) == expected
  assert sorted(d.id for d in mesh.devices.flat) == list(range(8))


def test_make_mesh_on_device_subset():
  mesh = sharding.make_mesh(devices=jax.devices()[:2])
  assert dict(mesh.shape) == {"data": 2, "fsdp": 1}
  assert {d.id for d in mesh.devices.flat} == {0, 1}


@pytest.mark.parametrize(
  ("data", "fsdp", "message"),
  [
    (3, 2, "data=3 x fsdp=2 does not match the 8 devices"),
    (-1, 3, "data=-1 x fsdp=3 does not match the 8 devices"),
    (-1, -1, "At most one of data and fsdp may be -1"),
  ],
)
def test_make_mesh_rejects_bad_sizes(data, fsdp, message):
  with pytest.raises(ValueError, match=message):
    sharding.make_mesh(data, fsdp)


@dataclasses.dataclass(frozen=True)
class _SliceDevice:
  """A stand-in for a TPU device of a multi-slice pod: what mesh construction reads."""

  id: int
  slice_index: int
  platform: str = "cpu"
  device_kind: str = "stand-in"


def _slice_indices(mesh):
  return np.vectorize(lambda device: device.slice_index)(mesh.devices)


@pytest.mark.parametrize("interleaved", [False, True])
def test_make_mesh_on_two_slices_puts_data_across_slices_and_fsdp_within_one(interleaved):
  # Devices listed slice by slice, or alternating between the slices.
  slices = [i % 2 if interleaved else i // 4 for i in range(8)]
  devices = [_SliceDevice(i, slice_index) for i, slice_index in enumerate(slices)]
  mesh = sharding.make_mesh(-1, 2, devices=devices)
  assert dict(mesh.shape) == {"data": 4, "fsdp": 2}
  # Rows 0-1 of the data axis on slice 0, rows 2-3 on slice 1: each fsdp group is in one slice.
  np.testing.assert_array_equal(_slice_indices(mesh), [[0, 0], [0, 0], [1, 1], [1, 1]])
  assert sorted(device.id for device in mesh.devices.flat) == list(range(8))


def test_make_mesh_on_four_slices_and_bad_data_sizes():
  devices = [_SliceDevice(i, i // 2) for i in range(8)]
  mesh = sharding.make_mesh(4, 2, devices=devices)
  np.testing.assert_array_equal(_slice_indices(mesh), np.repeat(np.arange(4)[:, None], 2, 1))
  with pytest.raises(ValueError, match=r"^Mesh data=2 is not a multiple of the 4 slices\.$"):
    sharding.make_mesh(2, 4, devices=devices)


def test_batch_sharding_splits_rows_over_both_axes():
  mesh = sharding.make_mesh(2, 4)
  batch = jax.device_put(np.arange(32).reshape(16, 2), sharding.batch_sharding(mesh))
  assert {shard.data.shape for shard in batch.addressable_shards} == {(2, 2)}
  for (i, j), device in np.ndenumerate(mesh.devices):
    (shard,) = [s for s in batch.addressable_shards if s.device == device]
    first_row = 2 * (i * 4 + j)
    np.testing.assert_array_equal(shard.data[:, 0], [2 * first_row, 2 * first_row + 2])


def test_replicated_puts_full_array_on_every_device():
  mesh = sharding.make_mesh(2, 4)
  x = jax.device_put(np.arange(6.0), sharding.replicated(mesh))
  assert len(x.addressable_shards) == 8
  for shard in x.addressable_shards:
    np.testing.assert_array_equal(shard.data, np.arange(6.0))


@pytest.mark.parametrize(
  ("shape", "spec"),
  [
    ((64, 512), P(None, "fsdp")),  # Largest dimension.
    ((512, 64), P("fsdp", None)),
    ((128, 128), P(None, "fsdp")),  # Ties go to the last dimension.
    ((1001, 64), P(None, "fsdp")),  # Largest is not divisible by 4.
    ((3, 4096, 5), P(None, "fsdp", None)),
    ((1001, 35), P()),  # No divisible dimension.
    ((32, 32), P()),  # Fewer than min_size elements.
    ((), P()),
  ],
)
def test_fsdp_sharding_rule(shape, spec):
  mesh = sharding.make_mesh(2, 4)
  tree = {"array": jnp.zeros(shape), "abstract": jax.ShapeDtypeStruct(shape, jnp.bfloat16)}
  shardings = sharding.fsdp_sharding(mesh, tree, min_size=2048)
  assert shardings["array"].spec == spec
  assert shardings["abstract"].spec == spec
  assert shardings["array"].mesh is mesh


def test_fsdp_sharding_of_python_scalars_is_replicated():
  mesh = sharding.make_mesh(2, 4)
  shardings = sharding.fsdp_sharding(mesh, {"step": 3, "lr": 0.1}, min_size=1)
  assert shardings["step"].spec == P()
  assert shardings["lr"].spec == P()


def test_fsdp_sharding_default_min_size():
  mesh = sharding.make_mesh(4, 2)
  tree = {"big": jnp.zeros((128, 128)), "small": jnp.zeros((127, 128))}
  shardings = sharding.fsdp_sharding(mesh, tree)
  assert shardings["big"].spec == P(None, "fsdp")
  assert shardings["small"].spec == P()


class _MLP(nnx.Module):
  def __init__(self, rngs: nnx.Rngs):
    self.up = nnx.Linear(64, 512, rngs=rngs)
    self.down = nnx.Linear(512, 8, rngs=rngs)


def test_fsdp_sharding_of_nnx_and_optax_state():
  mesh = sharding.make_mesh(2, 4)
  params = nnx.state(_MLP(nnx.Rngs(0)), nnx.Param)
  opt_state = optax.adamw(1e-3).init(params)
  tree = {"params": params, "opt_state": opt_state}

  shardings = sharding.fsdp_sharding(mesh, tree, min_size=4096)
  placed = sharding.shard_like(tree, shardings)

  assert shardings["params"]["up"]["kernel"].get_value().spec == P(None, "fsdp")
  assert shardings["params"]["down"]["kernel"].get_value().spec == P("fsdp", None)
  assert shardings["params"]["up"]["bias"].get_value().spec == P()
  adam = shardings["opt_state"][0]
  assert adam.count.spec == P()
  assert adam.mu["up"]["kernel"].get_value().spec == P(None, "fsdp")
  assert adam.nu["down"]["kernel"].get_value().spec == P("fsdp", None)

  up_kernel = placed["params"]["up"]["kernel"][...]
  assert {s.data.shape for s in up_kernel.addressable_shards} == {(64, 128)}
  down_nu = placed["opt_state"][0].nu["down"]["kernel"][...]
  assert {s.data.shape for s in down_nu.addressable_shards} == {(128, 8)}
  np.testing.assert_array_equal(up_kernel, params["up"]["kernel"][...])


def _init_params():
  rng = np.random.default_rng(0)
  return {
    "w1": rng.normal(size=(16, 256)).astype(np.float32) / 4.0,
    "b1": np.linspace(-1.0, 1.0, 256, dtype=np.float32),
    "w2": rng.normal(size=(256, 4)).astype(np.float32) / 16.0,
  }


def _loss(params, batch):
  hidden = jnp.tanh(batch["x"] @ params["w1"] + params["b1"])
  return jnp.mean((hidden @ params["w2"] - batch["y"]) ** 2)


def _batch():
  rng = np.random.default_rng(1)
  return {
    "x": rng.normal(size=(32, 16)).astype(np.float32),
    "y": rng.normal(size=(32, 4)).astype(np.float32),
  }


def _sgd_step(params, batch):
  loss, grads = jax.value_and_grad(_loss)(params, batch)
  return loss, grads, jax.tree.map(lambda p, g: p - 0.1 * g, params, grads)


def test_sharded_training_step_matches_unsharded():
  params, batch = _init_params(), _batch()
  ref_loss, ref_grads, ref_params = jax.jit(_sgd_step)(params, batch)
  assert float(ref_loss) > 0.1

  for data, fsdp, devices in [(8, 1, None), (4, 2, None), (2, 4, None), (1, 1, jax.devices()[:1])]:
    mesh = sharding.make_mesh(data, fsdp, devices=devices)
    param_shardings = sharding.fsdp_sharding(mesh, params, min_size=1024)
    batch_sharding = sharding.batch_sharding(mesh)
    step = jax.jit(
      _sgd_step,
      in_shardings=(param_shardings, batch_sharding),
      out_shardings=(sharding.replicated(mesh), param_shardings, param_shardings),
    )
    with jax.set_mesh(mesh):
      loss, grads, new_params = step(
        sharding.shard_like(params, param_shardings), sharding.shard_like(batch, batch_sharding)
      )

    np.testing.assert_allclose(loss, ref_loss, rtol=1e-5)
    for name in params:
      np.testing.assert_allclose(grads[name], ref_grads[name], rtol=1e-5, atol=1e-6)
      np.testing.assert_allclose(new_params[name], ref_params[name], rtol=1e-5, atol=1e-6)
      assert new_params[name].sharding == param_shardings[name]
    assert param_shardings["w1"].spec == P(None, "fsdp")
    assert param_shardings["w2"].spec == P("fsdp", None)
    assert param_shardings["b1"].spec == P()
    assert new_params["w1"].addressable_shards[0].data.shape == (16, 256 // fsdp)
    assert grads["w2"].addressable_shards[0].data.shape == (256 // fsdp, 4)
