"""The study's composition scenes (section 5.4): events seen apart in training, together at test.

    scene = sims.make("composition", kind="temporal", num_frames=32)
    state0 = scene.sample(key, 8, split="train")   # CompositionState; splits "train", "test"
    frames = sims.render(scene.rollout(state0, num_frames=32), resolution=128)

Objects: a red ball (radius1, speed1) and a blue object (radius2, speed2), both moving
horizontally, and a static black wall on the right: centre x = WALL_X, half thickness
WALL_HALF_WIDTH (its face at WALL_FACE = 8.7; 2 px wide at 32 px), full height. The physics is
exact (`sims.walls`). Trajectories are `sims.BodyTrajectory` with slots (red, blue, wall); an
absent object or wall is an inactive slot.

Kinds (`kind`), with the event of each example in the parameter column "event":

- "spatial": a red ball and a blue square in two lanes (heights at least radius1 + radius2 +
  LANE_GAP apart, so they never meet). Train, half each: event 0, the square moves left
  (uniform motion) while the ball rests; event 1, the ball moves right and bounces off the wall
  while the square rests. Test (event 2): both move, the square left and the ball into the wall.
- "temporal": a red and a blue ball. Train, half each: event 0, the red ball hits the blue ball
  at rest at one height, with no wall (the collision scene's placement with speed2 = 0); event 1,
  the red ball bounces off the wall while the blue ball rests in another lane. Test (event 2):
  the red ball hits the blue ball near the wall (at one height, as in the collision scene), the
  blue ball rebounds off the wall and then meets the red ball again (possibly after the clip)
  unless it is 3 or more times heavier.
- "temporal_no_red": as "temporal", but event 1 has no red ball: the blue ball alone moves right
  and bounces off the wall (the study's failure case: its model trained so sometimes lost the
  red ball after the collision at test).

The blue ball starts at rest in every temporal video (except that bounce), so it always moves
right after the contact and the test differs from training only in composing the events.

Parameters (PARAM_NAMES): event, radius1, radius2, speed1, speed2. Radii are drawn from RADIUS
= [0.7, 1.4] (the study's uniform-motion range), speeds from SPEED = [1, 4]; a resting object
has speed 0 and an absent one radius 0 (EVENT_USES lists the columns each event uses). "train"
is exactly half event 0 and half event 1 (for even n).

Placement follows the study's collision rule for 32 frames scaled to the clip
(`sims.scaled_frames`): every event happens at least 8 frames of 32 after the start and at
least 8 before the end (2 and 2 of 8 frames). A ball bouncing alone hits the wall at a time drawn
in that window and starts in view; at the temporal test the contact and the bounce both fall in
it, at least one frame apart, with both balls starting in view. Where no such time exists
(large, fast balls) the earliest one is used and a ball may start partly out of view. A moving
square starts left of the wall and stays in view for 24 frames of 32 where it can (the
uniform-motion rule). Resting objects lie anywhere left of the wall in their lane.

Public API: Composition (the scene), CompositionState, KINDS, SPLITS, PARAM_NAMES, EVENTS (event
names per kind), EVENT_USES, RADIUS, SPEED, WALL_X, WALL_HALF_WIDTH, WALL_FACE, LANE_GAP,
GRID_SIZES.
"""

from __future__ import annotations

import zlib

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from sims import walls
from sims.collision import STUDY_POST_FRAMES, STUDY_PRE_FRAMES, Collision
from sims.core import (
  BLUE,
  CIRCLE,
  FRAME_DT,
  NUM_FRAMES,
  RED,
  SQUARE,
  BodyTrajectory,
  Scene,
  check_choice,
  scaled_frames,
)
from sims.params import linspace_grid
from sims.single_ball import STUDY_VISIBLE_FRAMES

