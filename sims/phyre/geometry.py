"""Exact separations of discs and rotated boxes, masses, and mechanical energy."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct

from sims.core import BOX, WORLD_SIZE, BodyTrajectory
from sims.phyre.world import DENSITY, GRAVITY


def _rotate(vector: jax.Array, angle: jax.Array) -> jax.Array:
  """Rotates 2-D vectors [..., 2] counter-clockwise by angles [...]."""
  c, s = jnp.cos(angle), jnp.sin(angle)
  x, y = vector[..., 0], vector[..., 1]
  return jnp.stack([c * x - s * y, s * x + c * y], -1)


def _world_half_extents(angle: jax.Array, half: jax.Array, is_box: jax.Array) -> jax.Array:
  """Half widths [..., 2] of the axis-aligned bounding box of a disc or a rotated box."""
  c, s = jnp.abs(jnp.cos(angle)), jnp.abs(jnp.sin(angle))
  box = jnp.stack([c * half[..., 0] + s * half[..., 1], s * half[..., 0] + c * half[..., 1]], -1)
  return jnp.where(is_box[..., None], box, half)


@struct.dataclass
class _Frames:
  """Bodies for overlap tests: position [..., 2], cos and sin of the angle [...], half [..., 2]
  (radius, radius) or half extents, is_box [...]. Computing cos / sin once per body keeps the
  pairwise tests free of trigonometry."""

  position: jax.Array
  cos: jax.Array
  sin: jax.Array
  half: jax.Array
  is_box: jax.Array

  @classmethod
  def of(cls, position, angle, half, is_box) -> _Frames:
    shape = jnp.broadcast_shapes(jnp.shape(angle), jnp.shape(is_box), jnp.shape(half)[:-1])
    return cls(
      jnp.broadcast_to(position, (*shape, 2)),
      jnp.broadcast_to(jnp.cos(angle), shape),
      jnp.broadcast_to(jnp.sin(angle), shape),
      jnp.broadcast_to(half, (*shape, 2)),
      jnp.broadcast_to(is_box, shape),
    )


def _point_box_distance(delta, cos, sin, half):
  """Signed distance (negative inside) from points at offsets delta from boxes' centres."""
  local = jnp.stack(
    [cos * delta[..., 0] + sin * delta[..., 1], cos * delta[..., 1] - sin * delta[..., 0]], -1
  )
  excess = jnp.abs(local) - half
  outside = jnp.sqrt(jnp.sum(jnp.maximum(excess, 0.0) ** 2, -1))
  return outside + jnp.minimum(jnp.max(excess, -1), 0.0)


def _separation(first: _Frames, second: _Frames) -> jax.Array:
  """Signed separation of two bodies (broadcast): the gap, or minus the penetration depth.

  Discs: centre distance minus radii. Disc and box: the centre's signed distance to the box
  minus the radius. Two boxes: the largest gap along the four edge normals (separating axes),
  exact in sign, a lower bound on the distance when apart and the penetration depth when not.
  """
  delta = second.position - first.position
  dx, dy = delta[..., 0], delta[..., 1]
  (hx1, hy1), (hx2, hy2) = jnp.moveaxis(first.half, -1, 0), jnp.moveaxis(second.half, -1, 0)
  discs = jnp.sqrt(dx**2 + dy**2) - hx1 - hx2
  disc_box = _point_box_distance(-delta, second.cos, second.sin, second.half) - hx1
  box_disc = _point_box_distance(delta, first.cos, first.sin, first.half) - hx2
  # cos and sin of the second box's angle relative to the first's.
  c = jnp.abs(first.cos * second.cos + first.sin * second.sin)
  s = jnp.abs(first.cos * second.sin - first.sin * second.cos)
  boxes = jnp.max(
    jnp.stack(
      [
        jnp.abs(first.cos * dx + first.sin * dy) - hx1 - hx2 * c - hy2 * s,
        jnp.abs(first.cos * dy - first.sin * dx) - hy1 - hx2 * s - hy2 * c,
        jnp.abs(second.cos * dx + second.sin * dy) - hx2 - hx1 * c - hy1 * s,
        jnp.abs(second.cos * dy - second.sin * dx) - hy2 - hx1 * s - hy1 * c,
      ]
    ),
    0,
  )
  return jnp.where(
    first.is_box,
    jnp.where(second.is_box, boxes, box_disc),
    jnp.where(second.is_box, disc_box, discs),
  )


def separations(
  position: jax.Array, angle: jax.Array, shape: jax.Array, size: jax.Array
) -> jax.Array:
  """Signed separations [..., K, K] of every pair of K bodies: the gap between them, or minus
  the depth by which they overlap (exact for discs and disc-box pairs; for two boxes the largest
  gap along their edge normals, exact in sign and in overlap depth).

  position [..., K, 2], angle [..., K], shape [..., K] (CIRCLE / BOX), size [..., K, 2].
  """
  bodies = _Frames.of(position, angle, size, shape == BOX)
  return _outer(bodies, bodies)


def _outer(first: _Frames, second: _Frames) -> jax.Array:
  """Separations [..., m, k] of each of the bodies `first` [..., m] with each of `second`."""
  axis = first.cos.ndim  # the same axis of every field, counted from the front
  return _separation(
    jax.tree.map(lambda x: jnp.expand_dims(x, axis), first),
    jax.tree.map(lambda x: jnp.expand_dims(x, axis - 1), second),
  )


def wall_penetration(
  position: jax.Array, angle: jax.Array, shape: jax.Array, size: jax.Array
) -> jax.Array:
  """How far [...] each body reaches outside the 10 x 10 box (0 when inside)."""
  reach = _world_half_extents(angle, size, shape == BOX)
  beyond = jnp.maximum(reach - position, position + reach - WORLD_SIZE)
  return jnp.maximum(jnp.max(beyond, axis=-1), 0.0)


def mass_and_inertia(shape: jax.Array, size: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Mass and moment of inertia about the centre of discs and boxes at DENSITY."""
  radius = size[..., 0]
  disc_mass = jnp.pi * radius**2 * DENSITY
  box_mass = 4.0 * size[..., 0] * size[..., 1] * DENSITY
  is_box = shape == BOX
  mass = jnp.where(is_box, box_mass, disc_mass)
  inertia = jnp.where(is_box, box_mass * jnp.sum(size**2, -1) / 3.0, 0.5 * disc_mass * radius**2)
  return mass, inertia


def mechanical_energy(traj: BodyTrajectory) -> jax.Array:
  """Kinetic plus potential energy [n, T] of the active dynamic bodies (floor at height 0)."""
  mass, inertia = mass_and_inertia(traj.shape, traj.size)
  mass, inertia = mass[:, None], inertia[:, None]
  kinetic = 0.5 * mass * jnp.sum(traj.velocity**2, -1) + 0.5 * inertia * traj.angular_velocity**2
  potential = mass * GRAVITY * traj.position[..., 1]
  moving = (traj.dynamic & traj.active)[:, None]
  return jnp.sum(jnp.where(moving, kinetic + potential, 0.0), -1)
