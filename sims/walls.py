"""Static, perfectly elastic vertical walls and an exact event-driven rollout of discs and squares.

Objects move on straight lines (no gravity) and meet two kinds of event, each solved in closed
form with its exact contact time:

- a disc touches a disc: `physics.contact_time`, then `physics.elastic_exchange` with masses
  radius**2 (the study's convention). Only discs meet discs: a square (axis-aligned, half side
  `radius`) passes through other objects, so scenes keep squares clear of them;
- an object touches a wall: a wall is a static, infinitely massive box spanning the world's height
  (centre x `wall_x`, half thickness `wall_half_width`); the object's half extent along x is its
  radius for a disc and its half side for a square, and on contact the velocity component normal
  to the wall flips, so speed is conserved exactly.

`events` runs a fixed number of events with `jax.lax.scan` (fixed shapes; when no event is left a
step changes nothing); `rollout` evaluates every frame time k * FRAME_DT exactly from the last
event before it. Both are jitted (eager calls compile once per shape) and vmap / grad friendly,
with finite gradients when no event happens. Events past the clip are harmless; an example with
more than `max_events` events inside the clip would let objects pass through each other or a
wall (`events` shows them). Inactive objects and walls are absent: they meet nothing and are not
drawn.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from sims import physics
from sims.core import BOX, CIRCLE, NUM_FRAMES, SQUARE, WORLD_SIZE, BallState, BodyTrajectory

BLACK = (0.0, 0.0, 0.0)
# Enough for a disc of up to 4 times the other's mass squeezed against a wall (6 events).
MAX_EVENTS = 8


@struct.dataclass
class WallState:
  """Batched initial state of K moving objects and W static vertical walls (leading axis n).

  position, velocity: [n, K, 2]; radius: [n, K] (half the side for squares); color: [n, K, 3];
  shape: [n, K] index into sims.SHAPES; active: [n, K] bool; wall_x, wall_half_width: [n, W]
  world units; wall_active: [n, W] bool.
  """

  position: jax.Array
  velocity: jax.Array
  radius: jax.Array
  color: jax.Array
  shape: jax.Array
  active: jax.Array
  wall_x: jax.Array
  wall_half_width: jax.Array
  wall_active: jax.Array

  @property
  def mass(self) -> jax.Array:
    return self.radius**2


@struct.dataclass
class EventLog:
  """The state after each event: time [n, E + 1] (entry 0 is t = 0), position and velocity
  [n, E + 1, K, 2]; between [n, E, 2] int32 names who met: objects (i, j), object i and wall w
  as (i, K + w), or (-1, -1) where no event was left (the entry repeats the one before)."""

  time: jax.Array
  position: jax.Array
  velocity: jax.Array
  between: jax.Array


def wall_contact_time(
  x: jax.Array, vx: jax.Array, half: jax.Array, wall_x: jax.Array, wall_half_width: jax.Array
) -> jax.Array:
  """Time until an object at x moving at vx with half extent `half` touches a wall, from either
  side, or physics.NO_CONTACT if it moves away or along it; arguments broadcast. An object that
  already overlaps the wall while approaching it touches it now (time 0)."""
  side = jnp.where(x >= wall_x, 1.0, -1.0)
  gap = side * (x - wall_x) - half - wall_half_width
  approach = -side * vx
  hits = approach > 0
  return jnp.where(hits, jnp.maximum(gap, 0.0) / jnp.where(hits, approach, 1.0), physics.NO_CONTACT)


def _pair_contact_times(state: WallState, position: jax.Array, velocity: jax.Array) -> jax.Array:
  """Contact times [n, P] of the object pairs (np.triu_indices order); NO_CONTACT where a pair
  never touches or may not (a square or an inactive object)."""
  n, k = state.radius.shape
  first, second = np.triu_indices(k, 1)

  def pairs(a: jax.Array) -> jax.Array:
    both = jnp.stack([a[:, first], a[:, second]], 2)  # [n, P, 2, ...]
    return both.reshape(-1, 2, *a.shape[2:])

  pair_state = BallState(
    pairs(position), pairs(velocity), pairs(state.radius), pairs(state.color), pairs(state.shape)
  )
  times = physics.contact_time(pair_state).reshape(n, -1)
  disc = state.active & (state.shape != SQUARE)
  return jnp.where(disc[:, first] & disc[:, second], times, physics.NO_CONTACT)


def _step(state: WallState, position: jax.Array, velocity: jax.Array):
  """The next event after a state: its delay [n] (0 if none), the positions at it, the
  velocities just after it, and `between` [n, 2]."""
  n, k = state.radius.shape
  num_walls = max(state.wall_x.shape[1], 1)
  first, second = (jnp.asarray(i, jnp.int32) for i in np.triu_indices(k, 1))
  num_pairs = first.shape[0]
  wall_times = wall_contact_time(
    position[:, :, None, 0],
    velocity[:, :, None, 0],
    state.radius[:, :, None],
    state.wall_x[:, None],
    state.wall_half_width[:, None],
  )
  wall_times = jnp.where(
    state.active[:, :, None] & state.wall_active[:, None], wall_times, physics.NO_CONTACT
  )
  times = jnp.concatenate(
    [_pair_contact_times(state, position, velocity), wall_times.reshape(n, -1)], 1
  )
  choice = jnp.argmin(times, axis=1)
  delay = jnp.take_along_axis(times, choice[:, None], 1)[:, 0]
  happens = delay < physics.NO_CONTACT
  delay = jnp.where(happens, delay, 0.0)
  position = position + velocity * delay[:, None, None]
  slots, rows = jnp.arange(k), jnp.arange(n)

  # A wall event flips the x velocity of its object.
  wall_object = (choice - num_pairs) // num_walls
  flipped = (slots == wall_object[:, None]) & (happens & (choice >= num_pairs))[:, None]
  after = jnp.where(flipped[..., None], velocity * jnp.array([-1.0, 1.0]), velocity)
  between = jnp.stack([wall_object, k + (choice - num_pairs) % num_walls], -1)
  if num_pairs:
    # A pair event exchanges momentum along the line of centres.
    pair = jnp.minimum(choice, num_pairs - 1)
    i, j = first[pair], second[pair]
    is_pair = happens & (choice < num_pairs)

    def both(a: jax.Array) -> jax.Array:
      return jnp.stack([a[rows, i], a[rows, j]], 1)

    # Other events get a harmless pair placement, so no NaN reaches the gradient.
    safe = jnp.where(is_pair[:, None, None], both(position), jnp.array([[0.0, 0.0], [1.0, 0.0]]))
    exchanged = physics.elastic_exchange(safe, both(velocity), both(state.mass))
    for index, new in ((i, exchanged[:, 0]), (j, exchanged[:, 1])):
      hit = (slots == index[:, None]) & is_pair[:, None]
      after = jnp.where(hit[..., None], new[:, None], after)
    between = jnp.where(is_pair[:, None], jnp.stack([i, j], -1), between)
  between = jnp.where(happens[:, None], between, -1).astype(jnp.int32)
  return delay, position, after, between


@functools.partial(jax.jit, static_argnames="max_events")
def events(state: WallState, max_events: int = MAX_EVENTS) -> EventLog:
  """The first `max_events` events of a state, in order (see EventLog)."""

  def advance(carry, _):
    time, position, velocity = carry
    delay, position, velocity, between = _step(state, position, velocity)
    carry = (time + delay, position, velocity)
    return carry, (*carry, between)

  start = (jnp.zeros(state.radius.shape[0]), state.position, state.velocity)
  _, (time, position, velocity, between) = jax.lax.scan(advance, start, length=max_events)

  def log(first: jax.Array, rest: jax.Array) -> jax.Array:
    return jnp.concatenate([first[:, None], jnp.moveaxis(rest, 0, 1)], 1)

  return EventLog(
    time=log(start[0], time),
    position=log(state.position, position),
    velocity=log(state.velocity, velocity),
    between=jnp.moveaxis(between, 0, 1),
  )


@functools.partial(jax.jit, static_argnames=("num_frames", "max_events"))
def rollout(
  state: WallState, num_frames: int = NUM_FRAMES, max_events: int = MAX_EVENTS
) -> tuple[jax.Array, jax.Array]:
  """Positions and velocities [n, T, K, 2] at frame times k * FRAME_DT, each evaluated exactly
  from the last event at or before it."""
  log = events(state, max_events)
  t = physics.frame_times(num_frames)
  index = jnp.sum(log.time[:, None, :] <= t[None, :, None], -1) - 1  # [n, T]
  since = t - jnp.take_along_axis(log.time, index, 1)

  def at_index(a: jax.Array) -> jax.Array:
    return jnp.take_along_axis(a, index[:, :, None, None], 1)

  velocity = at_index(log.velocity)
  return at_index(log.position) + velocity * since[..., None, None], velocity


def to_body_trajectory(
  state: WallState, position: jax.Array, velocity: jax.Array
) -> BodyTrajectory:
  """A BodyTrajectory for `sims.render`: slots 0..K-1 are the objects (squares as axis-aligned
  boxes, other shapes as filled discs), slots K..K+W-1 the walls as static black boxes spanning
  the world's height."""
  n, num_frames, k = position.shape[:3]
  num_walls = state.wall_x.shape[1]
  wall_position = jnp.stack(
    [state.wall_x, jnp.full_like(state.wall_x, WORLD_SIZE / 2)], -1
  )  # [n, W, 2]
  wall_position = jnp.broadcast_to(wall_position[:, None], (n, num_frames, num_walls, 2))
  wall_size = jnp.stack(
    [state.wall_half_width, jnp.full_like(state.wall_half_width, WORLD_SIZE / 2)], -1
  )
  zeros = jnp.zeros((n, num_frames, k + num_walls))
  return BodyTrajectory(
    position=jnp.concatenate([position, wall_position], 2),
    angle=zeros,
    velocity=jnp.concatenate([velocity, jnp.zeros_like(wall_position)], 2),
    angular_velocity=zeros,
    shape=jnp.concatenate(
      [jnp.where(state.shape == SQUARE, BOX, CIRCLE), jnp.full((n, num_walls), BOX)], 1
    ),
    size=jnp.concatenate([jnp.repeat(state.radius[..., None], 2, -1), wall_size], 1),
    color=jnp.concatenate(
      [state.color, jnp.broadcast_to(jnp.asarray(BLACK, jnp.float32), (n, num_walls, 3))], 1
    ),
    dynamic=jnp.concatenate([jnp.ones((n, k), bool), jnp.zeros((n, num_walls), bool)], 1),
    active=jnp.concatenate([state.active, state.wall_active], 1),
  )
