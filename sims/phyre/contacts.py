"""jax2d's polygon-polygon contact manifold for the scene's quadrilaterals, without sorts.

`jax2d.collision.generate_manifolds_polygon_polygon` finds the axis of least penetration by
sorting each projection (argsort) and picks faces by dynamic indexing; vmapped over a batch of
pairs, those sorts and gathers are most of a step's cost on a CPU. `quad_quad_manifolds` is the
same algorithm for polygons of 4 vertices (every polygon of the scene: walls, bars, jars and
sticks are boxes) written with comparisons and selects only: the same separation test, reference
and incident faces, clipping, contact points, normal, restitution targets and warm-start rule,
agreeing with jax2d to float rounding (tests/phyre_test.py).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jax2d.collision import should_collide
from jax2d.maths import rmat
from jax2d.sim_state import CollisionManifold, RigidBody

_CORNERS = 4
_SEPARATION_BIAS = 0.01  # jax2d's bias against the reference face flip-flopping


def _apply(matrix: jax.Array, vector: jax.Array) -> jax.Array:
  """matrix [2, 2] times vectors [..., 2]."""
  return jnp.stack(
    [
      matrix[0, 0] * vector[..., 0] + matrix[0, 1] * vector[..., 1],
      matrix[1, 0] * vector[..., 0] + matrix[1, 1] * vector[..., 1],
    ],
    -1,
  )


def _pick(values: jax.Array, index: jax.Array) -> jax.Array:
  """values[index] for values [4, ...] and a traced index, by selects."""
  chosen = (jnp.arange(_CORNERS) == index).reshape(-1, *([1] * (values.ndim - 1)))
  return jnp.sum(jnp.where(chosen, values, jnp.zeros_like(values)), 0)


def _face_normals(vertices: jax.Array) -> jax.Array:
  """Outward unit normals [4, 2] of the faces vertices[i] -> vertices[i + 1] (jax2d's rule)."""
  delta = jnp.roll(vertices, -1, axis=0) - vertices
  length = jnp.sqrt(jnp.sum(delta**2, -1, keepdims=True))
  return _apply(rmat(math.pi / 2.0), delta) / jnp.where(length == 0, 1.0, length)


def _world_vertices(body: RigidBody) -> jax.Array:
  return _apply(rmat(body.rotation), body.vertices) + body.position


def _least_penetration(a: RigidBody, b: RigidBody):
  """jax2d's `find_axis_of_least_penetration` for quadrilaterals: the largest separation of b
  from a over a's face normals, that face's index, and b's two vertices deepest along it."""
  b_world = _world_vertices(b)
  b_in_a = _apply(rmat(a.rotation).T, b_world - a.position)
  normals = _face_normals(a.vertices)
  a_on_axis = normals @ a.vertices.T  # [face, vertex]
  b_on_axis = normals @ b_in_a.T
  separation = b_on_axis.min(-1) - a_on_axis.max(-1)
  # Ranks of b's vertices along each axis, as a stable argsort would order them.
  lower = b_on_axis[:, None, :] < b_on_axis[:, :, None]
  tied_before = (b_on_axis[:, None, :] == b_on_axis[:, :, None]) & jnp.tril(
    jnp.ones((_CORNERS, _CORNERS), bool), -1
  )
  rank = jnp.sum(lower | tied_before, -1)  # [face, vertex]
  best = jnp.argmax(separation)  # the first of equal maxima, as jax2d's strict comparison
  best_rank = _pick(rank, best)
  incident = jnp.stack(
    [jnp.sum(jnp.where((best_rank == r)[:, None], b_world, 0.0), 0) for r in (0, 1)]
  )
  return separation[best], best, incident


def _relative_normal_velocity(a: RigidBody, b: RigidBody, point, normal) -> jax.Array:
  def velocity_at(body: RigidBody):
    r = point - body.position
    return body.velocity + body.angular_velocity * jnp.stack([-r[1], r[0]])

  return jnp.sum((velocity_at(b) - velocity_at(a)) * normal)


def quad_quad_manifolds(a: RigidBody, b: RigidBody, warm: CollisionManifold) -> CollisionManifold:
  """Two manifold points ([2, ...] fields) of one pair of 4-vertex polygons, as jax2d's
  `generate_manifolds_polygon_polygon` makes them; `warm` holds last step's impulses ([2])."""
  a_separation, a_face, a_incident = _least_penetration(a, b)
  b_separation, b_face, b_incident = _least_penetration(b, a)
  b_is_reference = a_separation + _SEPARATION_BIAS < b_separation
  separation = jnp.maximum(a_separation, b_separation)
  colliding = (separation < 0) & a.active & b.active & should_collide(a, b)

  def face(body: RigidBody, index):
    corners = _world_vertices(body)
    return jnp.stack([_pick(corners, index), _pick(corners, (index + 1) % _CORNERS)])

  reference = jnp.where(b_is_reference, face(b, b_face), face(a, a_face))
  incident = jnp.where(b_is_reference, b_incident, a_incident)
  edge = reference[0] - reference[1]
  to_face = rmat(math.pi + jnp.arctan2(edge[0], edge[1]))
  length = jnp.sqrt(jnp.sum(edge**2))
  local = _apply(to_face, incident - reference[0])
  clipped = jnp.stack(
    [jnp.clip(local[:, 0], -99999.0, 999999.0), jnp.clip(local[:, 1], 0.0, length)], -1
  )
  deeper_second = clipped[1, 0] > clipped[0, 0]  # argmax: the first of equal values
  ordered = jnp.where(deeper_second, clipped[::-1], clipped)
  points = _apply(to_face.T, ordered) + reference[0]
  both_inside = jnp.min(clipped[:, 0]) > 0
  normal = jnp.where(
    b_is_reference,
    -_apply(rmat(b.rotation), _pick(_face_normals(b.vertices), b_face)),
    _apply(rmat(a.rotation), _pick(_face_normals(a.vertices), a_face)),
  )
  restitution = jnp.minimum(a.restitution, b.restitution)
  live = jnp.stack([colliding, colliding & both_inside])

  def point(k: int) -> CollisionManifold:
    keep = warm.active[k] & live[k]
    return CollisionManifold(
      normal=normal,
      penetration=-separation,
      collision_point=points[k],
      acc_impulse_normal=jnp.where(keep, warm.acc_impulse_normal[k], 0.0),
      acc_impulse_tangent=jnp.where(keep, warm.acc_impulse_tangent[k], 0.0),
      active=live[k],
      restitution_velocity_target=_relative_normal_velocity(a, b, points[k], normal) * restitution,
    )

  both = jax.tree.map(lambda *x: jnp.stack(x), point(0), point(1))
  return jax.tree.map(
    lambda x: jnp.where(live.reshape(2, *([1] * (x.ndim - 1))), x, jnp.zeros_like(x)), both
  )