KINDS = ("spatial", "temporal", "temporal_no_red")
SPLITS = ("train", "test")
PARAM_NAMES = ("event", "radius1", "radius2", "speed1", "speed2")
EVENTS = {
  "spatial": ("square_moves", "ball_bounces", "both"),
  "temporal": ("collision", "bounce", "collision_then_bounce"),
  "temporal_no_red": ("collision", "blue_bounce", "collision_then_bounce"),
}
# Which of (radius1, radius2, speed1, speed2) each event (0, 1, 2) uses; the others are 0.
EVENT_USES = {
  "spatial": ((1, 1, 0, 1), (1, 1, 1, 0), (1, 1, 1, 1)),
  "temporal": ((1, 1, 1, 0), (1, 1, 1, 0), (1, 1, 1, 0)),
  "temporal_no_red": ((1, 1, 1, 0), (0, 1, 0, 1), (1, 1, 1, 0)),
}
RADIUS = (0.7, 1.4)
SPEED = (1.0, 4.0)
WALL_X = 9.0
WALL_HALF_WIDTH = 0.3
WALL_FACE = WALL_X - WALL_HALF_WIDTH
LANE_GAP = 0.5
# Dataset-size level -> (radii, speeds) per used column; an event with one radius column takes
# radii**2 values of it, so each training event has radii**2 * speeds entries.
GRID_SIZES = {"30K": (10, 150), "300K": (25, 240)}


@struct.dataclass
class CompositionState(walls.WallState):
  """A WallState of slots (red, blue) and one wall, plus event [n] int32 (see EVENTS)."""

  event: jax.Array


