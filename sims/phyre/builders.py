"""The study's object builders (its component_utils.py) on PHYRE's shapes, in world units."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from sims.core import BOX, WORLD_SIZE
from sims.phyre.geometry import _rotate, _world_half_extents
from sims.phyre.world import (
  BAR_THICKNESS,
  KIND_SLOTS,
  PIXEL,
  SCENE_PIXELS,
  SLOT_SHAPES,
  STICK_ANGLE,
  _Bodies,
)

_WALK_STEPS = 48


def _between(u: jax.Array, low: float, high: float) -> jax.Array:
  """Maps uniforms in [0, 1) to [low, high). Builders take their uniforms as one array (one
  random-number call per object kind keeps compile times short)."""
  return low + u * (high - low)


def _degrees(u: jax.Array, limit: float) -> jax.Array:
  return jnp.deg2rad(_between(u, -limit, limit))


def _ball_radius(scale: jax.Array | float) -> jax.Array:
  """PHYRE's ball of a given scale: radius int(scale * width / 2) + 0.5 pixels."""
  return (jnp.floor(scale * SCENE_PIXELS / 2) + 0.5) * PIXEL


def _single(position, angle, half) -> _Bodies:
  return _Bodies(
    jnp.stack(position)[None], jnp.asarray(angle)[None], jnp.stack(half)[None], jnp.ones(1, bool)
  )


def _bar_half(length: jax.Array) -> jax.Array:
  return jnp.stack([0.5 * length, jnp.full_like(length, 0.5 * BAR_THICKNESS)])


def _rest_on(parts: _Bodies, angle, bottom, centre_x) -> _Bodies:
  """Rotates a body's parts (given about its origin) by angle, then moves it so that its lowest
  point is at `bottom` and the middle of its horizontal extent at `centre_x` (PHYRE's setters,
  applied in PHYRE's order: angle, bottom, centre_x)."""
  position = _rotate(parts.position, angle)
  angles = parts.angle + angle
  reach = _world_half_extents(angles, parts.half, jnp.ones_like(angles, bool))
  low, high = position - reach, position + reach
  shift = jnp.stack(
    [centre_x - 0.5 * (low[:, 0].min() + high[:, 0].max()), bottom - low[:, 1].min()]
  )
  return parts.replace(position=position + shift, angle=angles)


def _draw_dynamic_ball(u: jax.Array) -> _Bodies:
  radius = _ball_radius(_between(u[0], 0.06, 0.12))
  x = _between(u[1], 0.3, 0.6) * WORLD_SIZE
  bottom = _between(u[2], 0.4, 0.85) * WORLD_SIZE
  return _single((x, bottom + radius), 0.0, (radius, radius))


def _draw_dynamic_bar(u: jax.Array) -> _Bodies:
  """Centre x and bottom are set on the level bar, which is then turned about its centre."""
  length = _between(u[0], 0.15, 0.5) * WORLD_SIZE
  x = _between(u[1], 0.3, 0.6) * WORLD_SIZE
  bottom = _between(u[2], 0.2, 0.8) * WORLD_SIZE
  return _single((x, bottom + 0.5 * BAR_THICKNESS), _degrees(u[3], 90.0), _bar_half(length))


def _draw_static_bar(u: jax.Array) -> _Bodies:
  """Right end and bottom are set on the level bar, which is then turned about its centre."""
  length = _between(u[0], 0.2, 0.5) * WORLD_SIZE
  right = _between(u[1], 0.3, 0.4) * WORLD_SIZE
  bottom = _between(u[2], 0.1, 0.5) * WORLD_SIZE
  centre = (right - 0.5 * length, bottom + 0.5 * BAR_THICKNESS)
  return _single(centre, _degrees(u[3], 60.0), _bar_half(length))


