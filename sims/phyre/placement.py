"""Placement without overlaps: a task's objects from its layout key, then the red ball."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from sims.core import CIRCLE, WORLD_SIZE
from sims.phyre.builders import (
  _DRAW,
  _IS_BOX,
  _NUM_UNIFORMS,
  _WALK_STEPS,
  _between,
  _draw_static_balls,
)
from sims.phyre.geometry import (
  _Frames,
  _outer,
  _world_half_extents,
  separations,
  wall_penetration,
)
from sims.phyre.templates import _TEMPLATE_MASKS, FIRST_TEMPLATE, TEMPLATE_KINDS
from sims.phyre.world import (
  BAR_THICKNESS,
  KIND_SLOTS,
  KINDS,
  NUM_SLOTS,
  PIXEL,
  RED_BALL,
  SCENE_PIXELS,
  SLOT_COLORS,
  SLOT_DYNAMIC,
  SLOT_SHAPES,
  BodyState,
  _Bodies,
)

MIN_GAP = PIXEL
OBJECT_CANDIDATES = 32
RED_BALL_CANDIDATES = 32
PLACEMENT_ORDER = (
  "static_bar",
  "dynamic_standing_bars",
  "dynamic_jar",
  "dynamic_standingsticks",
  "dynamic_bar",
  "dynamic_ball_1",
  "dynamic_ball_2",
)
_LAYOUT_SEED = 20241104


def _clearance(candidate: _Bodies, is_box: np.ndarray, placed: _Bodies, frames: _Frames):
  """Whether a candidate (parts of shapes is_box) is inside the box and MIN_GAP clear of the
  placed bodies (whose _Frames are given)."""
  gap = _outer(_Frames.of(candidate.position, candidate.angle, candidate.half, is_box), frames)
  clear = jnp.all((gap >= MIN_GAP) | ~placed.active, axis=1)
  reach = _world_half_extents(candidate.angle, candidate.half, jnp.asarray(is_box))
  inside = jnp.all(
    (candidate.position - reach >= -1e-5) & (candidate.position + reach <= WORLD_SIZE + 1e-5), -1
  )
  return jnp.all((clear & inside) | ~candidate.active)


def _first_clear(candidates: _Bodies, is_box: np.ndarray, placed: _Bodies) -> _Bodies:
  """The first candidate (leading axis) clear of `placed`; inactive if none is."""
  frames = _Frames.of(placed.position, placed.angle, placed.half, _IS_BOX)
  ok = jax.vmap(_clearance, (0, None, None, None))(candidates, is_box, placed, frames)
  ok = ok & jnp.any(candidates.active, -1)
  chosen = jax.tree.map(lambda x: x[jnp.argmax(ok)], candidates)
  return chosen.replace(active=chosen.active & jnp.any(ok))


def _put(placed: _Bodies, kind: str, parts: _Bodies) -> _Bodies:
  slots = np.asarray(KIND_SLOTS[kind])
  return jax.tree.map(lambda whole, part: whole.at[slots].set(part), placed, parts)


def _place_first_clear(
  uniforms: jax.Array, kind: str, wanted: jax.Array, placed: _Bodies
) -> _Bodies:
  """Draws OBJECT_CANDIDATES candidates of a kind and keeps the first clear one (if wanted)."""
  candidates = jax.vmap(_DRAW[kind])(uniforms)
  chosen = _first_clear(candidates, _IS_BOX[list(KIND_SLOTS[kind])], placed)
  return _put(placed, kind, chosen.replace(active=chosen.active & wanted))


def _uniform_parts(key: jax.Array, shapes: dict[str, tuple[int, ...]]) -> dict[str, jax.Array]:
  """Uniforms of the given shapes from one 1-D random-number call: on CPU each call costs XLA
  compile time, and one of a multi-dimensional shape costs ten times more (seconds)."""
  sizes = [math.prod(shape) for shape in shapes.values()]
  flat = jax.random.uniform(key, (sum(sizes),))
  parts = jnp.split(flat, np.cumsum(sizes)[:-1])
  return {
    name: part.reshape(shape) for (name, shape), part in zip(shapes.items(), parts, strict=True)
  }


_LAYOUT_UNIFORMS = {
  "static_ball": (_WALK_STEPS + 1, 5),
  **{kind: (OBJECT_CANDIDATES, _NUM_UNIFORMS) for kind in PLACEMENT_ORDER},
}


def _place_objects(key: jax.Array, template_index: jax.Array) -> _Bodies:
  """The template's objects for one task: static balls from the walk, then PLACEMENT_ORDER."""
  uniforms = _uniform_parts(key, _LAYOUT_UNIFORMS)
  wanted = jnp.asarray(_TEMPLATE_MASKS)[template_index]
  placed = _Bodies(
    position=jnp.zeros((NUM_SLOTS, 2)),
    angle=jnp.zeros(NUM_SLOTS),
    half=jnp.ones((NUM_SLOTS, 2)),
    active=jnp.zeros(NUM_SLOTS, bool),
  )
  balls = _draw_static_balls(uniforms["static_ball"])
  discs = jnp.full(len(balls.angle), CIRCLE)
  # A ball not clear of every earlier one, or not inside the box, is dropped.
  gap = separations(balls.position, balls.angle, discs, balls.half)
  earlier = np.tril(np.ones((len(discs),) * 2, bool), -1)
  clear = jnp.all((gap >= MIN_GAP) | ~earlier | ~balls.active[None], axis=1)
  inside = wall_penetration(balls.position, balls.angle, discs, balls.half) == 0
  keep = balls.active & clear & inside & wanted[KINDS.index("static_ball")]
  placed = _put(placed, "static_ball", balls.replace(active=keep))
  for kind in PLACEMENT_ORDER:
    placed = _place_first_clear(uniforms[kind], kind, wanted[KINDS.index(kind)], placed)
  return placed


