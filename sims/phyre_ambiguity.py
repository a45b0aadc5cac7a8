"""The study's visual-ambiguity tasks (section 5.5): PHYRE tasks 20000-20003 on sims.phyre.

    import sims
    from sims import phyre_ambiguity
    scene = sims.make("phyre", templates="ambiguity")     # a PhyreAmbiguity
    params = scene.eval_params("in_template", 11)        # [44, 2]: every 10th task of each
    traj = scene.rollout(scene.place(None, params))
    truth = phyre_ambiguity.outcome(traj.position[:, :, 0], params)   # bool [44]
    names, values = phyre_ambiguity.ambiguity_scan(params)           # what each scan varies

A red ball drops onto two static balls with a small gap (it passes through or is blocked) or
onto one static ball at a slightly varied horizontal offset (it rolls off left or right). Each
template scans one quantity over SCAN_POINTS tasks; task s is scan point s, and the placement is
a function of (template, task) alone (no randomness). As in the study's task scripts
(phyworld combinatorial_data/data/task_scripts/main/task2000x.py) and its generator
(data_generator_ambiguity_v0.py), in scene fractions of PHYRE's 512-pixel unit square (the
10 x 10 world, y up, times 10), with PHYRE's ball action (x, y, r):

- every task: a static floor bar (scale 1, bottom 0) and a gray dynamic ball (scale 0.1) on it at
  left = 0.02; static balls of scale 0.04 (radius 10.5 pixels) at y = 0.3;
- 20000: static balls at x = 0.4 and 0.5; red ball (0.45, 0.46, r), r = linspace(0.20, 0.25);
- 20001: one static ball at x = 0.4; red ball (x, 0.46, 0.2), x = linspace(0.39, 0.41);
- 20002: static balls at x = 0.46 - 0.0005 s and 0.54 + 0.0005 s; red ball (0.5, 0.5, 0.4);
- 20003: one static ball at x = 0.4 + (s - 50) 1e-4; red ball (0.4, 0.5, 0.4).

So nothing is left to choose except two points: the study's 20002 / 20003 scripts have seeds
0-99, and task 100 here extends their scans by one step (all templates have 101 tasks); and the
red ball is not snapped to PHYRE's pixel grid. r is PHYRE's action radius (radius 2 + r (512 / 8
- 2) pixels: 14.4-17.5 for 20000, 26.8 for r = 0.4); sims.phyre's red-ball actions carry
r / RADIUS_SCALE, the study's factor, so these go through its `_red_ball_bodies` as (x, y, r / 5).
PHYRE rounds the ball's radius and truncates its centre to whole pixels, so the study's 101
radii of 20000 were 5 distinct balls and its 101 x of 20001 were 11 positions; here every scan
point is its own ball, like sims.phyre's red balls, and each scan flips at one point.

Slots: the red ball is slot 0, the gray ball "dynamic_ball_1", the floor "static_bar", the static
balls the first one or two "static_ball" slots; the rest are inactive. Physics (`rollout`) and
drawing (`sims.render`) are sims.phyre's, unchanged.

Outcome (`outcome`): from the red ball's positions over frames and the task's static balls, so
that the same rule applies to a red ball parsed from a generated video. It is read where the
red ball first drops below the static balls: two static balls, whether it is between them (it
fell through the gap) or not (it rests on them, or went over one); one static ball, whether it
is left of it.

In jax2d (32 frames) the outcome flips once along each scan, at task FLIPS[template]:
- 20000: small balls pass up to task 25, larger ones rest on the static balls from 26 (radius
  15.2 pixels, a 30.4-pixel ball on a 30.2-pixel gap); the ball stops fitting from task 23 on,
  but jax2d's soft contacts let balls up to 0.15 pixel too wide squeeze through.
- 20001: left up to task 53, right from 54: where the red ball's centre passes the static one's.
- 20002: blocked up to task 65, through from 66: where the gap first exceeds the ball's diameter
  (53.6 pixels). In tasks 2-5 and 10-13 the ball bounces over a static ball (not through).
- 20003: right up to task 42, left from 43: where the static ball's centre passes the red one's.

Public API: PhyreAmbiguity (the scene: `sims.make("phyre", templates="ambiguity")`; splits
"train" and "in_template" both draw the four templates, `eval_params` gives scan points, `pool`
("ambiguity") every task once), AMBIGUITY_TEMPLATES, SCAN_POINTS, SCAN_NAMES, OUTCOME_NAMES,
RADIUS_SCALE, FLIPS, ambiguity_scan, outcome.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from sims.core import WORLD_SIZE, check_choice
from sims.phyre.builders import _ball_radius, _bar_half
from sims.phyre.placement import _body_state, _put, _red_ball_bodies
from sims.phyre.scene import Phyre, _check_template_ids
from sims.phyre.templates import AMBIGUITY
from sims.phyre.world import KIND_SLOTS, NUM_SLOTS, RED_BALL, BodyState, _Bodies

AMBIGUITY_TEMPLATES = (20000, 20001, 20002, 20003)
SCAN_POINTS = 101
_SPLITS = ("train", "in_template")
RADIUS_SCALE = 5.0  # the study's: PHYRE action radius = RADIUS_SCALE * sims.phyre's
# What each template scans (world units), and what its outcome's True means.
SCAN_NAMES = {20000: "red_radius", 20001: "red_offset", 20002: "gap", 20003: "red_offset"}
OUTCOME_NAMES = {20000: "passes", 20001: "left", 20002: "passes", 20003: "left"}
# The first task at which the jax2d outcome differs from task 0's (it keeps the new value to task
# 100), measured with 32-frame rollouts of all 404 tasks (see the module docstring).
FLIPS = {20000: 26, 20001: 54, 20002: 66, 20003: 43}

# Each template's scan, linear in the task s (scene fractions; r is PHYRE's action radius), rows in
# AMBIGUITY_TEMPLATES order: red-ball action (x, y, r) = _ACTION + s * _ACTION_STEP; the static
# balls' centre x = _BALL_X + s * _BALL_STEP (the second one only where _TWO_BALLS).
_ACTION = np.float32([[0.45, 0.46, 0.2], [0.39, 0.46, 0.2], [0.5, 0.5, 0.4], [0.4, 0.5, 0.4]])
_ACTION_STEP = np.float32([[0, 0, 0.0005], [0.0002, 0, 0], [0, 0, 0], [0, 0, 0]])
_BALL_X = np.float32([[0.4, 0.5], [0.4, 0], [0.46, 0.54], [0.4 - 50e-4, 0]])
_BALL_STEP = np.float32([[0, 0], [0, 0], [-0.0005, 0.0005], [1e-4, 0]])
_TWO_BALLS = np.array([True, False, True, False])
_BALL_Y, _BALL_SCALE = 0.3, 0.04
_GRAY_BALL_SCALE, _GRAY_BALL_LEFT = 0.1, 0.02 * WORLD_SIZE
_STATIC_BALLS = np.asarray(KIND_SLOTS["static_ball"])
_RED = KIND_SLOTS[RED_BALL][0]


def _discs(centre: jax.Array, radius: jax.Array, active: jax.Array) -> _Bodies:
  return _Bodies(centre, jnp.zeros(len(centre)), jnp.full((len(centre), 2), radius), active)


def _bodies(template_index: jax.Array, task: jax.Array) -> _Bodies:
  """Every slot of one task (template index into AMBIGUITY_TEMPLATES, task = scan point)."""
  s = task.astype(jnp.float32)
  action = jnp.asarray(_ACTION)[template_index] + s * jnp.asarray(_ACTION_STEP)[template_index]
  ball_x = jnp.asarray(_BALL_X)[template_index] + s * jnp.asarray(_BALL_STEP)[template_index]
  floor_half = _bar_half(jnp.asarray(WORLD_SIZE))  # its centre too: left = bottom = 0
  gray = _ball_radius(_GRAY_BALL_SCALE)
  gray_centre = jnp.stack([_GRAY_BALL_LEFT + gray, 2 * floor_half[1] + gray])
  num_balls = len(_STATIC_BALLS)
  centres = jnp.stack([ball_x, jnp.full(2, _BALL_Y)], -1) * WORLD_SIZE
  parts = {
    "static_bar": _Bodies(floor_half[None], jnp.zeros(1), floor_half[None], jnp.ones(1, bool)),
    "dynamic_ball_1": _discs(gray_centre[None], gray, jnp.ones(1, bool)),
    "static_ball": _discs(
      jnp.zeros((num_balls, 2)).at[:2].set(centres),
      _ball_radius(_BALL_SCALE),
      jnp.arange(num_balls) < 1 + jnp.asarray(_TWO_BALLS)[template_index],
    ),
    RED_BALL: _red_ball_bodies(action.at[2].divide(RADIUS_SCALE)),
  }
  placed = _Bodies(
    position=jnp.zeros((NUM_SLOTS, 2)),
    angle=jnp.zeros(NUM_SLOTS),
    half=jnp.ones((NUM_SLOTS, 2)),
    active=jnp.zeros(NUM_SLOTS, bool),
  )
  for kind, part in parts.items():
    placed = _put(placed, kind, part)
  return placed


@jax.jit
def _place(params: jax.Array) -> BodyState:
  template, task = params[:, 0].astype(jnp.int32), params[:, 1].astype(jnp.int32)
  index = template - AMBIGUITY_TEMPLATES[0]
  return _body_state(jax.vmap(_bodies)(index, task), template, task)


def ambiguity_scan(params: jax.Array | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """What each (template, task) of params [n, 2] scans: its SCAN_NAMES [n] and value [n] in world
  units: the red ball's radius (20000), the gap between the static balls' surfaces (20002), or
  the red ball's centre x minus the static ball's (20001, 20003)."""
  params = np.asarray(params, np.int32)
  state = _place(jnp.asarray(params))
  position, radius = np.asarray(state.position), np.asarray(state.size[..., 0])
  first, second = _STATIC_BALLS[:2]
  values = {
    "red_radius": radius[:, _RED],
    "gap": position[:, second, 0] - position[:, first, 0] - radius[:, first] - radius[:, second],
    "red_offset": position[:, _RED, 0] - position[:, first, 0],
  }
  names = np.asarray([SCAN_NAMES[int(t)] for t in params[:, 0]])
  return names, np.select([names == name for name in values], list(values.values()))


def outcome(red_position: jax.Array, params: jax.Array | np.ndarray) -> jax.Array:
  """Each task's outcome, bool [n] (OUTCOME_NAMES), from the red ball's centre over frames
  [n, T, 2] (world units: simulated, or parsed from a video, NaN where missing) and params [n, 2].

  It is read at the first frame where the red ball's centre is below the static balls (below
  their lowest points; the last frame if it never is): two static balls, True when it is between
  their centres then (it fell through the gap; False when it rests on them, its centre within a
  few hundredths of their centres' height near the flip, or went over one); one static ball, True
  when it is left of the ball's centre (it rolled off to the left).
  """
  state = _place(jnp.asarray(params))
  first, second = _STATIC_BALLS[:2]
  red_position = jnp.asarray(red_position)
  bottom = state.position[:, first, 1] - state.size[:, first, 0]
  below = red_position[..., 1] < bottom[:, None]
  frame = jnp.where(jnp.any(below, 1), jnp.argmax(below, 1), red_position.shape[1] - 1)
  x = jnp.take_along_axis(red_position[..., 0], frame[:, None], 1)[:, 0]
  left = x < state.position[:, first, 0]
  passes = jnp.any(below, 1) & ~left & (x < state.position[:, second, 0])
  return jnp.where(state.active[:, second], passes, left)


class PhyreAmbiguity(Phyre):
  """The visual-ambiguity tasks as a Phyre scene (see the module docstring).

  Options: `templates` is "ambiguity" (or None: all four templates) or a sequence of their ids;
  `tasks_per_template` can only be SCAN_POINTS. Splits "train" and "in_template" draw the same
  tasks (the placement has no randomness; `place` ignores its keys); there is no
  "out_of_template". The pool ("ambiguity") holds every task once.
  """

  dataset_sizes = (AMBIGUITY,)

  def __init__(
    self,
    *,
    templates: str | Sequence[int] | None = AMBIGUITY,
    tasks_per_template: int = SCAN_POINTS,
  ):
    if tasks_per_template != SCAN_POINTS:
      raise ValueError(
        f"tasks_per_template of the ambiguity tasks is {SCAN_POINTS} (one per scan point), "
        f"got {tasks_per_template}"
      )
    self.tasks_per_template = SCAN_POINTS
    self.default_templates = self._resolve(AMBIGUITY_TEMPLATES, templates)

  @property
  def splits(self) -> tuple[str, ...]:
    return _SPLITS

  def templates(self, split: str) -> tuple[int, ...]:
    """The template ids a split draws from by default."""
    self.check_split(split)
    return self.default_templates

  @staticmethod
  def _resolve(allowed: tuple[int, ...], templates: str | Sequence[int] | None) -> tuple[int, ...]:
    if templates is None:
      return allowed
    if isinstance(templates, str):
      check_choice("template set of the ambiguity scene", templates, (AMBIGUITY,))
      return allowed
    return _check_template_ids(templates, allowed, "ambiguity tasks")

  def _split_templates(self, split: str, templates: str | Sequence[int] | None) -> tuple[int, ...]:
    self.check_split(split)
    return (
      self.templates(split) if templates is None else self._resolve(AMBIGUITY_TEMPLATES, templates)
    )

  def place(self, keys: jax.Array | None, params: jax.Array) -> BodyState:
    """Initial states for [n, 2] (template, task) params; `keys` is unused (no randomness)."""
    del keys
    return _place(jnp.asarray(params))

  def pool_params(self, dataset_size: str, seed: int = 0) -> np.ndarray:
    """Every (template, task) pair once, [templates * SCAN_POINTS, 2] int32; `seed` is unused."""
    del dataset_size, seed
    return self.eval_params(_SPLITS[0], SCAN_POINTS)

  def eval_params(self, split: str, points: int = 8) -> np.ndarray:
    """`points` evenly spaced tasks of each of the split's templates, both ends included (all of
    them for points >= SCAN_POINTS), [templates * min(points, SCAN_POINTS), 2] int32."""
    if points < 1:
      raise ValueError(f"points must be at least 1, got {points}")
    templates = np.asarray(self.templates(split), np.int32)
    tasks = np.round(np.linspace(0, SCAN_POINTS - 1, min(points, SCAN_POINTS))).astype(np.int32)
    return np.stack(np.meshgrid(templates, tasks, indexing="ij"), -1).reshape(-1, 2)
