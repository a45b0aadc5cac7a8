"""PHYRE's physics on jax2d's contact and joint models, at a cost that follows the scene.

jax2d (its `PhysicsEngine.step`) tests every pair of its bodies in every step and resolves every
pair's manifold in each of its solver iterations, active or not: with 25 bodies that is 290
narrow-phase tests and about 500 manifold resolutions a step, whatever the scene holds. This
engine keeps jax2d's models (its narrow-phase manifolds, its contact impulses with warm starting
and Baumgarte bias, its fixed joints) and changes what they are applied to:

- Pairs that can never touch are never considered: two static bodies (walls, static balls, the
  static bar) and the parts of one welded body (jar, sticks). PAIR_TABLES lists the rest.
- A broad phase (axis-aligned bounding boxes) picks the pairs that may touch this step; at most
  CANDIDATES of each type (polygon-polygon, circle-polygon, circle-circle) go to the narrow phase.
- Polygon pairs use `contacts.quad_quad_manifolds`, jax2d's box-box manifold without its sorts.
- Of their manifold points, the active ones (at most CONTACT_POINTS) enter the solver, which runs
  sequential impulses (Gauss-Seidel, as Box2D) on velocity Jacobian rows built once a step, each
  over the two bodies of its contact.

`contact_load` reports the largest candidate and contact counts a rollout needed; the tests check
that the study's templates stay within the capacities.
"""

from __future__ import annotations

import functools
import itertools
import math
import types

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from jax2d import collision as jax2d_collision
from jax2d import engine as jax2d_engine
from jax2d import joint as jax2d_joint
from jax2d.sim_state import CollisionManifold, Joint, RigidBody, SimParams, StaticSimParams

from sims.core import BodyTrajectory
from sims.phyre.contacts import quad_quad_manifolds
from sims.phyre.geometry import _rotate, _world_half_extents, mass_and_inertia
from sims.phyre.world import (
  ANGULAR_DAMPING,
  BAUMGARTE,
  FRICTION,
  GRAVITY,
  KIND_SLOTS,
  NUM_DISCS,
  NUM_SLOTS,
  PHYSICS_HZ,
  RESTITUTION,
  SLOT_DYNAMIC,
  SOLVER_ITERATIONS,
  STEPS_PER_FRAME,
  BodyState,
)


# jax >= 0.11 rejects 2-D jnp.cross, which jax2d uses.
class _NumpyWith2DCross(types.ModuleType):
  """jax.numpy, except that `cross` also takes 2-D vectors (the z component of their product).

  jax >= 0.11 rejects 2-D inputs to jnp.cross, which jax2d uses throughout; jax2d's modules are
  given this namespace in place of jax.numpy when (and only when) the installed jax needs it.
  """

  def __getattr__(self, name: str):
    return getattr(jnp, name)

  @staticmethod
  def cross(a, b, *args, **kwargs):
    a, b = jnp.asarray(a), jnp.asarray(b)
    if a.shape[-1:] == b.shape[-1:] == (2,) and not args and not kwargs:
      return a[..., 0] * b[..., 1] - a[..., 1] * b[..., 0]
    return jnp.cross(a, b, *args, **kwargs)


def _cross_takes_2d() -> bool:
  vector = jax.ShapeDtypeStruct((2,), jnp.float32)
  try:
    jax.eval_shape(jnp.cross, vector, vector)
  except ValueError:
    return False
  return True


_JAX2D_MODULES_WITH_CROSS = (jax2d_collision, jax2d_engine, jax2d_joint)
if not _cross_takes_2d():
  for _module in _JAX2D_MODULES_WITH_CROSS:
    _module.jnp = _NumpyWith2DCross("jax.numpy")


