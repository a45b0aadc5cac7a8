"""One ball in free flight: the study's uniform-motion and parabola scenes."""

from __future__ import annotations

import abc
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from sims import pairings, physics, regions
from sims.core import (
  FRAME_DT,
  GRAVITY,
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

# "both": right or left with equal probability (the study's horizontally flipped training set).
DIRECTIONS = ("right", "left", "up", "down", "both")

# The study's code ranges for uniform motion and the parabola (radius, speed), and Figure 5's grid.
SPACE = make_space(
  ("radius", "speed"),
  (
    Bands(id=(0.7, 1.4), low=(0.3, 0.6), high=(1.5, 2.0)),
    Bands(id=(1.0, 4.0), low=(0.0, 0.8), high=(4.5, 6.0)),
  ),
  {"r": ("radius",), "v": ("speed",), "rv": ("radius", "speed")},
)
SPACE = regions.with_sweep(SPACE, regions.FIG5_AXES)
# Dataset-size level -> (number of speeds, number of radii); the pool is every pair.
GRID_SIZES = {"30K": (300, 100), "300K": (1000, 300), "3M": (3000, 1000)}
# The study's placement keeps the ball in view for at least 24 of its 32 frames.
STUDY_VISIBLE_FRAMES = 24


class SingleBall(Scene):
  """A ball launched along `direction` at `speed`; gravity (0, gravity_y) acts on it.

  Placement follows the study: the ball starts far enough back to stay in view for
  `min_visible_frames` frames of straight motion, at a random offset across the motion. That is
  the study's 24 of 32 frames scaled to the clip of `num_frames` frames (6 of 8).
  `train_speeds` restricts the training speeds and adds the split "gap" (`sims.regions`);
  `pairing` binds colour, shape, size and speed as in one of the study's attribute pairings and
  makes the splits "train" and "swapped" (`sims.pairings`; it sets the colour and the shape).
  """

  space = SPACE
  num_objects = 1
  dataset_sizes = tuple(GRID_SIZES)
  directions = DIRECTIONS
  fits_clip = True

  def __init__(
    self,
    *,
    gravity_y: float,
    direction: str = "right",
    color: tuple[float, float, float] | None = None,
    shape: str | None = None,
    num_frames: int = NUM_FRAMES,
    train_speeds: str | Sequence[regions.Interval] | None = None,
    pairing: str | None = None,
  ):
    if pairing is not None:
      if color is not None or shape is not None or train_speeds is not None:
        raise ValueError(
          f"pairing {pairing!r} sets the training set, colour and shape; drop "
          "color=, shape= and train_speeds="
        )
      self.space = pairings.with_pairing(self.space, pairing)
    if train_speeds is not None:
      self.space = regions.with_speed_gaps(self.space, train_speeds)
    self.pairing = pairing
    self.direction = check_choice(f"direction for scene {self.name!r}", direction, self.directions)
    self.shape = SHAPES.index(check_choice("shape", shape or "circle", SHAPES))
    self.color = jnp.asarray(RED if color is None else color, jnp.float32)
    self.gravity = jnp.asarray([0.0, gravity_y], jnp.float32)
    self.min_visible_frames = scaled_frames(STUDY_VISIBLE_FRAMES, num_frames)

  @abc.abstractmethod
  def across_band(self, radius: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Range of the start coordinate across the motion (the height for a rightward launch)."""

  def place(self, keys: jax.Array, params: jax.Array) -> BallState:
    radius, speed = params[:, 0], params[:, 1]
    u = jax.vmap(lambda k: jax.random.uniform(k, (3,)))(keys)
    # Along the motion: start far enough back to stay in view, as the study does.
    far_start = WORLD_SIZE - (self.min_visible_frames * speed * FRAME_DT + radius)
    along = jnp.where(
      far_start < radius,
      radius + u[:, 0] * 0.5 * u[:, 1],
      radius + u[:, 0] * (far_start - radius),
    )
    lo, hi = self.across_band(radius)
    across = lo + u[:, 2] * (hi - lo)
    if self.direction == "both":
      leftward = jax.vmap(lambda k: jax.random.bernoulli(jax.random.fold_in(k, 1)))(keys)
      right, left = (_orient(d, along, across, speed) for d in ("right", "left"))
      position, velocity = (
        jnp.where(leftward[:, None], b, a) for a, b in zip(right, left, strict=True)
      )
    else:
      position, velocity = _orient(self.direction, along, across, speed)
    n = params.shape[0]
    if self.pairing is None:
      color, shape = jnp.broadcast_to(self.color, (n, 3)), jnp.full((n,), self.shape, jnp.int32)
    else:
      color, shape = pairings.attributes_of(params)
    return BallState(
      position=position[:, None],
      velocity=velocity[:, None],
      radius=radius[:, None],
      color=color[:, None],
      shape=shape[:, None],
    )

  def rollout(self, state0: BallState, num_frames: int = NUM_FRAMES) -> Trajectory:
    position, velocity = physics.ballistic(state0, self.gravity, num_frames)
    return physics.to_trajectory(state0, position, velocity)

  def params_of(self, state: BallState) -> jax.Array:
    params = jnp.stack([state.radius[:, 0], jnp.linalg.norm(state.velocity[:, 0], axis=-1)], -1)
    if self.pairing is None:
      return params
    return jnp.concatenate([params, pairings.labels_of(state)], -1)

  def pool_params(self, dataset_size: str, seed: int = 0) -> np.ndarray:
    """The study's (radius, speed) set of `grid_params`; under a pairing, the part of it in each
    training combination, labelled with the combination's colour and shape."""
    grid = self.grid_params(dataset_size, seed)
    return grid if self.pairing is None else pairings.label_pool(grid, self.train_region)

  @abc.abstractmethod
  def grid_params(self, dataset_size: str, seed: int) -> np.ndarray:
    """The study's training set of (radius, speed) for a dataset-size level, [N, 2]."""


def _orient(
  direction: str, along: jax.Array, across: jax.Array, speed: jax.Array
) -> tuple[jax.Array, jax.Array]:
  """Maps a rightward launch (x = along, y = across) onto one of the four directions."""
  zero = jnp.zeros_like(speed)
  x, y, vx, vy = {
    "right": (along, across, speed, zero),
    "left": (WORLD_SIZE - along, across, -speed, zero),
    "up": (across, along, zero, speed),
    "down": (across, WORLD_SIZE - along, zero, -speed),
  }[direction]
  return jnp.stack([x, y], -1), jnp.stack([vx, vy], -1)


class UniformMotion(SingleBall):
  """One ball at constant velocity (the study's default: red, moving right)."""

  name = "uniform_motion"

  def __init__(self, **options):
    super().__init__(gravity_y=0.0, **options)

  def across_band(self, radius: jax.Array) -> tuple[jax.Array, jax.Array]:
    return radius + 0.5, 9.5 - radius

  def grid_params(self, dataset_size: str, seed: int) -> np.ndarray:
    """The study's grid: linspace speeds x linspace radii over the training range."""
    num_speeds, num_radii = GRID_SIZES[dataset_size]
    (r_lo, r_hi), (v_lo, v_hi) = (b.id for b in self.space.bands[:2])
    return linspace_grid(np.linspace(r_lo, r_hi, num_radii), np.linspace(v_lo, v_hi, num_speeds))


class Parabola(SingleBall):
  """One ball thrown horizontally from the top band under gravity (0, -2.5)."""

  name = "parabola"
  directions = ("right", "left", "both")

  def __init__(self, **options):
    super().__init__(gravity_y=GRAVITY, **options)

  def across_band(self, radius: jax.Array) -> tuple[jax.Array, jax.Array]:
    return 8.5 - radius, 9.5 - radius

  def grid_params(self, dataset_size: str, seed: int) -> np.ndarray:
    """The study's set: sorted random-uniform speeds x radii from the training range, all pairs."""
    num_speeds, num_radii = GRID_SIZES[dataset_size]
    (r_lo, r_hi), (v_lo, v_hi) = (b.id for b in self.space.bands[:2])
    rng = np.random.default_rng(seed)
    radii = np.sort(rng.uniform(r_lo, r_hi, num_radii))
    speeds = np.sort(rng.uniform(v_lo, v_hi, num_speeds))
    return linspace_grid(radii, speeds)
