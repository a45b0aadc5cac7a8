"""Two balls on one line meeting in a perfectly elastic collision, in closed form."""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from sims import physics, regions
from sims.core import (
  BLUE,
  FRAME_DT,
  NUM_FRAMES,
  RED,
  SHAPES,
  WORLD_SIZE,
  BallState,
  Scene,
  Trajectory,
  check_choice,
  scaled_frames,
)
from sims.params import Bands, linspace_grid, make_space

# The study's code ranges for collisions (its OOD radii are [0.3, 0.4] U [1.7, 2.0]).
_RADIUS = Bands(id=(0.5, 1.5), low=(0.3, 0.4), high=(1.7, 2.0))
_SPEED = Bands(id=(1.0, 4.0), low=(0.0, 0.8), high=(4.5, 6.0))
SPACE = make_space(
  ("radius1", "radius2", "speed1", "speed2"),
  (_RADIUS, _RADIUS, _SPEED, _SPEED),
  {
    "r1": ("radius1",),
    "v1": ("speed1",),
    "r1r2": ("radius1", "radius2"),
    "v1v2": ("speed1", "speed2"),
    "r1v1": ("radius1", "speed1"),
    "all": ("radius1", "radius2", "speed1", "speed2"),
  },
)
SPACE = regions.with_sweep(SPACE, regions.FIG6_AXES)
# Dataset-size level -> (speeds per ball, radii per ball); the pool is the 4-D grid.
GRID_SIZES = {"30K": (21, 8), "300K": (41, 14), "3M": (71, 26)}


# The study's placement rules for 32-frame clips: training videos have at least 8 frames before
# the contact and 8 after it; its evaluation generator allows the contact from frame 4 on.
STUDY_PRE_FRAMES = 8
STUDY_EVAL_PRE_FRAMES = 4
STUDY_POST_FRAMES = 8


class Collision(Scene):
  """Ball 1 (red, left) moves right at speed1; ball 2 (blue, right) moves left at speed2.

  Both start at one height. The contact falls inside the clip of `num_frames` frames by the
  study's rule scaled to the clip (`sims.scaled_frames`): at least 8 frames of 32 before it and 8
  after it in training (`place`), at least 4 before it and 8 after it in evaluation
  (`place_eval`); for an 8-frame clip that is 2 before and 2 after, and 1 before and 2 after. The
  contact point is drawn so that both balls start fully in view; when no such placement exists
  (very fast or very large balls) the earliest allowed contact time is used and the balls may
  start partly out of view. `train_holes` removes boxes from the training range and adds the
  split "hole" (`sims.regions`). `colors` and `shapes` (names in sims.SHAPES) are per ball;
  masses stay radius**2 whatever the shape, as in the study.
  """

  name = "collision"
  space = SPACE
  num_objects = 2
  dataset_sizes = tuple(GRID_SIZES)
  fits_clip = True

  def __init__(
    self,
    *,
    colors: tuple[tuple[float, float, float], ...] = (RED, BLUE),
    shapes: tuple[str, str] = ("circle", "circle"),
    num_frames: int = NUM_FRAMES,
    train_holes: str | Sequence | None = None,
  ):
    if train_holes is not None:
      self.space = regions.with_holes(self.space, train_holes)
    if len(colors) != 2:
      raise ValueError(f"colors must name 2 colours, got {len(colors)}")
    if len(shapes) != 2:
      raise ValueError(f"shapes must name 2 shapes, got {len(shapes)}")
    self.shapes = jnp.asarray([SHAPES.index(check_choice("shape", s, SHAPES)) for s in shapes])
    post = scaled_frames(STUDY_POST_FRAMES, num_frames)
    pre = scaled_frames(STUDY_PRE_FRAMES, num_frames)
    if pre + post >= num_frames:
      raise ValueError(f"num_frames={num_frames} is too short for a collision; valid: >= 3")
    self.colors = jnp.asarray(colors, jnp.float32)
    latest = (num_frames - 1 - post) * FRAME_DT
    self.contact_window = (pre * FRAME_DT, latest)
    self.eval_contact_window = (scaled_frames(STUDY_EVAL_PRE_FRAMES, num_frames) * FRAME_DT, latest)

  def place(self, keys: jax.Array, params: jax.Array) -> BallState:
    return self._place(keys, params, self.contact_window)

  def place_eval(self, keys: jax.Array, params: jax.Array) -> BallState:
    return self._place(keys, params, self.eval_contact_window)

  def _place(
    self, keys: jax.Array, params: jax.Array, contact_window: tuple[float, float]
  ) -> BallState:
    r1, r2, v1, v2 = (params[:, i] for i in range(4))
    u = jax.vmap(lambda k: jax.random.uniform(k, (3,)))(keys)
    closing_speed = jnp.maximum(v1 + v2, 1e-6)
    earliest, latest = contact_window
    in_view_latest = (WORLD_SIZE - 2.0 * (r1 + r2)) / closing_speed
    latest = jnp.minimum(latest, in_view_latest)
    t_contact = jnp.where(latest < earliest, earliest, earliest + u[:, 0] * (latest - earliest))
    # Contact point x_c: ball 1 starts at x_c - r1 - v1 t, ball 2 at x_c + r2 + v2 t.
    lo, hi = 2.0 * r1 + v1 * t_contact, WORLD_SIZE - 2.0 * r2 - v2 * t_contact
    x_contact = jnp.where(hi < lo, 0.5 * (lo + hi), lo + u[:, 1] * (hi - lo))
    top_radius = jnp.maximum(r1, r2)
    height = top_radius + 0.5 + u[:, 2] * (9.0 - 2.0 * top_radius)
    x = jnp.stack([x_contact - r1 - v1 * t_contact, x_contact + r2 + v2 * t_contact], -1)
    n = params.shape[0]
    zero = jnp.zeros((n, 2))
    return BallState(
      position=jnp.stack([x, jnp.stack([height, height], -1)], -1),
      velocity=jnp.stack([jnp.stack([v1, -v2], -1), zero], -1),
      radius=jnp.stack([r1, r2], -1),
      color=jnp.broadcast_to(self.colors, (n, 2, 3)),
      shape=jnp.broadcast_to(self.shapes, (n, 2)).astype(jnp.int32),
    )

  def rollout(self, state0: BallState, num_frames: int = NUM_FRAMES) -> Trajectory:
    if state0.position.shape[1] != 2:
      raise ValueError(f"collision needs 2 balls per example, got {state0.position.shape[1]}")
    position, velocity = physics.two_disc_rollout(state0, jnp.zeros(2), num_frames)
    return physics.to_trajectory(state0, position, velocity)

  def pool_params(self, dataset_size: str, seed: int = 0) -> np.ndarray:
    """The study's 4-D linspace grid radius1 x radius2 x speed1 x speed2."""
    num_speeds, num_radii = GRID_SIZES[dataset_size]
    radii = np.linspace(*_RADIUS.id, num_radii)
    speeds = np.linspace(*_SPEED.id, num_speeds)
    return linspace_grid(radii, radii, speeds, speeds)

  def params_of(self, state: BallState) -> jax.Array:
    return jnp.stack(
      [state.radius[:, 0], state.radius[:, 1], state.velocity[:, 0, 0], -state.velocity[:, 1, 0]],
      -1,
    )
