"""A video diffusion transformer (DiT) in Flax NNX that generates frames given context frames.

Videos are [B, T, H, W, C] arrays. The network sees the noisy video, the clean context frames
and the context mask as one extra channel, cut into spatio-temporal patches. The context
channels carry either the context frames alone (zero elsewhere, `context_input="masked"`) or, at
every frame, the last context frame held forward (`"held"`: as Stable Video Diffusion feeds its
conditioning frame to every frame), so that each token sees the scene it has to change.
A guide (`worldmodel.guides`) adds `guide_channels` input channels (a simulated rendering) or a
`state_features`-long numeric state, embedded and added to every token.
Positions enter through 3-D rotary embeddings (RoPE) over the (t, h, w) patch coordinates and the
diffusion time through adaLN-single (PixArt-alpha): one timestep MLP shared by all blocks plus a
learned (6, D) table per block. Gates and the output layer start at zero, so a fresh model
outputs exactly zero.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.typing import DTypeLike

from sims import check_choice
from worldmodel import attention as attention_lib
from worldmodel.diffusion import held_context

# Transformer sizes: the study's DiT-S/B/L/XL and tiny ones for CPU runs.
SIZES = {
  "micro": dict(hidden=64, depth=2, heads=2),
  "tiny": dict(hidden=128, depth=4, heads=4),
  "small": dict(hidden=192, depth=6, heads=3),
  "S": dict(hidden=384, depth=12, heads=6),
  "B": dict(hidden=768, depth=12, heads=12),
  "L": dict(hidden=1024, depth=24, heads=16),
  "XL": dict(hidden=1152, depth=28, heads=16),
}
ATTENTION_KINDS = ("full", "factorized")
CONTEXT_INPUTS = ("masked", "held")
TIME_FREQUENCIES = 256
ROPE_THETA = 10000.0

_xavier = nnx.initializers.xavier_uniform()
_zeros = nnx.initializers.zeros


@dataclasses.dataclass(frozen=True)
class DiTConfig:
  """Architecture of a VideoDiT (everything but the compute dtype).

  patch_size is (time, height, width). attention "full" attends jointly over all T*h*w tokens;
  "factorized" does spatial attention within each frame, then temporal attention across frames
  at each spatial position, in every block. attention_impl picks how attention is computed
  (`worldmodel.attention.IMPLEMENTATIONS`; it changes no parameters). context_input: "masked" or
  "held" (module docstring).
  """

  num_frames: int
  resolution: int
  hidden: int
  depth: int
  heads: int
  channels: int = 3
  patch_size: tuple[int, int, int] = (1, 2, 2)
  mlp_ratio: float = 4.0
  attention: str = "full"
  attention_impl: str = "xla"
  context_input: str = "masked"
  guide_channels: int = 0
  state_features: int = 0

  def __post_init__(self):
    object.__setattr__(self, "patch_size", tuple(int(p) for p in self.patch_size))
    check_choice("attention", self.attention, ATTENTION_KINDS)
    check_choice("attention_impl", self.attention_impl, attention_lib.IMPLEMENTATIONS)
    check_choice("context_input", self.context_input, CONTEXT_INPUTS)
    if self.guide_channels < 0 or self.state_features < 0:
      raise ValueError(
        f"guide_channels={self.guide_channels} and state_features={self.state_features} "
        "must be >= 0"
      )
    pt, ph, pw = self.patch_size
    if self.num_frames % pt or self.resolution % ph or self.resolution % pw:
      raise ValueError(
        f"patch_size {self.patch_size} must divide (num_frames, resolution, resolution) = "
        f"({self.num_frames}, {self.resolution}, {self.resolution})"
      )
    head_dim, remainder = divmod(self.hidden, self.heads)
    if remainder or head_dim % 2 or head_dim < 6:
      raise ValueError(
        f"hidden {self.hidden} must split into {self.heads} heads of even size >= 6 (for RoPE)"
      )

  @property
  def grid(self) -> tuple[int, int, int]:
    """Number of patches along (t, h, w)."""
    pt, ph, pw = self.patch_size
    return self.num_frames // pt, self.resolution // ph, self.resolution // pw

  @property
  def num_tokens(self) -> int:
    return math.prod(self.grid)

  @property
  def mlp_hidden(self) -> int:
    return int(self.mlp_ratio * self.hidden)


def patchify(video: jax.Array, patch_size: tuple[int, int, int]) -> jax.Array:
  """[B, T, H, W, C] -> [B, N, pt * ph * pw * C] tokens, in row-major (t, h, w) order."""
  b, t, h, w, c = video.shape
  pt, ph, pw = patch_size
  x = video.reshape(b, t // pt, pt, h // ph, ph, w // pw, pw, c)
  return x.transpose(0, 1, 3, 5, 2, 4, 6, 7).reshape(b, -1, pt * ph * pw * c)


def unpatchify(
  tokens: jax.Array, patch_size: tuple[int, int, int], grid: tuple[int, int, int]
) -> jax.Array:
  """Inverse of `patchify`: [B, N, pt * ph * pw * C] -> [B, T, H, W, C]."""
  (pt, ph, pw), (gt, gh, gw) = patch_size, grid
  x = tokens.reshape(tokens.shape[0], gt, gh, gw, pt, ph, pw, -1)
  return x.transpose(0, 1, 4, 2, 5, 3, 6, 7).reshape(tokens.shape[0], gt * pt, gh * ph, gw * pw, -1)


def grid_positions(grid: tuple[int, int, int]) -> np.ndarray:
  """[N, 3] integer (t, h, w) coordinates of a token grid, in row-major token order."""
  return np.stack(np.meshgrid(*map(np.arange, grid), indexing="ij"), axis=-1).reshape(-1, 3)


def rope_angles(positions: jax.Array | np.ndarray, head_dim: int) -> jax.Array:
  """3-D RoPE rotation angles [N, head_dim // 2] for [N, 3] (t, h, w) positions.

  The head_dim // 2 rotated pairs are split between the axes (h and w get a third each, t the
  rest); an axis with n pairs rotates pair j at frequency ROPE_THETA ** (-j / n).
  """
  pairs = head_dim // 2
  axis_pairs = (pairs - 2 * (pairs // 3), pairs // 3, pairs // 3)
  positions = jnp.asarray(positions, jnp.float32)
  angles = [
    positions[:, axis, None] * ROPE_THETA ** (-jnp.arange(n, dtype=jnp.float32) / n)
    for axis, n in enumerate(axis_pairs)
  ]
  return jnp.concatenate(angles, axis=-1)


def apply_rope(x: jax.Array, angles: jax.Array) -> jax.Array:
  """Rotates [B, N, heads, head_dim] queries or keys by [N, head_dim // 2] angles.

  Pair j is (x[..., j], x[..., j + head_dim // 2]). Rotating queries and keys makes their dot
  products depend only on the difference of positions.
  """
  cos, sin = jnp.cos(angles)[:, None], jnp.sin(angles)[:, None]
  x1, x2 = jnp.split(x.astype(jnp.float32), 2, axis=-1)
  rotated = jnp.concatenate([x1 * cos - x2 * sin, x1 * sin + x2 * cos], axis=-1)
  return rotated.astype(x.dtype)


def timestep_embedding(time: jax.Array, dim: int = TIME_FREQUENCIES) -> jax.Array:
  """Sinusoidal features [B, dim] of diffusion times in [0, 1] (scaled by 1000, as in DiT)."""
  half = dim // 2
  freqs = jnp.exp(-math.log(10000.0) * jnp.arange(half, dtype=jnp.float32) / half)
  args = 1000.0 * jnp.asarray(time, jnp.float32)[:, None] * freqs
  return jnp.concatenate([jnp.cos(args), jnp.sin(args)], axis=-1)


def _layer_norm(x: jax.Array, eps: float = 1e-6) -> jax.Array:
  """LayerNorm without scale or bias, computed in float32."""
  x = x.astype(jnp.float32)
  centered = x - x.mean(axis=-1, keepdims=True)
  return centered * jax.lax.rsqrt(jnp.square(centered).mean(axis=-1, keepdims=True) + eps)


def _modulate(x: jax.Array, shift: jax.Array, scale: jax.Array) -> jax.Array:
  """adaLN modulation of [B, N, D] tokens by per-example [B, D] shift and scale."""
  return x * (1.0 + scale[:, None]) + shift[:, None]


class SelfAttention(nnx.Module):
  """Multi-head self-attention with RoPE.

  axis "all" attends over all tokens, "space" within each frame and "time" across frames at
  each spatial position. RoPE uses the full (t, h, w) coordinates in every case: within a group
  the other coordinates are equal, so only the group's own coordinates affect the scores.
  `impl` is the attention implementation (`worldmodel.attention.attend`).
  """

  def __init__(
    self,
    hidden: int,
    heads: int,
    axis: str,
    *,
    impl: str = "xla",
    dtype: DTypeLike,
    rngs: nnx.Rngs,
  ):
    self.heads = heads
    self.axis = axis
    self.impl = impl
    self.qkv = nnx.Linear(hidden, 3 * hidden, dtype=dtype, kernel_init=_xavier, rngs=rngs)
    self.out = nnx.Linear(hidden, hidden, dtype=dtype, kernel_init=_xavier, rngs=rngs)

  def __call__(self, x: jax.Array, angles: jax.Array, grid: tuple[int, int, int]) -> jax.Array:
    b, n, d = x.shape
    head_dim = d // self.heads
    qkv = self.qkv(x).reshape(b, n, 3, self.heads, head_dim)
    q, k, v = apply_rope(qkv[:, :, 0], angles), apply_rope(qkv[:, :, 1], angles), qkv[:, :, 2]
    frames, per_frame = grid[0], grid[1] * grid[2]
    if self.axis == "space":
      q, k, v = (a.reshape(b * frames, per_frame, self.heads, head_dim) for a in (q, k, v))
    elif self.axis == "time":
      q, k, v = (
        a.reshape(b, frames, per_frame, self.heads, head_dim)
        .swapaxes(1, 2)
        .reshape(b * per_frame, frames, self.heads, head_dim)
        for a in (q, k, v)
      )
    out = attention_lib.attend(q, k, v, self.impl)
    if self.axis == "time":
      out = out.reshape(b, per_frame, frames, self.heads, head_dim).swapaxes(1, 2)
    return self.out(out.reshape(b, n, d))


class MLP(nnx.Module):
  """Two-layer GELU MLP."""

  def __init__(self, hidden: int, mlp_hidden: int, *, dtype: DTypeLike, rngs: nnx.Rngs):
    self.fc1 = nnx.Linear(hidden, mlp_hidden, dtype=dtype, kernel_init=_xavier, rngs=rngs)
    self.fc2 = nnx.Linear(mlp_hidden, hidden, dtype=dtype, kernel_init=_xavier, rngs=rngs)

  def __call__(self, x: jax.Array) -> jax.Array:
    return self.fc2(jax.nn.gelu(self.fc1(x), approximate=True))


class DiTBlock(nnx.Module):
  """Transformer block with adaLN-single modulation.

  The shared [B, 6 * D] time modulation plus this block's (6, D) table give shift, scale and gate
  for attention and for the MLP (kept flat, so a feature-sharded modulation layer needs no
  reshape). A factorized block applies its spatial and temporal attentions in turn with the same
  attention shift, scale and gate. Gates start at zero, making the block the identity.
  """

  def __init__(self, config: DiTConfig, *, dtype: DTypeLike, rngs: nnx.Rngs):
    axes = ("all",) if config.attention == "full" else ("space", "time")
    self.attentions = nnx.List(
      [
        SelfAttention(
          config.hidden, config.heads, axis, impl=config.attention_impl, dtype=dtype, rngs=rngs
        )
        for axis in axes
      ]
    )
    self.mlp = MLP(config.hidden, config.mlp_hidden, dtype=dtype, rngs=rngs)
    self.modulation = nnx.Param(jnp.zeros((6, config.hidden), jnp.float32))

  def __call__(
    self,
    x: jax.Array,
    time_modulation: jax.Array,
    angles: jax.Array,
    grid: tuple[int, int, int],
  ) -> jax.Array:
    modulation = time_modulation + self.modulation[...].reshape(-1)
    shift_attn, scale_attn, gate_attn, shift_mlp, scale_mlp, gate_mlp = jnp.split(
      modulation, 6, axis=-1
    )
    for attention in self.attentions:
      attended = attention(_modulate(_layer_norm(x), shift_attn, scale_attn), angles, grid)
      x = x + gate_attn[:, None] * attended
    return x + gate_mlp[:, None] * self.mlp(_modulate(_layer_norm(x), shift_mlp, scale_mlp))


class VideoDiT(nnx.Module):
  """Video diffusion transformer conditioned on context frames and diffusion time.

  Parameters are float32; `dtype` is the compute dtype of the patch embedding, blocks and output
  layer (the residual stream, norms and time conditioning stay float32). With `remat`, each
  block's activations are recomputed in the backward pass instead of stored, so training memory
  grows with one block's activations rather than all of them, for about a third more compute.
  """

  def __init__(
    self,
    *,
    num_frames: int,
    resolution: int,
    channels: int = 3,
    hidden: int,
    depth: int,
    heads: int,
    patch_size: tuple[int, int, int] = (1, 2, 2),
    mlp_ratio: float = 4.0,
    attention: str = "full",
    attention_impl: str = "xla",
    context_input: str = "masked",
    guide_channels: int = 0,
    state_features: int = 0,
    dtype: DTypeLike = jnp.float32,
    remat: bool = False,
    rngs: nnx.Rngs,
  ):
    self.remat = remat
    self.config = DiTConfig(
      num_frames=num_frames,
      resolution=resolution,
      hidden=hidden,
      depth=depth,
      heads=heads,
      channels=channels,
      patch_size=patch_size,
      mlp_ratio=mlp_ratio,
      attention=attention,
      attention_impl=attention_impl,
      context_input=context_input,
      guide_channels=guide_channels,
      state_features=state_features,
    )
    patch_volume = math.prod(self.config.patch_size)
    time_init = nnx.initializers.normal(0.02)
    self.patch_embed = nnx.Linear(
      patch_volume * (2 * channels + 1 + guide_channels),
      hidden,
      dtype=dtype,
      kernel_init=_xavier,
      rngs=rngs,
    )
    self.state_embed = (
      nnx.Linear(state_features, hidden, kernel_init=_zeros, rngs=rngs) if state_features else None
    )
    self.time_fc1 = nnx.Linear(TIME_FREQUENCIES, hidden, kernel_init=time_init, rngs=rngs)
    self.time_fc2 = nnx.Linear(hidden, hidden, kernel_init=time_init, rngs=rngs)
    self.time_modulation = nnx.Linear(hidden, 6 * hidden, kernel_init=_zeros, rngs=rngs)
    self.blocks = _stacked_blocks(self.config, dtype, rngs)
    self.final_modulation = nnx.Param(jnp.zeros((2, hidden), jnp.float32))
    self.final = nnx.Linear(
      hidden, patch_volume * channels, dtype=dtype, kernel_init=_zeros, rngs=rngs
    )

  def input_channels(
    self,
    noisy: jax.Array,
    context: jax.Array,
    context_mask: jax.Array,
    guide: jax.Array | None = None,
  ) -> jax.Array:
    """[B, T, H, W, 2C + 1 + G]: the noisy video, the context as `context_input` shows it, the
    mask and the guide's channels."""
    mask = jnp.asarray(context_mask, jnp.float32)[:, :, None, None, None]
    if self.config.context_input == "held":
      shown = held_context(context, context_mask)
    else:
      shown = context * mask
    channels = [noisy, shown, jnp.broadcast_to(mask, (*noisy.shape[:-1], 1))]
    if self.config.guide_channels:
      if guide is None or guide.shape[-1] != self.config.guide_channels:
        raise ValueError(f"this DiT needs a guide of {self.config.guide_channels} channels")
      channels.append(jnp.asarray(guide, noisy.dtype))
    return jnp.concatenate(channels, -1)

  def __call__(
    self,
    noisy: jax.Array,
    time: jax.Array,
    context: jax.Array,
    context_mask: jax.Array,
    guide: jax.Array | None = None,
    state: jax.Array | None = None,
  ) -> jax.Array:
    """Network output [B, T, H, W, C] (float32).

    Args:
      noisy: [B, T, H, W, C] noisy video.
      time: [B] diffusion time in [0, 1].
      context: [B, T, H, W, C] clean frames; only frames with context_mask set are read.
      context_mask: [B, T] float or bool, 1 for context frames.
      guide: [B, T, H, W, guide_channels], with guide_channels > 0.
      state: [B, state_features], with state_features > 0.
    """
    config = self.config
    _, t, h, w, _ = noisy.shape
    pt, ph, pw = config.patch_size
    grid = (t // pt, h // ph, w // pw)
    inputs = self.input_channels(noisy, context, context_mask, guide)
    x = self.patch_embed(patchify(inputs, config.patch_size)).astype(jnp.float32)
    if self.state_embed is not None:
      if state is None:
        raise ValueError(f"this DiT needs a state of {config.state_features} features")
      x = x + self.state_embed(jnp.asarray(state, jnp.float32))[:, None]

    time_features = self.time_fc2(nnx.silu(self.time_fc1(timestep_embedding(time))))
    time_modulation = self.time_modulation(nnx.silu(time_features))
    angles = rope_angles(grid_positions(grid), config.hidden // config.heads)
    x = _apply_blocks(self.blocks, x, time_modulation, angles, grid, remat=self.remat)

    final_modulation = self.final_modulation[...] + time_features[:, None]
    x = _modulate(_layer_norm(x), final_modulation[:, 0], final_modulation[:, 1])
    return unpatchify(self.final(x), config.patch_size, grid).astype(jnp.float32)


def _stacked_blocks(config: DiTConfig, dtype: DTypeLike, rngs: nnx.Rngs) -> DiTBlock:
  """`config.depth` DiTBlocks as one DiTBlock whose parameters have a leading layer axis.

  The blocks are drawn one after another from `rngs`, as when they were a list, so a seed gives
  the same parameters as before they were stacked (`stack_block_params` of that list's)."""
  layers = [DiTBlock(config, dtype=dtype, rngs=rngs) for _ in range(config.depth)]
  graphdef, _ = nnx.split(layers[0])
  states = [nnx.state(layer) for layer in layers]
  return nnx.merge(graphdef, jax.tree.map(lambda *leaves: jnp.stack(leaves), *states))


def _apply_blocks(
  blocks: DiTBlock,
  x: jax.Array,
  time_modulation: jax.Array,
  angles: jax.Array,
  grid: tuple[int, int, int],
  *,
  remat: bool,
) -> jax.Array:
  """Runs the stacked blocks in turn with a scan over the layer axis (one traced block, so
  compile time does not grow with depth); with `remat`, the scan body is rematerialized.

  A plain `jax.lax.scan` over the split state: `nnx.scan` refuses Variables whose values come
  from an outer trace, as the sampler's loop over jitted parameters gives them."""
  graphdef, state = nnx.split(blocks)

  def apply_block(x: jax.Array, block_state: Any) -> tuple[jax.Array, None]:
    return nnx.merge(graphdef, block_state)(x, time_modulation, angles, grid), None

  if remat:
    apply_block = jax.checkpoint(apply_block)
  return jax.lax.scan(apply_block, x, state)[0]


def _has_block_list(tree: object) -> bool:
  """Whether `tree` is a mapping whose "blocks" entry holds per-layer entries 0, 1, ..."""
  if not isinstance(tree, Mapping) or not isinstance(tree.get("blocks"), Mapping):
    return False
  keys = set(tree["blocks"].keys())
  return bool(keys) and keys == set(range(len(keys)))


def _has_stacked_blocks(tree: object) -> bool:
  return (
    isinstance(tree, Mapping)
    and isinstance(tree.get("blocks"), Mapping)
    and not (_has_block_list(tree))
  )


def _replace_blocks(mapping: Mapping, blocks: object) -> Mapping:
  return _mapping_like(mapping, {**mapping, "blocks": blocks})


def _mapping_like(template: Mapping, items: dict) -> Mapping:
  """A mapping of `template`'s type holding `items` (an `nnx.State` keeps nested States as its
  raw nested dicts, so it is filled item by item)."""
  if isinstance(template, nnx.State):
    mapping = nnx.State({})
    for key, value in items.items():
      mapping[key] = value
    return mapping
  return type(template)(items)


def stack_block_params(tree: Any) -> Any:
  """Converts a checkpointed tree from the per-block layout to the stacked one.

  Before blocks were scanned (`_apply_blocks`), `VideoDiT.blocks` was an `nnx.List` of depth
  DiTBlocks, so parameters (and the optimizer moments that mirror them) sat under
  `blocks/0/...`, `blocks/1/...`. Now one vmapped DiTBlock holds them with a leading layer
  axis under `blocks/...`. Every mapping in `tree` (`nnx.State`, dict; e.g. params, EMA and Adam
  moments of a training state) with a per-layer "blocks" entry gets the layers stacked along a
  new leading axis; everything else is returned as it is. Works on arrays and on
  `jax.ShapeDtypeStruct`s alike (the stacked struct takes the first layer's sharding with an
  unsharded layer axis).
  """

  def stack(mapping: Mapping) -> Mapping:
    blocks = mapping["blocks"]
    layers = [blocks[index] for index in range(len(blocks))]
    return _replace_blocks(mapping, jax.tree.map(_stack_leaves, *layers))

  return jax.tree.map(
    lambda node: stack(node) if _has_block_list(node) else node, tree, is_leaf=_has_block_list
  )


def unstack_block_params(tree: Any) -> Any:
  """Inverse of `stack_block_params`: the per-block layout of a tree in the stacked layout (e.g.
  the abstract state to restore a checkpoint written before blocks were stacked)."""

  def unstack(mapping: Mapping) -> Mapping:
    blocks = mapping["blocks"]
    depth = jax.tree.leaves(blocks)[0].shape[0]
    layers = {
      index: jax.tree.map(lambda leaf, index=index: _layer_of(leaf, index), blocks)
      for index in range(depth)
    }
    return _replace_blocks(mapping, _mapping_like(blocks, layers))

  return jax.tree.map(
    lambda node: unstack(node) if _has_stacked_blocks(node) else node,
    tree,
    is_leaf=_has_stacked_blocks,
  )


def _stack_leaves(*leaves: Any) -> Any:
  first = leaves[0]
  if isinstance(first, jax.ShapeDtypeStruct):
    return jax.ShapeDtypeStruct(
      (len(leaves), *first.shape), first.dtype, sharding=_with_layer_axis(first.sharding)
    )
  return jnp.stack(leaves)


def _layer_of(leaf: Any, index: int) -> Any:
  if isinstance(leaf, jax.ShapeDtypeStruct):
    sharding = leaf.sharding
    if isinstance(sharding, jax.sharding.NamedSharding):
      sharding = jax.sharding.NamedSharding(
        sharding.mesh, jax.sharding.PartitionSpec(*sharding.spec[1:])
      )
    return jax.ShapeDtypeStruct(leaf.shape[1:], leaf.dtype, sharding=sharding)
  return leaf[index]


def _with_layer_axis(sharding: Any) -> Any:
  if isinstance(sharding, jax.sharding.NamedSharding):
    return jax.sharding.NamedSharding(
      sharding.mesh, jax.sharding.PartitionSpec(None, *sharding.spec)
    )
  return sharding


def make_dit(
  size: str,
  *,
  num_frames: int,
  resolution: int,
  patch_size: tuple[int, int, int],
  attention: str = "full",
  attention_impl: str = "xla",
  context_input: str = "masked",
  guide_channels: int = 0,
  state_features: int = 0,
  dtype: DTypeLike = jnp.float32,
  remat: bool = False,
  rngs: nnx.Rngs,
) -> VideoDiT:
  """Builds a VideoDiT of a named size from `SIZES`."""
  check_choice("DiT size", size, tuple(SIZES))
  return VideoDiT(
    **SIZES[size],
    num_frames=num_frames,
    resolution=resolution,
    patch_size=patch_size,
    attention=attention,
    attention_impl=attention_impl,
    context_input=context_input,
    guide_channels=guide_channels,
    state_features=state_features,
    dtype=dtype,
    remat=remat,
    rngs=rngs,
  )


def forward_flops(model_or_config: VideoDiT | DiTConfig) -> int:
  """Analytic FLOPs of one forward pass for one example (a multiply-add counts as 2).

  Counts the matmuls: timestep MLP, patch embedding, qkv and output projections, attention
  scores and weighted sums, MLP and final layer. Norms, activations and RoPE are left out.
  """
  config = model_or_config.config if isinstance(model_or_config, VideoDiT) else model_or_config
  d, n = config.hidden, config.num_tokens
  frames, height, width = config.grid
  per_frame = height * width
  projections = 2 * n * 4 * d * d  # qkv and output projections of one attention
  if config.attention == "full":
    attention = projections + 4 * n * n * d
  else:
    attention = 2 * projections + 4 * d * (frames * per_frame**2 + per_frame * frames**2)
  block = attention + 4 * n * d * config.mlp_hidden
  patch_volume = math.prod(config.patch_size)
  time_mlp = 2 * (TIME_FREQUENCIES * d + d * d + d * 6 * d)
  embed = 2 * n * patch_volume * (2 * config.channels + 1 + config.guide_channels) * d
  embed += 2 * config.state_features * d
  final = 2 * n * d * patch_volume * config.channels
  return time_mlp + embed + config.depth * block + final