@struct.dataclass
class _Objects:
  """PHYRE's featurized objects (one per body; the jar and the sticks are one each), in scene
  fractions: centre [M, 2], radius (half the diameter) [M], is_ball, eligible (for the red ball's
  anchor: not a bar within 18 degrees above level, PHYRE's `ignore_sticks`), active [M]."""

  centre: jax.Array
  radius: jax.Array
  is_ball: jax.Array
  eligible: jax.Array
  active: jax.Array


def _objects(placed: _Bodies) -> _Objects:
  balls = np.asarray(
    KIND_SLOTS["dynamic_ball_1"] + KIND_SLOTS["dynamic_ball_2"] + KIND_SLOTS["static_ball"]
  )
  bars = np.asarray(
    KIND_SLOTS["static_bar"] + KIND_SLOTS["dynamic_bar"] + KIND_SLOTS["dynamic_standing_bars"]
  )
  jar, sticks = np.asarray(KIND_SLOTS["dynamic_jar"]), KIND_SLOTS["dynamic_standingsticks"][0]
  jar_mass = placed.half[jar, 0] * placed.half[jar, 1]
  jar_centre = jnp.sum(placed.position[jar] * jar_mass[:, None], 0) / jnp.sum(jar_mass)
  jar_width = 2.0 * placed.half[jar[0], 0] / 0.8
  centre = jnp.concatenate(
    [placed.position[balls], placed.position[bars], jar_centre[None], placed.position[sticks][None]]
  )
  radius = jnp.concatenate(
    [
      placed.half[balls, 0],
      0.5 * jnp.hypot(2.0 * placed.half[bars, 0], BAR_THICKNESS),
      0.5 * jnp.hypot(0.9 * jar_width, 1.2 * jar_width)[None],
      0.5 * jnp.hypot(3.0 * placed.half[sticks, 0], BAR_THICKNESS)[None],
    ]
  )
  level = jnp.mod(placed.angle[bars], 2 * jnp.pi) < 0.05 * 2 * jnp.pi
  num = len(balls) + len(bars) + 2
  is_ball = np.arange(num) < len(balls)
  eligible = jnp.concatenate([jnp.ones(len(balls), bool), ~level, jnp.ones(2, bool)])
  active = jnp.concatenate(
    [placed.active[balls], placed.active[bars], placed.active[jar[:1]], placed.active[sticks][None]]
  )
  return _Objects(centre / WORLD_SIZE, radius / WORLD_SIZE, jnp.asarray(is_ball), eligible, active)


def _red_ball_radius_range(objects: _Objects) -> tuple[jax.Array, jax.Array]:
  """The study's range of ball-action radii (scene fractions): half the smallest ball to four
  times the largest, within [0.02, 0.2] (action radii 0.1-1 at its RADIUS_SCALE 5)."""
  balls = objects.is_ball & objects.active
  low = jnp.maximum(jnp.min(jnp.where(balls, 0.5 * objects.radius, jnp.inf)), 0.02)
  high = jnp.minimum(jnp.max(jnp.where(balls, 4.0 * objects.radius, 0.0)), 0.2)
  any_ball = jnp.any(balls)
  return jnp.where(any_ball, low, 0.02), jnp.where(any_ball, high, 0.2)