# jax2d's layout: polygons 0-3 are the walls, then the box slots (the static bar first, so that
# the _NUM_STATIC_POLYGONS static ones are never tested against each other); then the discs.
_WALLS = np.array(  # centre x, centre y, half width, half height: thick, outside the box
  [[5.0, -2.5, 7.5, 2.5], [-2.5, 5.0, 2.5, 7.5], [12.5, 5.0, 2.5, 7.5], [5.0, 12.5, 7.5, 2.5]],
  np.float32,
)
_NUM_WALLS = len(_WALLS)
_NUM_STATIC_POLYGONS = _NUM_WALLS + len(KIND_SLOTS["static_bar"])
_WELDS = (  # (slot a, slot b): fixed joints that make one rigid body of several boxes
  (KIND_SLOTS["dynamic_jar"][0], KIND_SLOTS["dynamic_jar"][1]),
  (KIND_SLOTS["dynamic_jar"][0], KIND_SLOTS["dynamic_jar"][2]),
  (KIND_SLOTS["dynamic_standingsticks"][0], KIND_SLOTS["dynamic_standingsticks"][1]),
)
_STATIC_SIM_PARAMS = StaticSimParams(
  num_polygons=_NUM_WALLS + NUM_SLOTS - NUM_DISCS,
  num_circles=NUM_DISCS,
  num_joints=len(_WELDS),
  num_thrusters=1,
  max_polygon_vertices=4,
  num_solver_iterations=SOLVER_ITERATIONS,
  num_static_fixated_polys=_NUM_STATIC_POLYGONS,
)
# jax2d combines the friction coefficients of two bodies as base * sqrt(f1^2 + f2^2).
_SIM_PARAMS = SimParams(
  dt=1.0 / PHYSICS_HZ,
  base_friction=FRICTION / math.sqrt(2.0),
  baumgarte_coefficient_collision=BAUMGARTE,
)


def _engine_index(slot: int) -> int:
  """jax2d's global index of a slot (polygons first, then circles)."""
  if slot < NUM_DISCS:
    return _STATIC_SIM_PARAMS.num_polygons + slot
  return _NUM_WALLS + slot - NUM_DISCS


def _to_sim(state: BodyState):
  """One example's jax2d SimState (unbatched `state`)."""
  sim = jax2d_engine.create_empty_sim(
    _STATIC_SIM_PARAMS, add_floor=False, add_walls_and_ceiling=False
  )
  mass, inertia = mass_and_inertia(state.shape, state.size)
  moving = state.dynamic & state.active
  inverse_mass = jnp.where(moving, 1.0 / jnp.maximum(mass, 1e-12), 0.0)
  inverse_inertia = jnp.where(moving, 1.0 / jnp.maximum(inertia, 1e-12), 0.0)
  boxes = slice(NUM_DISCS, NUM_SLOTS)
  half = jnp.concatenate([jnp.asarray(_WALLS[:, 2:]), state.size[boxes]])
  corners = jnp.asarray([[-1.0, 1.0], [1.0, 1.0], [1.0, -1.0], [-1.0, -1.0]])  # clockwise
  zeros = jnp.zeros(_NUM_WALLS)
  polygon = sim.polygon.replace(
    position=jnp.concatenate([jnp.asarray(_WALLS[:, :2]), state.position[boxes]]),
    rotation=jnp.concatenate([zeros, state.angle[boxes]]),
    velocity=jnp.concatenate([jnp.zeros((_NUM_WALLS, 2)), state.velocity[boxes]]),
    angular_velocity=jnp.concatenate([zeros, state.angular_velocity[boxes]]),
    vertices=corners * half[:, None, :],
    n_vertices=jnp.full(len(half), 4, jnp.int32),
    inverse_mass=jnp.concatenate([zeros, inverse_mass[boxes]]),
    inverse_inertia=jnp.concatenate([zeros, inverse_inertia[boxes]]),
    friction=jnp.ones(len(half)),
    restitution=jnp.full(len(half), RESTITUTION),
    active=jnp.concatenate([jnp.ones(_NUM_WALLS, bool), state.active[boxes]]),
  )
  discs = slice(0, NUM_DISCS)
  circle = sim.circle.replace(
    position=state.position[discs],
    rotation=state.angle[discs],
    velocity=state.velocity[discs],
    angular_velocity=state.angular_velocity[discs],
    radius=state.size[discs, 0],
    inverse_mass=inverse_mass[discs],
    inverse_inertia=inverse_inertia[discs],
    friction=jnp.ones(NUM_DISCS),
    restitution=jnp.full(NUM_DISCS, RESTITUTION),
    active=state.active[discs],
  )
  a, b = (np.asarray(slots) for slots in zip(*_WELDS, strict=True))
  joint = sim.joint.replace(
    a_index=jnp.asarray([_engine_index(i) for i in a], jnp.int32),
    b_index=jnp.asarray([_engine_index(i) for i in b], jnp.int32),
    a_relative_pos=_rotate(state.position[b] - state.position[a], -state.angle[a]),
    b_relative_pos=jnp.zeros((len(a), 2)),
    rotation=state.angle[b] - state.angle[a],
    active=state.active[a] & state.active[b],
    is_fixed_joint=jnp.ones(len(a), bool),
  )
  return sim.replace(
    polygon=polygon,
    circle=circle,
    joint=joint,
    collision_matrix=jax2d_engine.calculate_collision_matrix(_STATIC_SIM_PARAMS, joint),
    gravity=jnp.asarray([0.0, -GRAVITY]),
  )


