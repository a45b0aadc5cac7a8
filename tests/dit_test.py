"""Tests for the video DiT: shapes, zero init, RoPE, attention grouping, sizes and FLOPs."""

import functools
import re
from unittest import mock

import jax
import jax.numpy as jnp
import numpy as np
from absl.testing import absltest, parameterized
from flax import nnx

from worldmodel import dit

TINY = dict(**dit.SIZES["micro"], num_frames=4, resolution=8, patch_size=(1, 2, 2))


def _inputs(batch: int = 2):
  """(noisy, time, context, context_mask) for 4-frame 8x8 videos, the first 2 frames context."""
  rng = np.random.default_rng(0)
  shape = (batch, 4, 8, 8, 3)
  noisy = rng.normal(size=shape).astype(np.float32)
  context = rng.uniform(size=shape).astype(np.float32)
  time = rng.uniform(size=batch).astype(np.float32)
  context_mask = np.repeat([[1.0, 1.0, 0.0, 0.0]], batch, axis=0).astype(np.float32)
  return noisy, time, context, context_mask


@functools.cache
def _model(attention: str = "full", patch_size=(1, 2, 2), dtype=jnp.float32) -> dit.VideoDiT:
  config = {**TINY, "patch_size": patch_size}
  return dit.VideoDiT(**config, attention=attention, dtype=dtype, rngs=nnx.Rngs(0))


def _perturbed(model: nnx.Module, seed: int = 1, scale: float = 0.2) -> nnx.Module:
  """A copy of `model` with noise added to every parameter (so outputs are not zero)."""
  rng = np.random.default_rng(seed)
  graphdef, state = nnx.split(model)
  state = jax.tree.map(lambda p: np.asarray(p) + scale * rng.normal(size=p.shape), state)
  return nnx.merge(graphdef, jax.tree.map(lambda p: jnp.asarray(p, jnp.float32), state))


def _unrolled_blocks(blocks, x, time_modulation, angles, grid, *, remat):
  """The stacked blocks applied layer by layer in a Python loop (for XLA's FLOP count)."""
  del remat
  graphdef, state = nnx.split(blocks)
  for index in range(dit.SIZES["micro"]["depth"]):
    block = nnx.merge(graphdef, jax.tree.map(lambda leaf, index=index: leaf[index], state))
    x = block(x, time_modulation, angles, grid)
  return x


_forward = nnx.jit(lambda model, *inputs: model(*inputs))


class PatchTest(absltest.TestCase):
  def test_patchify_layout_and_round_trip(self):
    video = jnp.arange(2 * 4 * 6 * 8 * 3, dtype=jnp.float32).reshape(2, 4, 6, 8, 3)
    patch = (2, 3, 4)
    tokens = dit.patchify(video, patch)
    self.assertEqual(tokens.shape, (2, 2 * 2 * 2, 2 * 3 * 4 * 3))
    # Token 3 is (t, h, w) patch (0, 1, 1).
    expected = video[:, 0:2, 3:6, 4:8].reshape(2, -1)
    np.testing.assert_array_equal(tokens[:, 3], expected)
    np.testing.assert_array_equal(dit.unpatchify(tokens, patch, (2, 2, 2)), video)


@jax.jit
def _rope_scores(q, k, positions):
  """Attention logits [B, N, N] of one head after RoPE at [N, 3] positions."""
  angles = dit.rope_angles(positions, q.shape[-1])
  return jnp.einsum("bqhd,bkhd->bqk", dit.apply_rope(q, angles), dit.apply_rope(k, angles))


class RopeTest(absltest.TestCase):
  def test_scores_depend_only_on_relative_positions(self):
    rng = np.random.default_rng(0)
    q, k = rng.normal(size=(2, 1, 10, 1, 24)).astype(np.float32)
    positions = rng.integers(0, 16, size=(10, 3))
    scores = _rope_scores(q, k, positions)
    shifted = _rope_scores(q, k, positions + np.array([5, -3, 7]))
    np.testing.assert_allclose(shifted, scores, atol=1e-4)
    # Moving one token along any single axis changes its scores: every axis is encoded.
    for axis in range(3):
      moved_positions = positions.copy()
      moved_positions[0, axis] += 1
      moved = _rope_scores(q, k, moved_positions)
      self.assertGreater(float(np.abs(moved - scores)[0, 0, 1:].max()), 1e-2)

  def test_rotation_preserves_norm(self):
    x = np.random.default_rng(0).normal(size=(2, 6, 3, 12)).astype(np.float32)
    angles = dit.rope_angles(dit.grid_positions((1, 2, 3)), 12)
    self.assertEqual(angles.shape, (6, 6))
    rotated = np.asarray(dit.apply_rope(x, angles))
    np.testing.assert_allclose(
      np.linalg.norm(rotated, axis=-1), np.linalg.norm(x, axis=-1), rtol=1e-5
    )