def _draw_standing_bars(u: jax.Array) -> _Bodies:
  """1-4 upright bars of heights 0.2, 0.25, ... on the floor, 0.15 apart, mirrored at p = 0.5."""
  mirrored = u[1] < 0.5
  offset = _between(u[0], 0.45, 0.6)
  offset = jnp.where(mirrored, 1.0 - offset, offset)
  spacing = jnp.where(mirrored, -0.15, 0.15)
  count = 1 + jnp.floor(4 * u[2]).astype(jnp.int32)
  i = jnp.arange(4)
  lefts = (offset + spacing * (jnp.floor_divide(-count, 2) + i)) * WORLD_SIZE
  lengths = (0.2 + 0.05 * i) * WORLD_SIZE
  position = jnp.stack([lefts + 0.5 * BAR_THICKNESS, 0.5 * lengths], -1)
  half = jnp.stack([0.5 * lengths, jnp.full(4, 0.5 * BAR_THICKNESS)], -1)
  return _Bodies(position, jnp.full(4, jnp.pi / 2), half, i < count)


# A jar's walls rise by `height` over a run of (width - base width) / 2 = height / 12.
_JAR_SLANT = math.atan2(12.0, 1.0)  # from the horizontal


def _jar_parts(height: jax.Array) -> _Bodies:
  """PHYRE's jar of a given height about its origin (the base's centre) as three boxes.

  Width is height / 1.2, the base 0.8 of the width, the thickness logarithmic in the height
  (SCENE_PIXELS / 50 pixels at scale 0.3). The walls are the boxes that share PHYRE's slanted
  outer edges and thickness; PHYRE cuts their tops level, so each box's top overshoots the rim by
  thickness * cos(slant) (0.08 of the thickness).
  """
  thickness = jnp.log(height / PIXEL) / math.log(0.3 * SCENE_PIXELS) * (SCENE_PIXELS / 50) * PIXEL
  base_width = 0.8 * height / 1.2
  length = height / math.sin(_JAR_SLANT)
  cos, sin = math.cos(_JAR_SLANT), math.sin(_JAR_SLANT)
  corner = jnp.stack([-0.5 * base_width, -0.5 * thickness])  # outer bottom of the left wall
  left = (
    corner + 0.5 * length * jnp.asarray([-cos, sin]) + 0.5 * thickness * jnp.asarray([sin, cos])
  )
  wall_half = jnp.stack([0.5 * length, 0.5 * thickness])
  return _Bodies(
    position=jnp.stack([jnp.zeros(2), left, left * jnp.asarray([-1.0, 1.0])]),
    angle=jnp.asarray([0.0, math.pi - _JAR_SLANT, _JAR_SLANT]),
    half=jnp.stack([jnp.stack([0.5 * base_width, 0.5 * thickness]), wall_half, wall_half]),
    active=jnp.ones(3, bool),
  )


def _draw_jar(u: jax.Array) -> _Bodies:
  """Tilted up to 45 degrees and lifted (p = 0.7), else upright on the floor."""
  height = _between(u[0], 0.08, 0.3) * WORLD_SIZE
  tilted = u[4] < 0.7
  angle = jnp.where(tilted, _degrees(u[3], 45.0), 0.0)
  bottom = jnp.where(tilted, _between(u[2], 0.2, 0.8) * WORLD_SIZE, 0.0)
  return _rest_on(_jar_parts(height), angle, bottom, _between(u[1], 0.3, 0.6) * WORLD_SIZE)


def _draw_standing_sticks(u: jax.Array) -> _Bodies:
  """Two sticks crossing at their centres at +-77.5 degrees (2/3 of the scale long, 2/3 of a
  bar thick); upright on the floor (p = 0.3), else turned up to 90 degrees and lifted."""
  width = _between(u[0], 0.3, 0.6) * WORLD_SIZE
  on_floor = u[4] < 0.3
  angle = jnp.where(on_floor, 0.0, _degrees(u[3], 90.0))
  bottom = jnp.where(on_floor, 0.0, _between(u[2], 0.2, 0.5) * WORLD_SIZE)
  half = jnp.stack([width / 3.0, jnp.full_like(width, BAR_THICKNESS / 3.0)])
  parts = _Bodies(
    position=jnp.zeros((2, 2)),
    angle=jnp.asarray([-STICK_ANGLE, STICK_ANGLE]),
    half=jnp.stack([half, half]),
    active=jnp.ones(2, bool),
  )
  return _rest_on(parts, angle, bottom, _between(u[1], 0.3, 0.6) * WORLD_SIZE)


