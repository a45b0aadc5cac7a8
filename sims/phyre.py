"""The study's combinatorial world: PHYRE-like scenes of 4 of 8 object kinds, on jax2d.

    import sims
    scene = sims.make("phyre")                  # or sims.make("phyre", templates="6")
    state0 = scene.sample(key, 8, split="train")  # BodyState; "in_template", "out_of_template"
    traj = scene.rollout(state0, num_frames=32)   # sims.BodyTrajectory, frame k at k / 3 s
    frames = sims.render(traj, resolution=256)    # [8, 32, 256, 256, 3] in [0, 1]

The study ("How Far is Video Generation from World Model", section 5) built 70 templates, each
a combination of 4 of 8 object kinds (KINDS) plus a red ball, in a fork of PHYRE with 512 x 512
pixel scenes; templates 10000-10059 train, 10060-10069 are held out. This module re-creates it:

- Templates: TEMPLATE_KINDS maps each id to its kinds, ordered exactly as the study's generator
  orders them (`random.Random(4).shuffle` of the C(8, 4) combinations). TEMPLATE_SUBSETS holds
  its 6-, 30- and 60-template training sets.
- Slots: every kind owns fixed slots of the state (KIND_SLOTS; the red ball is slot 0), so shapes
  are static under jit / vmap; an example activates the slots of its template's kinds. Slots 0-9
  are discs, 10-20 boxes: the jar is three welded boxes (base and two walls) and the standing
  sticks two welded crossing boxes. Static bodies are black, dynamic ones gray, the red ball red.
- Units: PHYRE's unit square is the library's 10 x 10 world (y up); one scene pixel is PIXEL
  world units. Physics follows PHYRE's Box2D settings scaled to that world: 60 Hz steps, gravity
  9.8 m/s^2 at PHYRE's 6 pixels per metre (GRAVITY world units / s^2), friction 0.5,
  restitution 0.2, angular damping 0.01, one density for every body, walls around the square.
  Frames are PHYRE's: one every 20 steps (FRAME_DT = 1/3 s), frame 0 being the initial state
  (PHYRE records its first frame after one step).
- Engine: jax2d (impulses, no continuous collision, Baumgarte position correction in the
  velocities) differs from Box2D. SOLVER_ITERATIONS = 20 (Box2D: 15 velocity + 20 position
  iterations) and BAUMGARTE = 0.1 (jax2d's default 0.2) keep stacked bodies from bouncing out
  with energy they never had; still, about one scene in a hundred gains a few per cent of its
  energy for a frame in a squeeze. Contacts are soft: bodies overlap by up to ~0.05 world units
  while resting and briefly by up to ~0.1 on impact. Welds (jar, sticks) are jax2d's fixed
  joints, rigid to ~0.02 world units.
- Tasks and trials: as in PHYRE, a template plus a task index fixes the objects (placed from a
  key derived from both), and each trial adds a red ball from its own key. Params per example
  are (template, task) int32; the study used 100 tasks per template and 990 training trials
  per task (`pool`), and drew in-template evaluation videos from further trials of the same
  tasks: `sample(key, n, "in_template")` with keys other than the training ones.
- Placement follows the study's builders (ranges of component_utils.py, PHYRE's shape geometry)
  with one change: nothing may overlap at t = 0. Each object is drawn up to OBJECT_CANDIDATES
  times and the first draw clear of everything placed before (by MIN_GAP, exact disc / box
  tests) is kept; an object with no clear draw is left out (its slots inactive), which the tests
  show does not happen in practice. Objects go in PLACEMENT_ORDER (static first). The red ball
  follows the study's action heuristic (next to a random object, radius from the scene's balls)
  with up to RED_BALL_CANDIDATES draws, then as many uniform ones, like PHYRE's fallback.

Public API: Phyre (the scene; `sample(key, n, split, templates=None)`, `place`, `rollout`,
`templates(split)`, `pool`, `eval_params`, `params_of`), BodyState, KINDS, KIND_SLOTS (slots of
each kind, "red_ball" included), SLOT_SHAPES / SLOT_DYNAMIC / SLOT_COLORS, TEMPLATE_KINDS,
TEMPLATE_SUBSETS, TRAIN_TEMPLATES, HELD_OUT_TEMPLATES, SPLITS, the colours RED / GRAY / BLACK,
separations and wall_penetration (exact overlap depths), mass_and_inertia, mechanical_energy,
and the physical constants below. Trajectories are `sims.BodyTrajectory`, drawn by
`sims.render`.
"""

