"""The DiT's blocks stacked along a layer axis and run with nnx.scan: the same outputs as a loop
over the layers, an unsharded layer axis, and checkpoints of per-block parameters (written
before the blocks were stacked) restoring through the trainer's restore path."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import runs
from flax import nnx
from jax.sharding import PartitionSpec as P

from experiments import train
from worldmodel import checkpoint, dit, sharding

TINY = dict(**dit.SIZES["micro"], num_frames=4, resolution=8, patch_size=(1, 2, 2))


def _inputs(batch: int = 2, resolution: int = 8, frames: int = 4):
  rng = np.random.default_rng(0)
  shape = (batch, frames, resolution, resolution, 3)
  noisy = rng.normal(size=shape).astype(np.float32)
  context = rng.uniform(size=shape).astype(np.float32)
  time = rng.uniform(size=batch).astype(np.float32)
  mask = np.zeros((batch, frames), np.float32)
  mask[:, : frames // 2] = 1.0
  return noisy, time, context, mask


def _perturbed(tree, seed: int = 1, scale: float = 0.2):
  """`tree` with noise added to every array (so that the DiT's outputs are not zero)."""
  rng = np.random.default_rng(seed)

  def perturb(leaf):
    if not jnp.issubdtype(leaf.dtype, jnp.floating):
      return leaf
    return leaf + (scale * rng.normal(size=leaf.shape)).astype(leaf.dtype)

  return jax.tree.map(perturb, tree)


def _perturbed_model(model: nnx.Module) -> nnx.Module:
  graphdef, state = nnx.split(model)
  return nnx.merge(graphdef, _perturbed(state))


def _looped_blocks(blocks, x, time_modulation, angles, grid, *, remat):
  """The blocks as a Python loop over layers sliced from the stacked parameters (the forward
  before the blocks were scanned)."""
  graphdef, state = nnx.split(blocks)
  depth = jax.tree.leaves(state)[0].shape[0]
  for index in range(depth):
    block = nnx.merge(graphdef, jax.tree.map(lambda leaf, index=index: leaf[index], state))
    apply = nnx.remat(lambda block, x: block(x, time_modulation, angles, grid)) if remat else None
    x = apply(block, x) if remat else block(x, time_modulation, angles, grid)
  return x


@pytest.mark.parametrize(
  "options",
  [
    dict(attention="full"),
    pytest.param(dict(attention="factorized", remat=True), marks=pytest.mark.slow),
    pytest.param(
      dict(attention="factorized", context_input="held", guide_channels=2, state_features=3),
      marks=pytest.mark.slow,
    ),
    pytest.param(dict(attention="full", attention_impl="blockwise"), marks=pytest.mark.slow),
  ],
)
def test_scanned_blocks_give_the_outputs_and_gradients_of_a_loop(options, monkeypatch):
  model = _perturbed_model(dit.VideoDiT(**{**TINY, "depth": 3}, **options, rngs=nnx.Rngs(0)))
  graphdef, state = nnx.split(model)
  inputs = list(_inputs())
  if options.get("guide_channels"):
    inputs.append(np.random.default_rng(2).normal(size=(2, 4, 8, 8, 2)).astype(np.float32))
    inputs.append(np.random.default_rng(3).normal(size=(2, 3)).astype(np.float32))

  def loss(state):
    return jnp.mean(nnx.merge(graphdef, state)(*inputs) ** 2)

  def output(state):
    return nnx.merge(graphdef, state)(*inputs)

  scanned_out = jax.jit(output)(state)
  scanned_loss, scanned_grads = jax.jit(jax.value_and_grad(loss))(state)
  monkeypatch.setattr(dit, "_apply_blocks", _looped_blocks)
  looped_out = jax.jit(output)(state)
  looped_loss, looped_grads = jax.jit(jax.value_and_grad(loss))(state)

  assert float(jnp.abs(looped_out).mean()) > 1e-2
  tolerance = 1e-5
  np.testing.assert_allclose(scanned_out, looped_out, atol=tolerance, rtol=tolerance)
  np.testing.assert_allclose(scanned_loss, looped_loss, rtol=tolerance)
  scanned_leaves, looped_leaves = jax.tree.leaves(scanned_grads), jax.tree.leaves(looped_grads)
  for scanned, looped in zip(scanned_leaves, looped_leaves, strict=True):
    difference = np.linalg.norm(np.asarray(scanned) - np.asarray(looped))
    assert difference <= 10 * tolerance * (np.linalg.norm(np.asarray(looped)) + 1e-6)


def test_blocks_are_stacked_and_unstack_to_the_per_block_layout():
  depth = 3
  model = dit.VideoDiT(**{**TINY, "depth": depth}, attention="factorized", rngs=nnx.Rngs(0))
  params = nnx.state(model, nnx.Param)
  assert params["blocks"]["mlp"]["fc1"]["kernel"][...].shape == (depth, 64, 256)
  assert params["blocks"]["modulation"][...].shape == (depth, 6, 64)

  # The layout before the change: an nnx.List of DiTBlocks (blocks/0/..., blocks/1/..., ...).
  per_block = nnx.List(
    [dit.DiTBlock(model.config, dtype=jnp.float32, rngs=nnx.Rngs(i)) for i in range(depth)]
  )
  old_blocks = nnx.state(per_block, nnx.Param)
  unstacked = dit.unstack_block_params(params)
  assert jax.tree.structure(unstacked["blocks"]) == jax.tree.structure(old_blocks)
  assert jax.tree.structure(unstacked) != jax.tree.structure(params)
  for index in range(depth):
    np.testing.assert_array_equal(
      unstacked["blocks"][index]["attentions"][1]["qkv"]["kernel"][...],
      params["blocks"]["attentions"][1]["qkv"]["kernel"][...][index],
    )
  restacked = dit.stack_block_params(unstacked)
  assert jax.tree.structure(restacked) == jax.tree.structure(params)
  jax.tree.map(np.testing.assert_array_equal, restacked, params)
  # A tree already in the stacked layout is left as it is.
  assert jax.tree.structure(dit.stack_block_params(params)) == jax.tree.structure(params)


def test_fsdp_sharding_never_shards_the_layer_axis():
  mesh = sharding.make_mesh(2, 4)
  # The layer axis is the largest, divisible dimension; the rule skips it.
  tree = {"blocks": {"w": jnp.zeros((64, 8, 4))}, "other": jnp.zeros((64, 8, 4))}
  shardings = sharding.fsdp_sharding(mesh, tree, min_size=16)
  assert shardings["blocks"]["w"].spec == P(None, "fsdp", None)
  assert shardings["other"].spec == P("fsdp", None, None)

  # Each layer of a DiT is sharded as its per-block parameters were before the stacking.
  model = nnx.eval_shape(lambda: dit.make_dit("small", rngs=nnx.Rngs(0), **_video()))
  params = nnx.state(model, nnx.Param)
  stacked = sharding.fsdp_sharding(mesh, params)
  per_block = sharding.fsdp_sharding(mesh, dit.unstack_block_params(params))
  stacked_specs = jax.tree.leaves(stacked["blocks"])
  layer_specs = jax.tree.leaves(per_block["blocks"][0])
  assert any("fsdp" in sharding_.spec for sharding_ in stacked_specs)
  for stacked_sharding, layer_sharding in zip(stacked_specs, layer_specs, strict=True):
    spec = tuple(stacked_sharding.spec)
    assert not spec or spec[0] is None
    assert spec[1:] == tuple(layer_sharding.spec)[: max(len(spec) - 1, 0)]


def _video():
  return dict(num_frames=4, resolution=16, patch_size=(1, 4, 4))


@pytest.mark.slow
def test_a_checkpoint_of_per_block_parameters_restores_with_the_same_outputs(tmp_path):
  config = runs.micro_config()
  experiment = dataclasses.replace(train.make_experiment(config), mesh=sharding.make_mesh(2, 4))
  tx, _ = train.make_optimizer(config)
  model = train.build_model(config, config.seed, experiment.scene)
  graphdef, params, rest = nnx.split(model, nnx.Param, ...)
  params = _perturbed(params)
  state = train.init_state(experiment, tx, params)
  state["opt"] = _perturbed(state["opt"], seed=2, scale=0.01)

  # Written as before the change: per-block parameters and Adam moments, fsdp-sharded per block.
  old_state = dit.unstack_block_params(state)
  old_state = sharding.shard_like(old_state, sharding.fsdp_sharding(experiment.mesh, old_state))
  assert 0 in old_state["ema"]["blocks"] and 0 in old_state["opt"][1][0].mu["blocks"]
  directory = tmp_path / "checkpoints"
  with checkpoint.Checkpointer(directory) as checkpoints:
    assert checkpoints.save(5, old_state)

  step, ema = train.restore_params(experiment, str(tmp_path))
  assert step == 5
  assert sorted(path.name for path in directory.iterdir()) == ["5"]  # not moved aside
  jax.tree.map(np.testing.assert_array_equal, ema, params)
  stacked_kernel = ema["blocks"]["mlp"]["fc1"]["kernel"][...]
  assert stacked_kernel.sharding.spec[0] is None

  # The full training state (as `train.run` restores it) converts too, Adam moments included.
  abstract = jax.eval_shape(lambda: train.init_state(experiment, tx))
  shardings = sharding.fsdp_sharding(experiment.mesh, abstract)
  with checkpoint.Checkpointer(directory) as checkpoints:
    _, restored, _ = checkpoints.restore(
      checkpoint.abstract_like(abstract, shardings), earlier_layouts=train.EARLIER_LAYOUTS
    )
    with pytest.raises(checkpoint.CheckpointError):
      checkpoints.restore(checkpoint.abstract_like(abstract, shardings), step=5)
  jax.tree.map(np.testing.assert_array_equal, restored, state)
  assert jax.tree.map(lambda a: a.sharding, restored) == shardings

  # Outputs equal those of the per-block parameters applied block by block.
  noisy, time, context, mask = _inputs(resolution=16)
  restored_out = nnx.merge(graphdef, ema, rest)(noisy, time, context, mask)
  old_blocks = old_state["ema"]["blocks"]
  block_graphdef = nnx.split(model.blocks)[0]

  def per_block(blocks, x, time_modulation, angles, grid, *, remat):
    for index in range(len(old_blocks)):
      block = nnx.merge(block_graphdef, old_blocks[index])
      x = block(x, time_modulation, angles, grid)
    return x

  original = dit._apply_blocks
  dit._apply_blocks = per_block
  try:
    old_out = nnx.merge(graphdef, params, rest)(noisy, time, context, mask)
  finally:
    dit._apply_blocks = original
  assert float(jnp.abs(old_out).mean()) > 1e-2
  np.testing.assert_allclose(restored_out, old_out, rtol=1e-4, atol=1e-4)


def test_a_seed_gives_the_parameters_it_gave_before_the_blocks_were_stacked():
  model = dit.make_dit("micro", num_frames=4, resolution=16, patch_size=(1, 8, 8), rngs=nnx.Rngs(0))
  kernel = np.asarray(nnx.state(model, nnx.Param)["blocks"]["attentions"][0]["qkv"]["kernel"][...])
  # sum |kernel| of each block's qkv projection when the blocks were an nnx.List (per-block)
  np.testing.assert_allclose(np.abs(kernel).sum(axis=(1, 2)), [930.6327, 940.7401], rtol=1e-6)
