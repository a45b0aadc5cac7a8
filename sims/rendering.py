"""Differentiable, anti-aliased rasterizer of coloured discs and squares on a white background.

Pixel (i, j) of an H x W frame covers world x in [j, j + 1) * 10 / W and y in
[H - 1 - i, H - i) * 10 / H (row 0 at the top, world y up), and is sampled at its centre. An
object's coverage of a pixel is a smoothstep of its signed distance over `edge_px` pixels: the
edge is symmetric about the true outline (so colour centroids are unbiased), C1 (so gradients
agree with finite differences) and exactly zero or one away from the edge (so the background is
pure white and the interior pure colour, as in the study's frames). Objects are composited in
order, later ones on top, with no Python loop over objects or frames.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from sims.core import SQUARE, WORLD_SIZE, Trajectory


def pixel_centres(resolution: int) -> tuple[jax.Array, jax.Array]:
  """World x of each column and world y of each row (row 0 is the top of the frame)."""
  step = WORLD_SIZE / resolution
  xs = (jnp.arange(resolution, dtype=jnp.float32) + 0.5) * step
  return xs, xs[::-1]


def coverage(
  position: jax.Array,
  radius: jax.Array,
  shape: jax.Array,
  resolution: int,
  edge_px: float = 1.0,
) -> jax.Array:
  """Coverage [..., H, W] in [0, 1] of one object per leading index.

  position is [..., 2]; radius and shape broadcast against position[..., 0]. Discs use the
  first-order distance (d^2 - r^2) / 2r, exact on the outline and free of square roots; squares
  are axis-aligned with half-side `radius`. Both are separable: the ramp is a row term minus a
  column term (discs) or the smaller of the two (squares), so a pixel costs a few operations.
  """
  xs, ys = pixel_centres(resolution)
  dx = xs - position[..., 0:1]  # [..., W]
  dy = ys - position[..., 1:2]  # [..., H]
  r = radius[..., None]
  per_world = resolution / WORLD_SIZE / edge_px  # ramp units per world unit
  disc_scale = per_world / (2.0 * r)
  disc = (0.5 + (r**2 - dy**2) * disc_scale)[..., :, None] - (dx**2 * disc_scale)[..., None, :]
  square = jnp.minimum(
    (0.5 + (r - jnp.abs(dy)) * per_world)[..., :, None],
    (0.5 + (r - jnp.abs(dx)) * per_world)[..., None, :],
  )
  ramp = jnp.clip(jnp.where((shape == SQUARE)[..., None, None], square, disc), 0.0, 1.0)
  return ramp * ramp * (3.0 - 2.0 * ramp)


def render(
  traj: Trajectory, resolution: int = 128, edge_px: float = 1.0, background: float = 1.0
) -> jax.Array:
  """Frames [n, T, H, W, 3] float32 in [0, 1] of a trajectory, differentiable in its state.

  Objects are painted back to front by a reverse scan over the object axis that carries the
  colour painted so far and the transmittance of the objects in front; for a handful of objects
  the scan is unrolled so XLA fuses the whole frame into one pass.
  """
  n, num_frames, num_objects = traj.position.shape[:3]
  per_object = (
    jnp.moveaxis(traj.position, 2, 0),  # [K, n, T, 2]
    jnp.moveaxis(traj.radius, 1, 0)[:, :, None],  # [K, n, 1]
    jnp.moveaxis(traj.shape, 1, 0)[:, :, None],
    jnp.moveaxis(traj.color, 1, 0)[:, :, None, None, None, :],  # [K, n, 1, 1, 1, 3]
  )

  def paint(carry, obj):
    painted, transmit = carry
    position, radius, shape, color = obj
    alpha = coverage(position, radius, shape, resolution, edge_px)[..., None]
    return (painted + alpha * transmit * color, transmit * (1.0 - alpha)), None

  frame = (n, num_frames, resolution, resolution, 1)
  init = (jnp.zeros((*frame[:-1], 3), jnp.float32), jnp.ones(frame, jnp.float32))
  (painted, transmit), _ = jax.lax.scan(
    paint, init, per_object, reverse=True, unroll=num_objects <= 8
  )
  # Clipping only removes float rounding (e.g. 1 + 1e-7 where a red edge meets white).
  return jnp.clip(painted + background * transmit, 0.0, 1.0)