# Bodies in jax2d's order (polygons, then circles), as one RigidBody of NUM_BODIES entries.
NUM_POLYGONS = _STATIC_SIM_PARAMS.num_polygons
NUM_BODIES = NUM_POLYGONS + NUM_DISCS
_BODY_SLOT = np.array(
  [-1] * _NUM_WALLS + list(range(NUM_DISCS, NUM_SLOTS)) + list(range(NUM_DISCS)), np.int32
)  # the slot of each body, -1 for a wall
_WELDED_GROUPS = (KIND_SLOTS["dynamic_jar"], KIND_SLOTS["dynamic_standingsticks"])


def _may_touch(first: int, second: int) -> bool:
  """Whether two bodies can ever exchange an impulse: not both static, not parts of one weld."""
  slots = _BODY_SLOT[[first, second]]
  dynamic = [slot >= 0 and bool(SLOT_DYNAMIC[slot]) for slot in slots]
  welded = any(set(slots.tolist()) <= set(group) for group in _WELDED_GROUPS)
  return any(dynamic) and not welded


def _pairs(first: range, second: range) -> np.ndarray:
  """The pairs that may touch, one of `first` and one of `second` (each pair once)."""
  pairs = itertools.combinations(first, 2) if first == second else itertools.product(first, second)
  return np.array([p for p in pairs if _may_touch(*p)], np.int32).reshape(-1, 2)


_POLYGONS, _CIRCLES = range(NUM_POLYGONS), range(NUM_POLYGONS, NUM_BODIES)
# Body pairs per manifold type, in jax2d's argument order (a circle before a polygon).
PAIR_TABLES = (
  _pairs(_POLYGONS, _POLYGONS),
  _pairs(_CIRCLES, _POLYGONS),
  _pairs(_CIRCLES, _CIRCLES),
)
_MANIFOLDS = (
  quad_quad_manifolds,  # jax2d's polygon-polygon manifold (two points per pair), gather-free
  jax2d_collision.generate_manifold_circle_polygon,
  jax2d_collision.generate_manifold_circle_circle,
)
# Capacities, sized from `contact_load` on every template (see tests/phyre_test.py).
CANDIDATES = (24, 16, 8)
CONTACT_POINTS = 24
_BROAD_PHASE_MARGIN = 1e-3
_GRAVITY = np.array([0.0, -GRAVITY], np.float32)


@struct.dataclass
class _Impulses:
  """Accumulated impulses of the last step per pair of one table (warm starting): normal,
  tangent and active, [P, 2] for polygon pairs (two points) and [P] otherwise."""

  normal: jax.Array
  tangent: jax.Array
  active: jax.Array


@struct.dataclass
class _World:
  """One example's engine state."""

  bodies: RigidBody
  joints: Joint
  impulses: tuple[_Impulses, ...]


def _take(tree, index):
  return jax.tree.map(lambda x: x[index], tree)


def _first(mask: jax.Array, size: int) -> tuple[jax.Array, jax.Array, jax.Array]:
  """Indices of the first `size` true entries of `mask`, which of them are real, and the count."""
  count = mask.sum()
  return jnp.nonzero(mask, size=size, fill_value=0)[0], jnp.arange(size) < count, count


def _cross(r: jax.Array, v: jax.Array) -> jax.Array:
  return r[..., 0] * v[..., 1] - r[..., 1] * v[..., 0]


def _world(example: BodyState) -> _World:
  sim = _to_sim(example)
  bodies = jax.tree.map(lambda p, c: jnp.concatenate([p, c]), sim.polygon, sim.circle)
  impulses = tuple(
    _Impulses(jnp.zeros(shape), jnp.zeros(shape), jnp.zeros(shape, bool))
    for shape in ((len(PAIR_TABLES[0]), 2), (len(PAIR_TABLES[1]),), (len(PAIR_TABLES[2]),))
  )
  return _World(bodies, sim.joint, impulses)