class AttentionTest(parameterized.TestCase):
  @parameterized.parameters("space", "time")
  def test_grouped_attention_equals_full_attention_per_group(self, axis):
    grid = (3, 2, 2)
    x = np.random.default_rng(0).normal(size=(2, 12, 64)).astype(np.float32)
    grouped = dit.SelfAttention(64, 2, axis, dtype=jnp.float32, rngs=nnx.Rngs(0))
    full = dit.SelfAttention(64, 2, "all", dtype=jnp.float32, rngs=nnx.Rngs(0))
    attend = nnx.jit(lambda attention, x, angles: attention(x, angles, grid))
    angles = np.asarray(dit.rope_angles(dit.grid_positions(grid), 32))
    out = attend(grouped, x, angles)
    token_index = np.arange(12).reshape(3, 4)  # [frame, position in frame]
    groups = token_index if axis == "space" else token_index.T
    for group in groups:
      np.testing.assert_allclose(out[:, group], attend(full, x[:, group], angles[group]), atol=1e-5)


class VideoDiTTest(parameterized.TestCase):
  @parameterized.parameters(("full", (1, 2, 2)), ("factorized", (2, 4, 4)))
  def test_outputs_zero_at_init(self, attention, patch_size):
    out = _forward(_model(attention, patch_size), *_inputs())
    self.assertEqual(out.shape, (2, 4, 8, 8, 3))
    np.testing.assert_array_equal(out, 0.0)

  @parameterized.product(attention=["full", "factorized"], dtype=[jnp.float32, jnp.bfloat16])
  def test_trained_model_output(self, attention, dtype):
    model = _perturbed(_model(attention, dtype=dtype))
    noisy, time, context, context_mask = _inputs()
    out = _forward(model, noisy, time, context, context_mask)
    self.assertEqual(out.shape, (2, 4, 8, 8, 3))
    self.assertEqual(out.dtype, jnp.float32)
    self.assertGreater(float(jnp.abs(out).mean()), 1e-2)
    # Diffusion time is used.
    other_time = _forward(model, noisy, 1.0 - time, context, context_mask)
    self.assertGreater(float(jnp.abs(other_time - out).max()), 1e-3)
    # Context is read on context frames only.
    changed = context.copy()
    changed[:, 2:] += 1.0
    np.testing.assert_array_equal(_forward(model, noisy, time, changed, context_mask), out)
    changed[:, :2] += 1.0
    changed_out = _forward(model, noisy, time, changed, context_mask)
    self.assertGreater(float(jnp.abs(changed_out - out).max()), 1e-3)

  @parameterized.parameters("masked", "held")
  def test_context_input_channels(self, context_input):
    model = dit.VideoDiT(**TINY, context_input=context_input, rngs=nnx.Rngs(0))
    noisy, _, context, context_mask = _inputs()
    channels = np.asarray(model.input_channels(noisy, context, context_mask))
    np.testing.assert_array_equal(channels[..., :3], noisy)
    np.testing.assert_array_equal(channels[..., 3:6][:, :2], context[:, :2])
    shown_later = channels[..., 3:6][:, 2:]  # frames 2 and 3 are generated
    expected = np.broadcast_to(context[:, 1:2], shown_later.shape) if context_input == "held" else 0
    np.testing.assert_array_equal(shown_later, expected)
    np.testing.assert_array_equal(
      channels[..., 6], np.broadcast_to(context_mask[:, :, None, None], channels.shape[:4])
    )

  def test_jit_of_split_state_matches_module_jit(self):
    model = _perturbed(_model("factorized"))
    graphdef, state = nnx.split(model)
    inputs = _inputs()

    @jax.jit
    def forward(state, *inputs):
      return nnx.merge(graphdef, state)(*inputs)

    np.testing.assert_allclose(forward(state, *inputs), _forward(model, *inputs), atol=1e-5)

  def test_remat_recomputes_the_scanned_block_with_the_same_values_and_gradients(self):
    config = {**TINY, "depth": 3}
    graphdef, state = nnx.split(_perturbed(dit.VideoDiT(**config, rngs=nnx.Rngs(0))))
    remat_graphdef, _ = nnx.split(dit.VideoDiT(**config, remat=True, rngs=nnx.Rngs(0)))
    inputs = _inputs()

    def loss(state, graphdef):
      return jnp.mean(nnx.merge(graphdef, state)(*inputs) ** 2)

    plain = functools.partial(loss, graphdef=graphdef)
    remat = functools.partial(loss, graphdef=remat_graphdef)
    # One scan over the blocks whose body is one rematerialized region (XLA on GPU / TPU then
    # stores only block inputs).
    regions = re.compile(r"\b(remat2|checkpoint)\[")
    remat_jaxpr = str(jax.make_jaxpr(remat)(state))
    self.assertLen(regions.findall(remat_jaxpr), 1)
    self.assertIn("length=3", remat_jaxpr)
    self.assertEmpty(regions.findall(str(jax.make_jaxpr(plain)(state))))
    value, grads = jax.jit(jax.value_and_grad(plain))(state)
    remat_value, remat_grads = jax.jit(jax.value_and_grad(remat))(state)
    self.assertGreater(float(value), 1e-3)
    np.testing.assert_allclose(remat_value, value, rtol=1e-6)
    jax.tree.map(
      lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-7), grads, remat_grads
    )

  def test_invalid_configs(self):
    with self.assertRaisesRegex(ValueError, "unknown attention 'local'; valid: full, factorized"):
      dit.DiTConfig(**TINY, attention="local")
    with self.assertRaisesRegex(ValueError, "patch_size"):
      dit.DiTConfig(**{**TINY, "patch_size": (3, 2, 2)})
    with self.assertRaisesRegex(ValueError, "unknown DiT size 'XXL'; valid: micro, .*XL"):
      dit.make_dit("XXL", num_frames=4, resolution=8, patch_size=(1, 2, 2), rngs=nnx.Rngs(0))