class Composition(Scene):
  """The study's spatial and temporal composition scenes (see the module docstring).

  Options: `kind` (KINDS) and `num_frames`, the clip length that placement times the events in
  (at least 4 frames).
  """

  name = "composition"
  num_objects = 3
  dataset_sizes = tuple(GRID_SIZES)
  fits_clip = True

  def __init__(self, *, kind: str = "spatial", num_frames: int = NUM_FRAMES):
    self.kind = check_choice("kind for scene 'composition'", kind, KINDS)
    pre = scaled_frames(STUDY_PRE_FRAMES, num_frames)
    post = scaled_frames(STUDY_POST_FRAMES, num_frames)
    if pre + post > num_frames - 2:
      raise ValueError(f"num_frames={num_frames} is too short for composition; valid: >= 4")
    self.window = (pre * FRAME_DT, (num_frames - 1 - post) * FRAME_DT)
    self.visible_time = scaled_frames(STUDY_VISIBLE_FRAMES, num_frames) * FRAME_DT
    self.collision = Collision(num_frames=num_frames)
    self.uses = jnp.asarray(EVENT_USES[self.kind], jnp.float32)

  @property
  def param_names(self) -> tuple[str, ...]:
    return PARAM_NAMES

  @property
  def splits(self) -> tuple[str, ...]:
    return SPLITS

  @property
  def train_region(self) -> None:
    """The events are not a box region: pools keep every entry."""
    return None

  def sample_params(self, key: jax.Array, n: int, split: str) -> jax.Array:
    """[n, 5] parameters: "train" is exactly half event 0 and half event 1 (n even), "test" is
    event 2; radii and speeds uniform in RADIUS and SPEED, 0 where the event does not use them."""
    split = self.check_split(split)
    event_key, value_key = jax.random.split(jax.random.fold_in(key, zlib.crc32(split.encode())))
    if split == "train":
      event = jax.random.permutation(event_key, jnp.arange(n) % 2)
    else:
      event = jnp.full((n,), 2)
    lo = jnp.asarray([RADIUS[0], RADIUS[0], SPEED[0], SPEED[0]])
    hi = jnp.asarray([RADIUS[1], RADIUS[1], SPEED[1], SPEED[1]])
    values = lo + jax.random.uniform(value_key, (n, 4)) * (hi - lo)
    return jnp.concatenate([event[:, None], values * self.uses[event]], 1).astype(jnp.float32)

  def place(self, keys: jax.Array, params: jax.Array) -> CompositionState:
    """Initial states of [n, 5] parameters (columns an event does not use are ignored)."""
    event = jnp.round(params[:, 0]).astype(jnp.int32)
    r1, r2, v1, v2 = jnp.moveaxis(params[:, 1:] * self.uses[event], 1, 0)
    u = jax.vmap(lambda k: jax.random.uniform(jax.random.fold_in(k, 1), (5,)))(keys)
    lanes = _two_lanes(u[:, :3], r1, r2)
    zero, always = jnp.zeros_like(r1), jnp.ones_like(event, bool)
    if self.kind == "spatial":
      red_x = jnp.where(event == 0, _rest_x(r1, u[:, 3]), self._bounce_start(r1, v1, u[:, 3]))
      blue_x = jnp.where(event == 1, _rest_x(r2, u[:, 4]), self._square_start(r2, v2, u[:, 4]))
      position = _stack_xy([red_x, blue_x], lanes)
      red_active, wall_active, blue_shape, blue_vx = always, always, SQUARE, -v2
    else:
      collision = self.collision.place(keys, jnp.stack([r1, r2, v1, zero], -1))
      height = collision.position[:, 0, 1]
      if self.kind == "temporal":
        bounce = _stack_xy([self._bounce_start(r1, v1, u[:, 3]), _rest_x(r2, u[:, 4])], lanes)
        red_active = always
      else:
        bounce = _stack_xy([zero, self._bounce_start(r2, v2, u[:, 3])], [zero, height])
        red_active = event != 1
      test = _stack_xy(self._test_start(r1, r2, v1, u[:, 3:5]), [height, height])
      first, second = (event[:, None, None] == e for e in (0, 1))
      position = jnp.where(first, collision.position, jnp.where(second, bounce, test))
      wall_active, blue_shape, blue_vx = event != 0, CIRCLE, v2
    n = params.shape[0]
    return CompositionState(
      position=position,
      velocity=jnp.stack([jnp.stack([v1, zero], -1), jnp.stack([blue_vx, zero], -1)], 1),
      radius=jnp.stack([r1, r2], -1),
      color=jnp.broadcast_to(jnp.asarray([RED, BLUE], jnp.float32), (n, 2, 3)),
      shape=jnp.broadcast_to(jnp.asarray([CIRCLE, blue_shape], jnp.int32), (n, 2)),
      active=jnp.stack([red_active, jnp.ones_like(red_active)], -1),
      wall_x=jnp.full((n, 1), WALL_X),
      wall_half_width=jnp.full((n, 1), WALL_HALF_WIDTH),
      wall_active=wall_active[:, None],
      event=event,
    )

  def _bounce_start(self, radius: jax.Array, speed: jax.Array, u: jax.Array) -> jax.Array:
    """Start x of an object moving right into the wall at a time in the window, in view."""
    earliest, latest = self.window
    latest = jnp.minimum(latest, (WALL_FACE - 2.0 * radius) / jnp.maximum(speed, 1e-6))
    t_bounce = jnp.where(latest < earliest, earliest, earliest + u * (latest - earliest))
    return WALL_FACE - radius - speed * t_bounce

  def _square_start(self, radius: jax.Array, speed: jax.Array, u: jax.Array) -> jax.Array:
    """Start x of a square moving left: in view for `visible_time` where it fits."""
    hi = WALL_FACE - radius
    lo = jnp.minimum(hi, radius + speed * self.visible_time)
    return lo + u * (hi - lo)

  def _test_start(
    self, r1: jax.Array, r2: jax.Array, v1: jax.Array, u: jax.Array
  ) -> tuple[jax.Array, jax.Array]:
    """Start x of the red and blue balls of the temporal test: the red ball hits the resting blue
    ball at t_contact and the blue ball reaches the wall `gap` later, both in the window and at
    least a frame apart."""
    earliest, latest = self.window
    m1, m2 = r1**2, r2**2
    v_out = jnp.maximum(2.0 * m1 * v1 / (m1 + m2), 1e-6)  # the blue ball's speed after contact
    v1 = jnp.maximum(v1, 1e-6)
    room = WALL_FACE - 2.0 * (r1 + r2)  # v1 * t_c + v_out * gap must fit for a start in view
    gap_hi = jnp.minimum(latest - earliest, (room - v1 * earliest) / v_out)
    gap = jnp.where(gap_hi < FRAME_DT, FRAME_DT, FRAME_DT + u[:, 0] * (gap_hi - FRAME_DT))
    delay_hi = jnp.minimum(latest - earliest - gap, (room - v_out * gap) / v1 - earliest)
    t_contact = earliest + u[:, 1] * jnp.maximum(delay_hi, 0.0)
    blue_x = WALL_FACE - r2 - v_out * gap
    return blue_x - r2 - r1 - v1 * t_contact, blue_x

  def rollout(self, state0: walls.WallState, num_frames: int = NUM_FRAMES) -> BodyTrajectory:
    position, velocity = walls.rollout(state0, num_frames)
    return walls.to_body_trajectory(state0, position, velocity)

  def pool_params(self, dataset_size: str, seed: int = 0) -> np.ndarray:
    """Half event 0 and half event 1: each the linspace grid over its used columns
    (GRID_SIZES). `seed` is unused: the grid is fixed."""
    del seed
    num_radii, num_speeds = GRID_SIZES[dataset_size]
    grids = []
    for event in (0, 1):
      radius_columns = sum(EVENT_USES[self.kind][event][:2])
      radii = np.linspace(*RADIUS, num_radii ** (2 // radius_columns))
      grids.append(self._event_grid(event, radii, np.linspace(*SPEED, num_speeds)))
    return np.concatenate(grids)

  def _event_grid(self, event: int, radii: np.ndarray, speeds: np.ndarray) -> np.ndarray:
    uses = EVENT_USES[self.kind][event]
    axes = [radii, radii, speeds, speeds]
    return linspace_grid(
      np.array([event]), *(a if use else np.zeros(1) for a, use in zip(axes, uses, strict=True))
    )

  def params_of(self, state: CompositionState) -> jax.Array:
    speed = jnp.abs(state.velocity[..., 0])
    return jnp.stack(
      [
        state.event.astype(jnp.float32),
        state.radius[:, 0],
        state.radius[:, 1],
        speed[:, 0],
        speed[:, 1],
      ],
      -1,
    )

  def eval_params(self, split: str, points: int = 8) -> np.ndarray:
    """The split's events, each a grid of `points` cell midpoints per used column."""
    cells = (np.arange(points) + 0.5) / points
    radii, speeds = (lo + cells * (hi - lo) for lo, hi in (RADIUS, SPEED))
    events = (0, 1) if self.check_split(split) == "train" else (2,)
    return np.concatenate([self._event_grid(event, radii, speeds) for event in events])


def _stack_xy(x: list[jax.Array], y: list[jax.Array]) -> jax.Array:
  """Positions [n, 2, 2] of (red, blue) from their x and y coordinates."""
  return jnp.stack([jnp.stack(x, -1), jnp.stack(y, -1)], -1)


def _rest_x(radius: jax.Array, u: jax.Array) -> jax.Array:
  """x of a resting object: anywhere in view left of the wall."""
  return radius + u * (WALL_FACE - 2.0 * radius)


def _two_lanes(u: jax.Array, r_a: jax.Array, r_b: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Heights of two objects at least r_a + r_b + LANE_GAP apart, in [0.5 + r, 9.5 - r], in
  random order (u: [n, 3] uniforms)."""
  swap = u[:, 2] < 0.5
  r_low, r_up = jnp.where(swap, r_b, r_a), jnp.where(swap, r_a, r_b)
  spacing = r_a + r_b + LANE_GAP
  slack = 9.0 - r_low - r_up - spacing
  low = 0.5 + r_low + slack * jnp.minimum(u[:, 0], u[:, 1])
  up = low + spacing + slack * jnp.abs(u[:, 0] - u[:, 1])
  return jnp.where(swap, up, low), jnp.where(swap, low, up)