def _candidates(bodies: RigidBody) -> tuple[tuple[jax.Array, jax.Array, jax.Array], ...]:
  """Per pair table: the first CANDIDATES pairs whose bounding boxes overlap, as (indices into
  the table, real, count)."""
  is_box = jnp.arange(NUM_BODIES) < NUM_POLYGONS
  half = jnp.where(is_box[:, None], jnp.abs(bodies.vertices[:, 0]), bodies.radius[:, None])
  reach = _world_half_extents(bodies.rotation, half, is_box) + _BROAD_PHASE_MARGIN
  low, high = bodies.position - reach, bodies.position + reach
  found = []
  for table, size in zip(PAIR_TABLES, CANDIDATES, strict=True):
    a, b = jnp.asarray(table[:, 0]), jnp.asarray(table[:, 1])
    overlap = jnp.all((low[a] <= high[b]) & (low[b] <= high[a]), -1)
    found.append(_first(overlap & bodies.active[a] & bodies.active[b], size))
  return tuple(found)


def _manifolds(world: _World, found) -> tuple[CollisionManifold, jax.Array, jax.Array]:
  """The candidates' manifold points in one list (polygon pairs' first points, their second
  points, circle-polygon, circle-circle), with the bodies of each point."""
  points, first, second = [], [], []
  for table, make, store, (index, real, _) in zip(
    PAIR_TABLES, _MANIFOLDS, world.impulses, found, strict=True
  ):
    a, b = jnp.asarray(table)[index, 0], jnp.asarray(table)[index, 1]
    shape = store.active[index].shape
    warm = CollisionManifold(
      normal=jnp.zeros((*shape, 2)),
      penetration=jnp.zeros(shape),
      collision_point=jnp.zeros((*shape, 2)),
      active=store.active[index],
      acc_impulse_normal=store.normal[index],
      acc_impulse_tangent=store.tangent[index],
      restitution_velocity_target=jnp.zeros(shape),
    )
    found_points = jax.vmap(make)(_take(world.bodies, a), _take(world.bodies, b), warm)
    if len(shape) == 2:  # [pairs, 2] -> [2 * pairs], first points first
      found_points = jax.tree.map(
        lambda x: jnp.swapaxes(x, 0, 1).reshape(-1, *x.shape[2:]), found_points
      )
      a, b, real = jnp.tile(a, 2), jnp.tile(b, 2), jnp.tile(real, 2)
    points.append(found_points.replace(active=found_points.active & real))
    first.append(a)
    second.append(b)
  return (
    jax.tree.map(lambda *x: jnp.concatenate(x), *points),
    jnp.concatenate(first),
    jnp.concatenate(second),
  )


@struct.dataclass
class _Contacts:
  """The solver's contact points [CONTACT_POINTS]: the two bodies of each, the velocity Jacobian
  rows [2, 3] over their velocities (vx, vy, w) along the normal and the tangent, the same rows
  weighted by inverse masses, effective masses, velocity targets, friction, and accumulated
  impulses."""

  pair: jax.Array
  normal_row: jax.Array
  tangent_row: jax.Array
  normal_push: jax.Array
  tangent_push: jax.Array
  normal_mass: jax.Array
  tangent_mass: jax.Array
  target: jax.Array
  friction: jax.Array
  live: jax.Array
  normal_impulse: jax.Array
  tangent_impulse: jax.Array


