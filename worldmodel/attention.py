"""Selectable implementations of exact softmax self-attention for the video DiT.

All take queries, keys and values [batch, tokens, heads, head_dim] and scale logits by
1 / sqrt(head_dim), as `jax.nn.dot_product_attention` does:

- "xla": `jax.nn.dot_product_attention`'s XLA path, which materialises [batch, heads, tokens,
  tokens] logits (and keeps them for the backward pass).
- "cudnn": its cuDNN fused kernel (NVIDIA GPUs only).
- "blockwise": `blockwise_attention`, pure JAX: an online softmax over key chunks that never
  builds the full logits, in the forward or the backward pass.
- "splash": the TPU Pallas splash-attention kernel (TPUs only).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from sims import check_choice

IMPLEMENTATIONS = ("xla", "cudnn", "blockwise", "splash")
BLOCK_SIZE = 512  # key chunk of "blockwise", tile of "splash"


def attend(
  q: jax.Array, k: jax.Array, v: jax.Array, impl: str, block_size: int = BLOCK_SIZE
) -> jax.Array:
  """Self-attention output [batch, tokens, heads, head_dim] by implementation `impl`.

  block_size is the key chunk length of "blockwise" and the tile length of "splash".
  """
  check_choice("model.attention_impl", impl, IMPLEMENTATIONS)
  if impl == "xla":
    return jax.nn.dot_product_attention(q, k, v, implementation="xla")
  if impl == "cudnn":
    _check_backend(impl, "gpu")
    return jax.nn.dot_product_attention(q, k, v, implementation="cudnn")
  if impl == "blockwise":
    return blockwise_attention(q, k, v, block_size)
  _check_backend(impl, "tpu")
  return splash_attention(q, k, v, block_size)


def _check_backend(impl: str, backend: str) -> None:
  if jax.default_backend() != backend:
    raise ValueError(
      f"attention impl {impl!r} needs a {backend} backend; the default backend is "
      f"{jax.default_backend()!r}"
    )


def blockwise_attention(
  q: jax.Array, k: jax.Array, v: jax.Array, block_size: int = BLOCK_SIZE
) -> jax.Array:
  """Exact softmax attention that holds the logits of one key chunk at a time.

  Keys and values are cut into chunks of min(block_size, tokens) (the last one padded and
  masked) and a `lax.scan` over the chunks keeps each query's running max, softmax denominator
  and weighted sum of values in float32 (the flash-attention recurrence). The scan body is
  rematerialised, so the backward pass recomputes each chunk's logits instead of storing them:
  temporaries grow with tokens * block_size rather than tokens ** 2. Returns q's dtype.
  """
  b, n, h, d = k.shape
  block = min(block_size, n)
  chunks = -(-n // block)
  pad = chunks * block - n
  # [chunks, B, block, H, D] key and value chunks, and which of their tokens are real.
  k_chunks, v_chunks = (
    jnp.pad(x, ((0, 0), (0, pad), (0, 0), (0, 0))).reshape(b, chunks, block, h, d).swapaxes(0, 1)
    for x in (k, v)
  )
  valid = (jnp.arange(chunks * block) < n).reshape(chunks, block)
  scale = 1.0 / math.sqrt(d)

  @jax.checkpoint
  def step(carry, chunk):
    running_max, denominator, weighted = carry
    k_chunk, v_chunk, valid_chunk = chunk
    logits = scale * jnp.einsum("bqhd,bkhd->bhqk", q, k_chunk, preferred_element_type=jnp.float32)
    logits = jnp.where(valid_chunk, logits, -jnp.inf)
    # The max only guards exp against overflow: the output does not depend on it.
    new_max = jax.lax.stop_gradient(jnp.maximum(running_max, logits.max(axis=-1)))
    correction = jnp.exp(running_max - new_max)
    probs = jnp.exp(logits - new_max[..., None])
    denominator = denominator * correction + probs.sum(axis=-1)
    weighted = weighted * correction[..., None] + jnp.einsum(
      "bhqk,bkhd->bhqd", probs.astype(v.dtype), v_chunk, preferred_element_type=jnp.float32
    )
    return (new_max, denominator, weighted), None

  nq = q.shape[1]
  init = (
    jnp.full((b, h, nq), -jnp.inf, jnp.float32),
    jnp.zeros((b, h, nq), jnp.float32),
    jnp.zeros((b, h, nq, d), jnp.float32),
  )
  (_, denominator, weighted), _ = jax.lax.scan(step, init, (k_chunks, v_chunks, valid))
  out = weighted / denominator[..., None]
  return out.transpose(0, 2, 1, 3).astype(q.dtype)


def splash_attention(
  q: jax.Array, k: jax.Array, v: jax.Array, block_size: int = BLOCK_SIZE
) -> jax.Array:
  """Attention by the TPU Pallas splash-attention kernel, unmasked, vmapped over the batch.

  The kernel takes [heads, tokens, head_dim] per example with queries already scaled. Its tiles
  are min(block_size, tokens) long and must be multiples of 128, so short token axes (factorized
  "time" attention over a few frames) are rejected. Untested here: it runs only on TPUs.
  """
  from jax.experimental.pallas.ops.tpu.splash_attention import (
    splash_attention_kernel as kernel_lib,
  )
  from jax.experimental.pallas.ops.tpu.splash_attention import (
    splash_attention_mask as mask_lib,
  )

  _, n, h, d = q.shape
  tiles = ("block_q", "block_kv", "block_q_dkv", "block_kv_dkv", "block_q_dq", "block_kv_dq")
  block_sizes = kernel_lib.BlockSizes(**dict.fromkeys(tiles, min(block_size, n)))
  mask = mask_lib.MultiHeadMask([mask_lib.FullMask((n, n)) for _ in range(h)])
  kernel = kernel_lib.make_splash_mha(mask, block_sizes=block_sizes, head_shards=1, q_seq_shards=1)
  out = jax.vmap(kernel)(*(x.swapaxes(1, 2) for x in (q / math.sqrt(d), k, v)))
  return out.swapaxes(1, 2)