def _red_ball_action(u: jax.Array, objects: _Objects, radius_range) -> jax.Array:
  """One draw of the study's positioning heuristic: (x, y, radius) in scene fractions.

  A random eligible object (any active one if none is eligible); x within +-0.8 (R + r) of its
  centre; y between the line through its centre tilted by 0.9 dx and the top (p = 0.5) or the
  bottom of the scene, R being the object's radius and r the drawn one.
  """
  eligible = objects.active & objects.eligible
  eligible = jnp.where(jnp.any(eligible), eligible, objects.active)
  rank = jnp.floor(u[0] * jnp.sum(eligible))  # pick the rank-th eligible object
  index = jnp.argmax(eligible & (jnp.cumsum(eligible) > rank))
  (cx, cy), reach = objects.centre[index], objects.radius[index]
  radius = _between(u[1], *radius_range)
  dx = _between(u[2], -0.8, 0.8) * (reach + radius)
  above = u[3] < 0.5
  low = jnp.where(above, cy + 0.9 * dx, reach + 0.05)
  high = jnp.where(above, 1.0 - reach - 0.05, cy - 0.9 * dx)
  return jnp.stack([cx + dx, low + u[4] * (high - low), radius])


def _red_ball_bodies(action: jax.Array) -> _Bodies:
  """PHYRE's ball action: centre (x, y) * (width - 1) pixels, radius 2 + 5 r (width / 8 - 2)."""
  radius = (2.0 + 5.0 * action[2] * (SCENE_PIXELS / 8 - 2)) * PIXEL
  inside_action = jnp.all((action >= 0.0) & (action <= 1.0))
  return _Bodies(
    position=(action[:2] * (SCENE_PIXELS - 1) * PIXEL)[None],
    angle=jnp.zeros(1),
    half=jnp.full((1, 2), radius),
    active=inside_action[None],
  )


def _place_red_ball(key: jax.Array, placed: _Bodies) -> _Bodies:
  """The first clear of RED_BALL_CANDIDATES heuristic draws, else of as many uniform ones."""
  objects = _objects(placed)
  radius_range = _red_ball_radius_range(objects)
  uniforms = _uniform_parts(
    key, {"near": (RED_BALL_CANDIDATES, 5), "any": (RED_BALL_CANDIDATES, 3)}
  )
  heuristic = jax.vmap(_red_ball_action, (0, None, None))(uniforms["near"], objects, radius_range)
  anywhere = uniforms["any"].at[:, 2].set(_between(uniforms["any"][:, 2], *radius_range))
  candidates = jax.vmap(_red_ball_bodies)(jnp.concatenate([heuristic, anywhere]))
  return _put(placed, RED_BALL, _first_clear(candidates, np.zeros(1, bool), placed))


def _layout_key(template: jax.Array, task: jax.Array) -> jax.Array:
  """The key that fixes a task's objects: the same (template, task) always gets the same."""
  index = task * len(TEMPLATE_KINDS) + template - FIRST_TEMPLATE
  return jax.random.fold_in(jax.random.key(_LAYOUT_SEED), index)


@jax.jit
def _place(keys: jax.Array, params: jax.Array) -> BodyState:
  template, task = params[:, 0].astype(jnp.int32), params[:, 1].astype(jnp.int32)

  def one(key, template, task):
    placed = _place_objects(_layout_key(template, task), template - FIRST_TEMPLATE)
    return _place_red_ball(key, placed)

  return _body_state(jax.vmap(one)(keys, template, task), template, task)


def _body_state(bodies: _Bodies, template: jax.Array, task: jax.Array) -> BodyState:
  """The BodyState, at rest, of placed slots (fields [n, NUM_SLOTS, ...]) of examples [n]."""
  n = template.shape[0]

  def slots(values):
    return jnp.broadcast_to(jnp.asarray(values), (n, *np.shape(values)))

  return BodyState(
    position=bodies.position,
    angle=bodies.angle,
    velocity=jnp.zeros((n, NUM_SLOTS, 2)),
    angular_velocity=jnp.zeros((n, NUM_SLOTS)),
    shape=slots(SLOT_SHAPES),
    size=bodies.half,
    color=slots(SLOT_COLORS),
    dynamic=slots(SLOT_DYNAMIC),
    active=bodies.active,
    template=template,
    task=task,
  )
