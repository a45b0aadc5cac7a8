"""Differentiable, anti-aliased rasterizer of coloured discs and boxes on a white background.

Pixel (i, j) of an H x W frame covers world x in [j, j + 1) * 10 / W and y in
[H - 1 - i, H - i) * 10 / H (row 0 at the top, world y up), and is sampled at its centre. An
object's coverage of a pixel is a smoothstep of its signed distance over `edge_px` pixels: the
edge is symmetric about the true outline (so colour centroids are unbiased), C1 (so gradients
agree with finite differences) and exactly zero or one away from the edge (so the background is
pure white and the interior pure colour, as in the study's frames). Objects are composited in
order, later ones on top, with no Python loop over objects or frames.

`render` draws both kinds of trajectory: a `Trajectory` of balls (discs and axis-aligned
squares) and a `BodyTrajectory` of rigid bodies (discs and rotated boxes; inactive slots are
not drawn).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import jax
import jax.numpy as jnp

from sims.core import BOX, RING, RING_INNER, SQUARE, WORLD_SIZE, BodyTrajectory, Trajectory

if TYPE_CHECKING:
  from sims.world3d.bodies import Trajectory3D


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
  are axis-aligned with half-side `radius`; rings are the disc minus a disc of radius
  RING_INNER * radius, ramped on both outlines. All are separable: the ramp is a row term minus
  a column term (discs) or the smaller of the two (squares), so a pixel costs a few operations.
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
  inner = RING_INNER * r
  hole_scale = per_world / (2.0 * inner)
  outside_hole = (0.5 + (dy**2 - inner**2) * hole_scale)[..., :, None] + (dx**2 * hole_scale)[
    ..., None, :
  ]
  shape = shape[..., None, None]
  ramp = jnp.where(shape == SQUARE, square, disc)
  ramp = jnp.where(shape == RING, jnp.minimum(disc, outside_hole), ramp)
  ramp = jnp.clip(ramp, 0.0, 1.0)
  return _smoothstep(ramp)


def _smoothstep(ramp: jax.Array) -> jax.Array:
  return ramp * ramp * (3.0 - 2.0 * ramp)


def body_coverage(
  position: jax.Array,
  angle: jax.Array,
  shape: jax.Array,
  size: jax.Array,
  resolution: int,
  edge_px: float = 1.0,
) -> jax.Array:
  """Coverage [..., H, W] in [0, 1] of one rigid body (disc or rotated box) per leading index.

  position and size are [..., 2]; angle and shape broadcast against position[..., 0]. Discs
  (radius size[0]) ramp as in `coverage`; a box ramps over the smaller of its two distances to
  the edges in its own frame, the signed distance everywhere except just outside a corner.
  """
  xs, ys = pixel_centres(resolution)
  dx = (xs - position[..., 0:1])[..., None, :]  # [..., 1, W]
  dy = (ys - position[..., 1:2])[..., :, None]  # [..., H, 1]
  c, s = jnp.cos(angle)[..., None, None], jnp.sin(angle)[..., None, None]
  per_world = resolution / WORLD_SIZE / edge_px
  half_x, half_y = size[..., 0, None, None], size[..., 1, None, None]
  box = jnp.minimum(
    0.5 + (half_x - jnp.abs(c * dx + s * dy)) * per_world,
    0.5 + (half_y - jnp.abs(c * dy - s * dx)) * per_world,
  )
  radius = jnp.maximum(half_x, 1e-6)  # inactive slots may have size 0
  disc = 0.5 + (radius**2 - dx**2 - dy**2) * (per_world / (2.0 * radius))
  is_box = (jnp.asarray(shape) == BOX)[..., None, None]
  ramp = jnp.clip(jnp.where(is_box, box, disc), 0.0, 1.0)
  return _smoothstep(ramp)


def _composite(
  coverage_of: Callable[..., jax.Array],
  per_object: tuple[jax.Array, ...],
  color: jax.Array,
  frame_shape: tuple[int, ...],
  background: float,
) -> jax.Array:
  """Paints K objects back to front: a reverse scan over the leading axis of `per_object` and
  `color` ([K, n, 1, 1, 1, 3]) that carries the colour painted so far and the transmittance of
  the objects in front; for a handful of objects the scan is unrolled so XLA fuses the whole
  frame into one pass. `coverage_of(*fields)` is one object's coverage [n, T, H, W]."""
  num_objects = color.shape[0]

  def paint(carry, obj):
    painted, transmit = carry
    *fields, obj_color = obj
    alpha = coverage_of(*fields)[..., None]
    return (painted + alpha * transmit * obj_color, transmit * (1.0 - alpha)), None

  init = (jnp.zeros((*frame_shape, 3), jnp.float32), jnp.ones((*frame_shape, 1), jnp.float32))
  (painted, transmit), _ = jax.lax.scan(
    paint, init, (*per_object, color), reverse=True, unroll=num_objects <= 8
  )
  # Clipping only removes float rounding (e.g. 1 + 1e-7 where a red edge meets white).
  return jnp.clip(painted + background * transmit, 0.0, 1.0)


def render(
  traj: Trajectory | BodyTrajectory | Trajectory3D,
  resolution: int = 128,
  edge_px: float = 1.0,
  background: float = 1.0,
) -> jax.Array:
  """Frames [n, T, H, W, 3] float32 in [0, 1] of a trajectory, differentiable in its state.

  Objects are painted back to front, later objects (slots) on top. A `Trajectory3D` is drawn by
  `sims.world3d.render.render3d` with its default camera and light.
  """
  from sims.world3d.bodies import Trajectory3D  # lazily: `import sims` does not load world3d

  if isinstance(traj, Trajectory3D):
    from sims.world3d.render import render3d

    return render3d(traj, resolution, edge_px=edge_px)
  frame_shape = (*traj.position.shape[:2], resolution, resolution)
  color = jnp.moveaxis(traj.color, 1, 0)[:, :, None, None, None, :]  # [K, n, 1, 1, 1, 3]
  if isinstance(traj, BodyTrajectory):
    per_object = (
      jnp.moveaxis(traj.position, 2, 0),  # [K, n, T, 2]
      jnp.moveaxis(traj.angle, 2, 0),  # [K, n, T]
      jnp.moveaxis(traj.shape, 1, 0)[:, :, None],  # [K, n, 1]
      jnp.moveaxis(traj.size, 1, 0)[:, :, None, :],  # [K, n, 1, 2]
      jnp.moveaxis(traj.active, 1, 0)[:, :, None, None, None],  # [K, n, 1, 1, 1]
    )

    def coverage_of(position, angle, shape, size, active):
      alpha = body_coverage(position, angle, shape, size, resolution, edge_px)
      return jnp.where(active, alpha, 0.0)

    return _composite(coverage_of, per_object, color, frame_shape, background)
  per_object = (
    jnp.moveaxis(traj.position, 2, 0),  # [K, n, T, 2]
    jnp.moveaxis(traj.radius, 1, 0)[:, :, None],  # [K, n, 1]
    jnp.moveaxis(traj.shape, 1, 0)[:, :, None],
  )

  def ball_coverage(position, radius, shape):
    return coverage(position, radius, shape, resolution, edge_px)

  return _composite(ball_coverage, per_object, color, frame_shape, background)