def _draw_static_balls(uniforms: jax.Array) -> _Bodies:
  """The study's chain of small static balls: a random walk from (0.4, 0.55) (scene fractions).

  Each step turns by a fixed angle and moves 0.05-0.2; steps ending at y >= 0.5 are dropped;
  after 3 steps a line may restart (p = 0.2) from a random earlier point in a new direction.
  The walk stops once 2-6 points (drawn) have landed inside the scene. A ball is drawn at the
  start and at every landed point; restarts land on an existing point (in PHYRE, an exact
  duplicate ball), which counts towards the total but adds no ball. Runs for at most
  _WALK_STEPS steps; `uniforms` is [_WALK_STEPS + 1, 5].
  """
  target = 2 + jnp.floor(5 * uniforms[0, 0]).astype(jnp.int32)
  angle0, turn0 = uniforms[0, 1:3] * jnp.asarray([2 * jnp.pi, 0.2 * jnp.pi])
  start = jnp.asarray([0.4, 0.55])
  num_new = len(KIND_SLOTS["static_ball"]) - 1

  def step(carry, u):
    points, count, cursor, angle, turn, line, landed, balls, num_balls = carry
    restart = (line >= 3) & (u[0] < 0.2)
    angle = jnp.where(restart, 2 * jnp.pi * u[1], angle + turn)
    turn = jnp.where(restart, 0.2 * jnp.pi * u[2], turn)
    moved = cursor + (0.05 + 0.15 * u[3]) * jnp.stack([jnp.cos(angle), jnp.sin(angle)])
    point = jnp.where(restart, points[jnp.floor(u[4] * count).astype(jnp.int32)], moved)
    accepted = (landed < target) & (point[1] < 0.5)  # nothing lands once the walk is done
    inside = jnp.all((point > 0.0) & (point < 1.0))
    fresh = accepted & inside & ~restart
    return (
      jnp.where(accepted, points.at[count].set(point), points),
      count + accepted,
      jnp.where(accepted, point, cursor),
      angle,
      turn,
      jnp.where(restart, 1, line + 1),
      landed + (accepted & inside),
      jnp.where(fresh, balls.at[num_balls].set(point), balls),
      num_balls + fresh,
    ), None

  points = jnp.zeros((_WALK_STEPS + 1, 2)).at[0].set(start)
  one, zero = jnp.ones((), jnp.int32), jnp.zeros((), jnp.int32)
  init = (points, one, start, angle0, turn0, one, zero, jnp.zeros((num_new, 2)), zero)
  carry, _ = jax.lax.scan(step, init, uniforms[1:])
  balls, num_balls = carry[-2], carry[-1]
  centres = jnp.concatenate([start[None], balls]) * WORLD_SIZE
  radius = _ball_radius(0.04)
  return _Bodies(
    position=centres,
    angle=jnp.zeros(num_new + 1),
    half=jnp.full((num_new + 1, 2), radius),
    active=jnp.arange(num_new + 1) <= num_balls,
  )


# Each builder maps a vector of _NUM_UNIFORMS uniforms to its parts.
_NUM_UNIFORMS = 5
_DRAW = {
  "dynamic_ball_1": _draw_dynamic_ball,
  "dynamic_ball_2": _draw_dynamic_ball,
  "dynamic_bar": _draw_dynamic_bar,
  "dynamic_standing_bars": _draw_standing_bars,
  "static_bar": _draw_static_bar,
  "dynamic_jar": _draw_jar,
  "dynamic_standingsticks": _draw_standing_sticks,
}
_IS_BOX = SLOT_SHAPES == BOX
