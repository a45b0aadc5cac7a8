"""Tests for the attention implementations: blockwise against XLA (values, gradients, bfloat16,
whole DiTs) and the errors for unknown implementations and missing backends."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from worldmodel import attention, dit


def _qkv(tokens: int, heads: int, dtype=jnp.float32, seed: int = 0):
  rng = np.random.default_rng(seed)
  return tuple(jnp.asarray(rng.normal(size=(2, tokens, heads, 16)), dtype) for _ in range(3))


def _reference(q, k, v):
  return jax.nn.dot_product_attention(q, k, v, implementation="xla")


# (tokens, heads, block_size): a multiple of the block, not a multiple, a block longer than n.
CASES = [(64, 2, 16), (100, 4, 32), (40, 2, 512)]


@pytest.mark.parametrize("tokens,heads,block_size", CASES)
def test_blockwise_matches_xla(tokens, heads, block_size):
  q, k, v = _qkv(tokens, heads)
  out = attention.blockwise_attention(q, k, v, block_size)
  assert out.shape == q.shape and out.dtype == jnp.float32
  np.testing.assert_allclose(out, _reference(q, k, v), atol=2e-5, rtol=0)


@pytest.mark.parametrize("tokens,heads,block_size", CASES)
def test_blockwise_gradients_match_xla(tokens, heads, block_size):
  q, k, v = _qkv(tokens, heads)
  cotangent = jnp.asarray(np.random.default_rng(1).normal(size=q.shape), jnp.float32)

  def grads(fn):
    return jax.grad(lambda *qkv: jnp.sum(fn(*qkv) * cotangent), argnums=(0, 1, 2))(q, k, v)

  blockwise = grads(lambda *qkv: attention.blockwise_attention(*qkv, block_size))
  for got, want in zip(blockwise, grads(_reference), strict=True):
    np.testing.assert_allclose(got, want, atol=2e-5, rtol=0)


def test_blockwise_gradient_memory_stays_chunked():
  """The backward pass recomputes each chunk's logits rather than storing them all (without
  jax.checkpoint on the scan body the temporaries are about half of XLA's)."""
  shape = jax.ShapeDtypeStruct((1, 2048, 2, 16), jnp.float32)

  def temp_bytes(fn):
    grad = jax.grad(lambda *qkv: jnp.sum(fn(*qkv)), argnums=(0, 1, 2))
    return jax.jit(grad).lower(shape, shape, shape).compile().memory_analysis().temp_size_in_bytes

  xla = temp_bytes(_reference)
  assert xla > 2 * 2048**2 * 4  # the full [heads, tokens, tokens] float32 logits
  assert temp_bytes(lambda *qkv: attention.blockwise_attention(*qkv, 256)) < xla / 4


def test_blockwise_bfloat16():
  q, k, v = _qkv(100, 2, jnp.bfloat16)
  out = attention.attend(q, k, v, "blockwise", block_size=32)
  assert out.dtype == jnp.bfloat16
  want = _reference(*(x.astype(jnp.float32) for x in (q, k, v)))
  np.testing.assert_allclose(np.asarray(out, np.float32), want, atol=3e-2, rtol=0)


def test_attend_xla_is_the_reference():
  q, k, v = _qkv(64, 2)
  np.testing.assert_array_equal(attention.attend(q, k, v, "xla"), _reference(q, k, v))


@pytest.mark.parametrize("kind", dit.ATTENTION_KINDS)
def test_blockwise_dit_matches_xla(kind):
  """3 x 16 x 16 = 768 tokens: "full" blockwise attention runs over two key chunks of 512, the
  second one padded."""

  def model(impl):
    model = dit.make_dit(
      "tiny",
      num_frames=3,
      resolution=32,
      patch_size=(1, 2, 2),
      attention=kind,
      attention_impl=impl,
      rngs=nnx.Rngs(0),
    )
    # A fresh model outputs zero: perturb every parameter, the zero-initialised ones included.
    graphdef, state = nnx.split(model)
    rng = np.random.default_rng(1)
    state = jax.tree.map(lambda p: p + 0.1 * rng.normal(size=p.shape).astype(np.float32), state)
    return nnx.merge(graphdef, state)

  rng = np.random.default_rng(2)
  video = rng.normal(size=(2, 3, 32, 32, 3)).astype(np.float32)
  inputs = (video, np.array([0.3, 0.7], np.float32), video, np.array([[1, 0, 0]] * 2))
  forward = nnx.jit(lambda model, *inputs: model(*inputs))
  want = forward(model("xla"), *inputs)
  got = forward(model("blockwise"), *inputs)
  assert float(jnp.abs(want).max()) > 0.1
  np.testing.assert_allclose(got, want, atol=1e-4, rtol=0)


def test_unknown_impl():
  q, k, v = _qkv(8, 2)
  with pytest.raises(
    ValueError,
    match=r"^unknown model\.attention_impl 'flash'; valid: xla, cudnn, blockwise, splash$",
  ):
    attention.attend(q, k, v, "flash")
  with pytest.raises(ValueError, match=r"^unknown attention_impl 'flash'; valid: xla, "):
    dit.make_dit(
      "micro",
      num_frames=4,
      resolution=8,
      patch_size=(1, 2, 2),
      attention_impl="flash",
      rngs=nnx.Rngs(0),
    )


@pytest.mark.parametrize("impl,backend", [("cudnn", "gpu"), ("splash", "tpu")])
def test_backend_errors_on_cpu(impl, backend):
  q, k, v = _qkv(8, 2)
  with pytest.raises(
    ValueError,
    match=rf"^attention impl '{impl}' needs a {backend} backend; the default backend is 'cpu'$",
  ):
    attention.attend(q, k, v, impl)