from __future__ import annotations

import functools
import itertools
import math
import random
import types
import zlib
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from jax2d import collision as jax2d_collision
from jax2d import engine as jax2d_engine
from jax2d import joint as jax2d_joint
from jax2d.sim_state import SimParams, StaticSimParams

from sims.core import (
  BOX,
  CIRCLE,
  NUM_FRAMES,
  WORLD_SIZE,
  BodyTrajectory,
  Pool,
  Scene,
  check_choice,
)

# PHYRE's scene and Box2D settings, in world units (10 world units = 512 scene pixels).
SCENE_PIXELS = 512
PIXEL = WORLD_SIZE / SCENE_PIXELS
PIXELS_PER_METRE = 6.0
GRAVITY = 9.8 * PIXELS_PER_METRE * PIXEL
PHYSICS_HZ = 60
STEPS_PER_FRAME = 20
FRAME_DT = STEPS_PER_FRAME / PHYSICS_HZ
FRICTION = 0.5
RESTITUTION = 0.2
ANGULAR_DAMPING = 0.01
DENSITY = 1.0
SOLVER_ITERATIONS = 20
BAUMGARTE = 0.1
BAR_THICKNESS = WORLD_SIZE / 50
STICK_ANGLE = math.radians(77.5)

# PHYRE's palette: the user's ball, dynamic and static bodies (on a white background).
RED = (0xF3 / 255, 0x4F / 255, 0x46 / 255)
GRAY = (0xB9 / 255, 0xCA / 255, 0xD2 / 255)
BLACK = (0.0, 0.0, 0.0)

KINDS = (
  "dynamic_ball_1",
  "dynamic_ball_2",
  "static_ball",
  "dynamic_bar",
  "dynamic_standing_bars",
  "static_bar",
  "dynamic_jar",
  "dynamic_standingsticks",
)
RED_BALL = "red_ball"
# Slots in simulation order: discs first, then boxes with the static bar first.
_SLOT_COUNTS = (
  (RED_BALL, 1),
  ("dynamic_ball_1", 1),
  ("dynamic_ball_2", 1),
  ("static_ball", 7),  # the chain's start and up to 6 more balls
  ("static_bar", 1),
  ("dynamic_bar", 1),
  ("dynamic_standing_bars", 4),
  ("dynamic_jar", 3),  # base, left wall, right wall
  ("dynamic_standingsticks", 2),
)
_SLOT_STARTS = np.cumsum([0] + [count for _, count in _SLOT_COUNTS])[:-1]
KIND_SLOTS: dict[str, tuple[int, ...]] = {
  kind: tuple(range(start, start + count))
  for (kind, count), start in zip(_SLOT_COUNTS, _SLOT_STARTS, strict=True)
}
_SLOT_KINDS = [kind for kind, count in _SLOT_COUNTS for _ in range(count)]
NUM_SLOTS = len(_SLOT_KINDS)
NUM_DISCS = 10
SLOT_SHAPES = np.array([CIRCLE] * NUM_DISCS + [BOX] * (NUM_SLOTS - NUM_DISCS), np.int32)
SLOT_DYNAMIC = np.array([kind not in ("static_ball", "static_bar") for kind in _SLOT_KINDS])
SLOT_COLORS = np.array(
  [
    RED if kind == RED_BALL else GRAY if dynamic else BLACK
    for kind, dynamic in zip(_SLOT_KINDS, SLOT_DYNAMIC, strict=True)
  ],
  np.float32,
)

