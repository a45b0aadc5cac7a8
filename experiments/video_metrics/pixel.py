"""PSNR and SSIM per frame, with the study's definitions (its `calculate_psnr/ssim.py`).

Both take two videos [n, T, H, W, 3] in [0, 1] and return per-frame values [n, T].
- PSNR: MAX = 1, the MSE over every pixel and channel of the frame. Identical frames give inf;
  the study's code instead returns 100 dB when the MSE is below 1e-10 (`study_cap=True`).
- SSIM (Wang et al. 2004): each RGB channel on its own, an 11 x 11 Gaussian window with sigma
  1.5, C1 = 0.01^2, C2 = 0.03^2, the SSIM map averaged over the valid region (no padding: the
  study filters with cv2 and crops 5 pixels per side), then the three channels averaged.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_C1 = 0.01**2
SSIM_C2 = 0.03**2
STUDY_PSNR_CAP = 100.0
STUDY_MSE_FLOOR = 1e-10


def check_videos(*videos: jax.Array | np.ndarray) -> None:
  """Raises a one-line ValueError unless all are non-empty [n, T, H, W, 3] videos of one shape."""
  shape = np.shape(videos[0])
  if len(shape) != 5 or shape[-1] != 3 or 0 in shape:
    raise ValueError(f"videos must be non-empty [n, T, H, W, 3]; got shape {shape}")
  for other in videos[1:]:
    if np.shape(other) != shape:
      raise ValueError(f"videos differ in shape: {shape} and {np.shape(other)}")


def check_values(videos: np.ndarray, name: str = "videos") -> None:
  """Raises a one-line ValueError unless every value is finite and in [0, 1]."""
  finite = np.isfinite(videos)
  if not finite.all():
    raise ValueError(
      f"{name} frames hold {np.size(videos) - finite.sum()} non-finite values (NaN or inf); "
      "valid: finite values in [0, 1]"
    )
  if videos.min() < 0 or videos.max() > 1:
    raise ValueError(f"{name} values must lie in [0, 1]; got [{videos.min()}, {videos.max()}]")


@functools.partial(jax.jit, static_argnames="study_cap")
def psnr(videos_a: jax.Array, videos_b: jax.Array, *, study_cap: bool = False) -> jax.Array:
  """Per-frame PSNR [n, T] in dB with MAX = 1 (inf, or 100 with study_cap, for equal frames)."""
  check_videos(videos_a, videos_b)
  mse = jnp.mean(jnp.square(videos_a - videos_b), axis=(2, 3, 4))
  decibels = -10 * jnp.log10(mse)
  return jnp.where(mse < STUDY_MSE_FLOOR, STUDY_PSNR_CAP, decibels) if study_cap else decibels


def gaussian_window(size: int = SSIM_WINDOW, sigma: float = SSIM_SIGMA) -> np.ndarray:
  """The normalised 1-D Gaussian [size] of cv2.getGaussianKernel(size, sigma)."""
  offsets = np.arange(size) - (size - 1) / 2
  window = np.exp(-(offsets**2) / (2 * sigma**2))
  return window / window.sum()


def _blur(images: jax.Array) -> jax.Array:
  """[..., H, W] -> [..., H - 10, W - 10]: the separable Gaussian window, valid region only.

  A weighted sum of shifted slices per axis, which XLA fuses into one loop (on a CPU ~25x faster
  than a convolution with one input and one output channel).
  """
  for axis in (images.ndim - 2, images.ndim - 1):
    size = images.shape[axis] - SSIM_WINDOW + 1
    images = sum(
      float(weight) * jax.lax.slice_in_dim(images, offset, offset + size, axis=axis)
      for offset, weight in enumerate(gaussian_window())
    )
  return images


def _ssim_video(pair: tuple[jax.Array, jax.Array]) -> jax.Array:
  """SSIM per frame [T] of one video pair [T, H, W, 3]."""
  x, y = (jnp.moveaxis(v, -1, 1).reshape(-1, *v.shape[1:3]) for v in pair)
  d = x - y
  # One blur of the five stacked maps runs ~2.5x faster on a CPU than five separate ones.
  mean_x, mean_y, mean_d, mean_square_sum, mean_square_d = _blur(
    jnp.stack([x, y, d, x * x + y * y, d * d])
  )
  variance_sum = mean_square_sum - mean_x**2 - mean_y**2
  variance_d = mean_square_d - mean_d**2
  # The textbook (2 mx my + C1)(2 sxy + C2) / ((mx^2 + my^2 + C1)(sx^2 + sy^2 + C2)) rewritten with
  # 2 mx my = mx^2 + my^2 - md^2 and 2 sxy = sx^2 + sy^2 - sd^2 for the difference d = x - y:
  # equal in exact arithmetic, but float32 keeps ~1e-7 instead of ~1e-5 on near-equal frames.
  luminance = 1 - mean_d**2 / (mean_x**2 + mean_y**2 + SSIM_C1)
  contrast_structure = 1 - variance_d / (variance_sum + SSIM_C2)
  return jnp.mean(luminance * contrast_structure, axis=(1, 2)).reshape(-1, 3).mean(axis=1)


@jax.jit
def ssim(videos_a: jax.Array, videos_b: jax.Array) -> jax.Array:
  """Per-frame SSIM [n, T], averaged over the RGB channels (1 for equal frames, to float32)."""
  check_videos(videos_a, videos_b)
  height, width = videos_a.shape[2:4]
  if min(height, width) < SSIM_WINDOW:
    raise ValueError(f"frames of {height}x{width} are smaller than the {SSIM_WINDOW}-pixel window")
  # One video at a time keeps memory bounded by a single video.
  return jax.lax.map(_ssim_video, (videos_a, videos_b))