class SizeTest(parameterized.TestCase):
  @parameterized.parameters(("S", 22.5e6), ("B", 89.5e6))
  def test_parameter_count_matches_study(self, size, study_count):
    model = nnx.eval_shape(
      lambda: dit.make_dit(
        size, num_frames=8, resolution=32, patch_size=(1, 2, 2), rngs=nnx.Rngs(0)
      )
    )
    count = sum(p.size for p in jax.tree.leaves(nnx.state(model, nnx.Param)))
    self.assertAlmostEqual(count / study_count, 1.0, delta=0.1)

  @parameterized.parameters("full", "factorized")
  def test_forward_flops_match_xla(self, attention):
    model = _model(attention)
    graphdef, state = nnx.split(model)
    inputs = _inputs(batch=1)
    forward = jax.jit(lambda state, *inputs: nnx.merge(graphdef, state)(*inputs))
    # XLA's cost analysis counts a loop body once, so the blocks run unrolled here.
    with mock.patch.object(dit, "_apply_blocks", _unrolled_blocks):
      xla_flops = forward.lower(state, *inputs).compile().cost_analysis()["flops"]
    self.assertAlmostEqual(dit.forward_flops(model) / xla_flops, 1.0, delta=0.15)

  def test_forward_flops_scale_with_tokens(self):
    config = dit.DiTConfig(**dit.SIZES["B"], num_frames=8, resolution=32, patch_size=(1, 2, 2))
    flops = dit.forward_flops(config)
    # Matmul FLOPs of DiT-B blocks: 24 N D^2 (projections and MLP) + 4 N^2 D (attention).
    n, d = 8 * 16 * 16, 768
    self.assertAlmostEqual(flops / (12 * (24 * n * d * d + 4 * n * n * d)), 1.0, delta=0.02)


if __name__ == "__main__":
  absltest.main()