# Templates: the study's generator shuffles the viable 4-kind combinations with Random(4).
FIRST_TEMPLATE = 10000


def _study_combinations() -> list[tuple[str, ...]]:
  combinations = [c for c in itertools.combinations(KINDS, 4) if any("dynamic" in k for k in c)]
  random.Random(4).shuffle(combinations)
  return combinations


TEMPLATE_KINDS: dict[int, tuple[str, ...]] = {
  FIRST_TEMPLATE + i: kinds for i, kinds in enumerate(_study_combinations())
}
TRAIN_TEMPLATES = tuple(range(10000, 10060))
HELD_OUT_TEMPLATES = tuple(range(10060, 10070))
TEMPLATE_SUBSETS: dict[str, tuple[int, ...]] = {
  "6": (10003, 10005, 10016, 10023, 10024, 10053),
  "30": tuple(range(10000, 10060, 2)),
  "60": TRAIN_TEMPLATES,
}
SPLITS = ("train", "in_template", "out_of_template")
AMBIGUITY = "ambiguity"  # the visual-ambiguity tasks 20000-20003 (sims.phyre_ambiguity)
TEMPLATE_SETS = (*TEMPLATE_SUBSETS, AMBIGUITY)
TASKS_PER_TEMPLATE = 100
TRIALS_PER_TASK = 990
_TEMPLATE_MASKS = np.array(
  [[kind in TEMPLATE_KINDS[t] for kind in KINDS] for t in sorted(TEMPLATE_KINDS)], bool
)

# Placement.
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
_WALK_STEPS = 48
_LAYOUT_SEED = 20241104


@struct.dataclass
class BodyState:
  """Batched initial state of the NUM_SLOTS body slots; every field has a leading batch axis n.

  position, velocity: [n, K, 2]; angle, angular_velocity: [n, K]; shape: [n, K] (CIRCLE / BOX);
  size: [n, K, 2] (radius, radius) or half extents; color: [n, K, 3]; dynamic, active: [n, K]
  bool; template, task: [n] int32, the example's parameters.
  """

  position: jax.Array
  angle: jax.Array
  velocity: jax.Array
  angular_velocity: jax.Array
  shape: jax.Array
  size: jax.Array
  color: jax.Array
  dynamic: jax.Array
  active: jax.Array
  template: jax.Array
  task: jax.Array


@struct.dataclass
class _Bodies:
  """Poses of some slots of one example: position [m, 2], angle [m], half [m, 2], active [m]."""

  position: jax.Array
  angle: jax.Array
  half: jax.Array
  active: jax.Array


# ---------------------------------------------------------------------------------------------
# Geometry: exact separations of discs and rotated boxes.


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


# ---------------------------------------------------------------------------------------------
# The study's object builders (component_utils.py) on PHYRE's shapes, in world units.


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


# ---------------------------------------------------------------------------------------------
# Placement without overlaps.


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


# ---------------------------------------------------------------------------------------------
# Physics on jax2d.


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


def _engine() -> jax2d_engine.PhysicsEngine:
  """jax2d's engine (its constructor runs eagerly, even inside a trace; ~0.4 s).

  Built afresh for every trace rather than cached: the arrays it holds take the device context
  they are made in (inside `shard_map`, a manual mesh), which another trace must not inherit.
  """
  with jax.ensure_compile_time_eval():
    return jax2d_engine.PhysicsEngine(_STATIC_SIM_PARAMS)


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


def _step(engine: jax2d_engine.PhysicsEngine, sim):
  """One 1 / PHYSICS_HZ step, then Box2D's angular damping."""
  actions = jnp.zeros(_STATIC_SIM_PARAMS.num_joints + _STATIC_SIM_PARAMS.num_thrusters)
  sim = engine.step(sim, _SIM_PARAMS, actions)[0]
  damping = 1.0 / (1.0 + _SIM_PARAMS.dt * ANGULAR_DAMPING)
  return sim.replace(
    polygon=sim.polygon.replace(angular_velocity=sim.polygon.angular_velocity * damping),
    circle=sim.circle.replace(angular_velocity=sim.circle.angular_velocity * damping),
  )