def _contacts(bodies: RigidBody, points: CollisionManifold, a: jax.Array, b: jax.Array):
  """The active points (at most CONTACT_POINTS) as a _Contacts, and where they are in `points`."""
  index, real, count = _first(points.active, CONTACT_POINTS)
  point, a, b = _take(points, index), a[index], b[index]
  r_a = point.collision_point - bodies.position[a]
  r_b = point.collision_point - bodies.position[b]
  normal = point.normal
  tangent = jnp.stack([normal[:, 1], -normal[:, 0]], -1)  # jax2d's vs_cross(normal, 1)
  pair = jnp.stack([a, b], -1)

  def row(direction):
    at_a = jnp.concatenate([-direction, -_cross(r_a, direction)[:, None]], -1)
    at_b = jnp.concatenate([direction, _cross(r_b, direction)[:, None]], -1)
    return jnp.stack([at_a, at_b], 1)

  inverse = jnp.stack([bodies.inverse_mass, bodies.inverse_mass, bodies.inverse_inertia], -1)
  normal_row, tangent_row = row(normal), row(tangent)
  normal_push, tangent_push = normal_row * inverse[pair], tangent_row * inverse[pair]
  # jax2d's zero_to_one guard on the effective masses.
  normal_mass = jnp.sum(normal_row * normal_push, (-1, -2))
  tangent_mass = jnp.sum(tangent_row * tangent_push, (-1, -2))
  bias = (
    -_SIM_PARAMS.baumgarte_coefficient_collision
    / _SIM_PARAMS.dt
    * jnp.minimum(0.0, _SIM_PARAMS.slop - point.penetration)
  )
  live = (
    real
    & ((bodies.inverse_mass[a] != 0) | (bodies.inverse_mass[b] != 0))
    & bodies.active[a]
    & bodies.active[b]
  )
  contacts = _Contacts(
    pair=pair,
    normal_row=normal_row,
    tangent_row=tangent_row,
    normal_push=normal_push,
    tangent_push=tangent_push,
    normal_mass=jnp.where(normal_mass == 0, 1.0, normal_mass),
    tangent_mass=jnp.where(tangent_mass == 0, 1.0, tangent_mass),
    target=bias - point.restitution_velocity_target,
    friction=_SIM_PARAMS.base_friction
    * jnp.sqrt(bodies.friction[a] ** 2 + bodies.friction[b] ** 2),
    live=live,
    normal_impulse=jnp.where(live, point.acc_impulse_normal, 0.0),
    tangent_impulse=jnp.where(live, point.acc_impulse_tangent, 0.0),
  )
  return contacts, jnp.where(real, index, len(points.active)), count


def _velocities(bodies: RigidBody) -> jax.Array:
  """[NUM_BODIES, 3]: vx, vy, w."""
  return jnp.concatenate([bodies.velocity, bodies.angular_velocity[:, None]], -1)


def _with_velocities(bodies: RigidBody, velocities: jax.Array) -> RigidBody:
  return bodies.replace(velocity=velocities[:, :2], angular_velocity=velocities[:, 2])


def _add(bodies: RigidBody, index: jax.Array, velocity, angular_velocity, position=None):
  """Adds per-entry changes at body indices (repeated indices add up)."""
  changed = bodies.replace(
    velocity=bodies.velocity.at[index].add(velocity),
    angular_velocity=bodies.angular_velocity.at[index].add(angular_velocity),
  )
  if position is None:
    return changed
  return changed.replace(position=changed.position.at[index].add(position))


def _solve_joint(carry, k):
  """jax2d's fixed-joint resolution of joint k (velocities and a position correction)."""
  bodies, joints = carry
  joint = _take(joints, k)
  a, b = _take(bodies, joint.a_index), _take(bodies, joint.b_index)
  a_dv, b_dv, a_dw, b_dw, a_dp, b_dp, point, impulse, turn = jax2d_joint.resolve_joint(
    a, b, joint, _SIM_PARAMS
  )
  joints = joints.replace(
    global_position=joints.global_position.at[k].set(point),
    acc_impulse=joints.acc_impulse.at[k].set(impulse),
    acc_r_impulse=joints.acc_r_impulse.at[k].set(turn),
  )
  pair = jnp.stack([joint.a_index, joint.b_index])
  bodies = _add(
    bodies, pair, jnp.stack([a_dv, b_dv]), jnp.stack([a_dw, b_dw]), jnp.stack([a_dp, b_dp])
  )
  return (bodies, joints), None


def _solve_contact(velocities: jax.Array, c: _Contacts):
  """jax2d's contact impulse of one point: clamped normal impulse, then Coulomb friction."""
  speed = jnp.sum(c.normal_row * velocities[c.pair])
  normal = jnp.maximum(c.normal_impulse + (c.target - speed) / c.normal_mass, 0.0)
  normal = jnp.where(c.live, normal, 0.0)
  velocities = velocities.at[c.pair].add(c.normal_push * (normal - c.normal_impulse))
  bound = c.friction * normal
  slip = jnp.sum(c.tangent_row * velocities[c.pair])
  tangent = jnp.clip(c.tangent_impulse - slip / c.tangent_mass, -bound, bound)
  velocities = velocities.at[c.pair].add(c.tangent_push * (tangent - c.tangent_impulse))
  return velocities, (normal, tangent)


