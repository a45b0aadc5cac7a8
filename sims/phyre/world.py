"""PHYRE's world in the library's units: physical constants, palette, object kinds and the slot
layout every state shares (see sims.phyre)."""

from __future__ import annotations

import math

import jax
import numpy as np
from flax import struct

from sims.core import BOX, CIRCLE, WORLD_SIZE

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
# Sequential-impulse sweeps a step: 10 keep every physics check of tests/phyre_test.py (20 were what
# stock jax2d ran here).
SOLVER_ITERATIONS = 10
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