def _read(sim) -> tuple[jax.Array, ...]:
  """Slot position [K, 2], angle [K], velocity [K, 2] and angular velocity [K] of a SimState."""

  def both(field):
    return jnp.concatenate([getattr(sim.circle, field), getattr(sim.polygon, field)[_NUM_WALLS:]])

  return tuple(both(f) for f in ("position", "rotation", "velocity", "angular_velocity"))


@functools.partial(jax.jit, static_argnames="num_frames")
def _simulate(state: BodyState, num_frames: int) -> BodyTrajectory:
  engine = _engine()

  def one(example: BodyState):
    def frame(sim, _):
      sim = jax.lax.fori_loop(0, STEPS_PER_FRAME, lambda _, s: _step(engine, s), sim)
      return sim, _read(sim)

    sim = _to_sim(example)
    _, later = jax.lax.scan(frame, sim, None, length=num_frames - 1)
    return jax.tree.map(lambda first, rest: jnp.concatenate([first[None], rest]), _read(sim), later)

  position, angle, velocity, angular_velocity = jax.vmap(one)(state)
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


# ---------------------------------------------------------------------------------------------
# The scene.


def _check_template_ids(ids: Sequence[int], allowed: Sequence[int], what: str) -> tuple[int, ...]:
  ids = tuple(int(t) for t in ids)
  bad = [t for t in ids if t not in allowed]
  if bad or not ids:
    raise ValueError(
      f"templates {list(bad) or 'empty'} are not {what}; valid: {min(allowed)}-{max(allowed)}"
    )
  return ids