def _store(world: _World, found, points: CollisionManifold, where, contacts: _Contacts):
  """The step's accumulated impulses per pair, for the next step's warm start."""
  normal = (
    jnp.zeros_like(points.acc_impulse_normal).at[where].set(contacts.normal_impulse, mode="drop")
  )
  tangent = jnp.zeros_like(normal).at[where].set(contacts.tangent_impulse, mode="drop")
  active = jnp.zeros_like(points.active).at[where].set(contacts.live, mode="drop")
  stored, start = [], 0
  for store, (index, real, _) in zip(world.impulses, found, strict=True):
    per_pair = store.active.shape[1:]  # (2,) for polygon pairs
    count = len(index) * (per_pair[0] if per_pair else 1)
    part = [x[start : start + count] for x in (normal, tangent, active)]
    start += count
    if per_pair:
      part = [x.reshape(2, len(index)).T for x in part]
    slot = jnp.where(real, index, len(store.active))  # padding is dropped
    stored.append(
      _Impulses(
        *(
          jnp.zeros_like(old).at[slot].set(new, mode="drop")
          for old, new in zip((store.normal, store.tangent, store.active), part, strict=True)
        )
      )
    )
  return tuple(stored)


def _step(world: _World, iterations: int) -> tuple[_World, jax.Array]:
  """One 1 / PHYSICS_HZ step; also returns the step's candidate counts and contact count."""
  bodies = world.bodies
  moving = (bodies.inverse_mass != 0)[:, None]
  bodies = bodies.replace(velocity=bodies.velocity + _GRAVITY * _SIM_PARAMS.dt * moving)
  world = world.replace(bodies=bodies)
  found = _candidates(bodies)
  points, a, b = _manifolds(world, found)
  contacts, where, count = _contacts(bodies, points, a, b)
  # Warm start: last step's impulses of the contacts that persist, and of the joints.
  push = (
    contacts.normal_push * contacts.normal_impulse[:, None, None]
    + contacts.tangent_push * contacts.tangent_impulse[:, None, None]
  )
  velocities = _velocities(bodies).at[contacts.pair.reshape(-1)].add(push.reshape(-1, 3))
  bodies, joints = _with_velocities(bodies, velocities), world.joints
  warm = jax.vmap(jax2d_joint.resolve_joint_warm_start)(
    _take(bodies, joints.a_index), _take(bodies, joints.b_index), joints
  )
  pair = jnp.concatenate([joints.a_index, joints.b_index])
  bodies = _add(bodies, pair, jnp.concatenate(warm[:2]), jnp.concatenate(warm[2:]))

  def iteration(carry, _):
    bodies, joints, contacts = carry
    (bodies, joints), _ = jax.lax.scan(_solve_joint, (bodies, joints), jnp.arange(len(pair) // 2))
    velocities, (normal, tangent) = jax.lax.scan(_solve_contact, _velocities(bodies), contacts)
    contacts = contacts.replace(normal_impulse=normal, tangent_impulse=tangent)
    return (_with_velocities(bodies, velocities), joints, contacts), None

  (bodies, joints, contacts), _ = jax.lax.scan(
    iteration, (bodies, joints, contacts), None, length=iterations
  )
  impulses = _store(world, found, points, where, contacts)
  dt, params = _SIM_PARAMS.dt, _SIM_PARAMS
  bodies = bodies.replace(
    position=jnp.clip(
      bodies.position + bodies.velocity * dt, -params.clip_position, params.clip_position
    ),
    rotation=bodies.rotation + bodies.angular_velocity * dt,
    velocity=jnp.clip(bodies.velocity, -params.clip_velocity, params.clip_velocity),
    angular_velocity=jnp.clip(
      bodies.angular_velocity, -params.clip_angular_velocity, params.clip_angular_velocity
    )
    / (1.0 + dt * ANGULAR_DAMPING),  # Box2D's angular damping
  )
  load = jnp.stack([*(n for _, _, n in found), count])
  return _World(bodies, joints, impulses), load


def _read(world: _World) -> tuple[jax.Array, ...]:
  """Slot position [K, 2], angle [K], velocity [K, 2] and angular velocity [K]."""
  order = np.argsort(_BODY_SLOT)[_NUM_WALLS:]  # the bodies of slots 0..K-1
  bodies = world.bodies
  return tuple(
    getattr(bodies, f)[order] for f in ("position", "rotation", "velocity", "angular_velocity")
  )


def _run(state: BodyState, num_frames: int, iterations: int):
  def one(example: BodyState):
    def frame(world, _):
      def step(world, _):
        return _step(world, iterations)

      world, load = jax.lax.scan(step, world, None, length=STEPS_PER_FRAME)
      return world, (_read(world), load.max(0))

    world = _world(example)
    _, (later, load) = jax.lax.scan(frame, world, None, length=num_frames - 1)
    slots = jax.tree.map(lambda f, r: jnp.concatenate([f[None], r]), _read(world), later)
    return slots, load.max(0)

  (position, angle, velocity, angular_velocity), load = jax.vmap(one)(state)
  return _trajectory(state, position, angle, velocity, angular_velocity), load


def _trajectory(state: BodyState, position, angle, velocity, angular_velocity) -> BodyTrajectory:
  return BodyTrajectory(
    position=position,
    angle=angle,
    velocity=velocity,
    angular_velocity=angular_velocity,
    shape=state.shape,
    size=state.size,
    color=state.color,
    dynamic=state.dynamic,
    active=state.active,
  )


@functools.partial(jax.jit, static_argnames=("num_frames", "iterations"))
def simulate(
  state: BodyState, num_frames: int, iterations: int = SOLVER_ITERATIONS
) -> BodyTrajectory:
  """Rolls `state` out for `num_frames` frames, STEPS_PER_FRAME steps apart."""
  return _run(state, num_frames, iterations)[0]


@functools.partial(jax.jit, static_argnames=("num_frames", "iterations"))
def contact_load(
  state: BodyState, num_frames: int, iterations: int = SOLVER_ITERATIONS
) -> jax.Array:
  """[n, 4] int32: per example, the most broad-phase candidates of each pair table (polygon-
  polygon, circle-polygon, circle-circle) and active contact points any step of the rollout had;
  above CANDIDATES or CONTACT_POINTS the surplus was ignored."""
  return _run(state, num_frames, iterations)[1]


JAX2D_SOLVER_ITERATIONS = 20  # what the scene ran on stock jax2d before this engine


@functools.partial(jax.jit, static_argnames=("num_frames", "iterations"))
def simulate_with_jax2d(
  state: BodyState, num_frames: int, iterations: int = JAX2D_SOLVER_ITERATIONS
) -> BodyTrajectory:
  """The same world stepped by stock jax2d (`PhysicsEngine.step`, every pair in every iteration):
  the engine this one replaces, kept as the reference for tests and benchmarks."""
  static = _STATIC_SIM_PARAMS.replace(num_solver_iterations=iterations)
  with jax.ensure_compile_time_eval():  # its constructor runs eagerly; keep it out of the trace
    stock = jax2d_engine.PhysicsEngine(static)
  actions = jnp.zeros(static.num_joints + static.num_thrusters)
  damping = 1.0 / (1.0 + _SIM_PARAMS.dt * ANGULAR_DAMPING)

  def step(sim, _):
    sim = stock.step(sim, _SIM_PARAMS, actions)[0]
    return sim.replace(
      polygon=sim.polygon.replace(angular_velocity=sim.polygon.angular_velocity * damping),
      circle=sim.circle.replace(angular_velocity=sim.circle.angular_velocity * damping),
    ), None

  def read(sim):
    def slots(field):
      return jnp.concatenate([getattr(sim.circle, field), getattr(sim.polygon, field)[_NUM_WALLS:]])

    return tuple(slots(f) for f in ("position", "rotation", "velocity", "angular_velocity"))

  def one(example: BodyState):
    def frame(sim, _):
      sim = jax.lax.scan(step, sim, None, length=STEPS_PER_FRAME)[0]
      return sim, read(sim)

    sim = _to_sim(example)
    later = jax.lax.scan(frame, sim, None, length=num_frames - 1)[1]
    return jax.tree.map(lambda f, r: jnp.concatenate([f[None], r]), read(sim), later)

  position, angle, velocity, angular_velocity = jax.vmap(one)(state)
  return _trajectory(state, position, angle, velocity, angular_velocity)