class Phyre(Scene):
  """The study's combinatorial scenes (see the module docstring).

  Options: `templates` sets the templates that "train" and "in_template" draw from by default:
  None (all 60 training templates), one of the study's subsets "6" / "30" / "60", or a
  sequence of training template ids. `tasks_per_template` is how many object layouts (PHYRE
  tasks) each template has; the study's 100 by default. `templates="ambiguity"` makes the
  study's visual-ambiguity scene instead, a subclass (sims.phyre_ambiguity.PhyreAmbiguity).
  """

  name = "phyre"
  num_objects = NUM_SLOTS
  dataset_sizes = tuple(TEMPLATE_SUBSETS)
  kind_slots = KIND_SLOTS
  frame_dt = FRAME_DT

  def __new__(cls, *, templates: str | Sequence[int] | None = None, **options) -> Phyre:
    """A PhyreAmbiguity for `templates="ambiguity"` (imported here: its module imports this)."""
    del options  # __init__'s
    named = isinstance(templates, str)
    if named and check_choice("template set", templates, TEMPLATE_SETS) == AMBIGUITY:
      from sims.phyre_ambiguity import PhyreAmbiguity

      cls = PhyreAmbiguity
    return super().__new__(cls)

  def __init__(
    self,
    *,
    templates: str | Sequence[int] | None = None,
    tasks_per_template: int = TASKS_PER_TEMPLATE,
  ):
    if tasks_per_template < 1:
      raise ValueError(f"tasks_per_template must be at least 1, got {tasks_per_template}")
    self.tasks_per_template = int(tasks_per_template)
    self.default_templates = self._resolve(TRAIN_TEMPLATES, templates)

  @property
  def param_names(self) -> tuple[str, ...]:
    return ("template", "task")

  @property
  def splits(self) -> tuple[str, ...]:
    return SPLITS

  @property
  def train_region(self) -> None:
    """Template sets have no parameter regions."""
    return None

  def templates(self, split: str) -> tuple[int, ...]:
    """The template ids a split draws from by default."""
    if self.check_split(split) == "out_of_template":
      return HELD_OUT_TEMPLATES
    return self.default_templates

  @staticmethod
  def _resolve(allowed: tuple[int, ...], templates: str | Sequence[int] | None) -> tuple[int, ...]:
    if templates is None:
      return allowed
    if isinstance(templates, str):
      subset = TEMPLATE_SUBSETS[check_choice("template subset", templates, tuple(TEMPLATE_SUBSETS))]
      return _check_template_ids(subset, allowed, "in this split")
    return _check_template_ids(templates, allowed, "in this split")

  def _split_templates(self, split: str, templates: str | Sequence[int] | None) -> tuple[int, ...]:
    if templates is None:
      return self.templates(split)
    allowed = (
      HELD_OUT_TEMPLATES if self.check_split(split) == "out_of_template" else TRAIN_TEMPLATES
    )
    return self._resolve(allowed, templates)

  def sample_params(
    self, key: jax.Array, n: int, split: str, templates: str | Sequence[int] | None = None
  ) -> jax.Array:
    """[n, 2] int32 (template, task): a template of the split (or of `templates`) and a task,
    each uniform."""
    ids = jnp.asarray(self._split_templates(split, templates), jnp.int32)
    u = _uniform_parts(key, {"template": (n,), "task": (n,)})
    template = ids[jnp.floor(u["template"] * len(ids)).astype(jnp.int32)]
    task = jnp.floor(u["task"] * self.tasks_per_template).astype(jnp.int32)
    return jnp.stack([template, task], -1)

  def sample(
    self,
    key: jax.Array,
    n: int,
    split: str | Pool = "train",
    templates: str | Sequence[int] | None = None,
  ) -> BodyState:
    """n initial states from a split (optionally restricted to `templates`) or a Pool.

    Each split draws its own stream, so "train" and "in_template" with one key differ.
    """
    if isinstance(split, Pool):
      if templates is not None:
        raise ValueError("templates cannot be given with a Pool (its params fix the templates)")
      return super().sample(key, n, split)
    keys = jax.random.split(jax.random.fold_in(key, zlib.crc32(split.encode())), n + 1)
    return self.place(keys[1:], self.sample_params(keys[0], n, split, templates))

  def place(self, keys: jax.Array, params: jax.Array) -> BodyState:
    """Initial states for [n, 2] (template, task) params: the task's objects, and a red ball
    from each example's key."""
    return _place(keys, jnp.asarray(params))

  def rollout(self, state0: BodyState, num_frames: int = NUM_FRAMES) -> BodyTrajectory:
    """Simulates `num_frames` frames FRAME_DT apart (STEPS_PER_FRAME jax2d steps each)."""
    return _simulate(state0, num_frames)

  def pool_params(self, dataset_size: str, seed: int = 0) -> np.ndarray:
    """The study's training set for a template subset: every (template, task) pair of the
    subset, repeated for TRIALS_PER_TASK red-ball trials, [N, 2] int32. `seed` is unused: the
    pool's key draws the trials."""
    del seed
    templates = np.asarray(TEMPLATE_SUBSETS[dataset_size], np.int32)
    tasks = np.arange(self.tasks_per_template, dtype=np.int32)
    pairs = np.stack(np.meshgrid(templates, tasks, indexing="ij"), -1).reshape(-1, 2)
    return np.repeat(pairs, TRIALS_PER_TASK, axis=0)

  def params_of(self, state: BodyState) -> jax.Array:
    return jnp.stack([state.template, state.task], -1)

  def eval_params(self, split: str, points: int = 8) -> np.ndarray:
    """Tasks 0..points-1 of each of the split's templates, [templates * points, 2] int32."""
    templates = np.asarray(self.templates(split), np.int32)
    tasks = np.arange(points, dtype=np.int32)
    return np.stack(np.meshgrid(templates, tasks, indexing="ij"), -1).reshape(-1, 2)
