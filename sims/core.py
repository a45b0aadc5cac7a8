"""Shared units, state containers and the scene interface of the `sims` library.

World: a 10 x 10 square, x to the right, y up, origin at the bottom-left corner. Frame k of a
video is the state at time k * FRAME_DT seconds. Masses follow the study's convention of equal
density, so a ball's mass is proportional to radius**2.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from sims.params import ParamSpace, Region

WORLD_SIZE = 10.0
FRAME_DT = 0.1
NUM_FRAMES = 32
GRAVITY = -2.5

RED = (1.0, 0.0, 0.0)
BLUE = (0.0, 0.0, 1.0)
SHAPES = ("circle", "square", "ring")
CIRCLE, SQUARE, RING = 0, 1, 2
# A ring is an annulus: outer radius r, inner radius RING_INNER * r (its hole is visible at 32 px).
RING_INNER = 0.6
# Shapes of rigid bodies (BodyTrajectory.shape): a disc of radius size[0], or a box of half
# extents size, rotated by the body's angle.
BODY_SHAPES = ("circle", "box")
BOX = 1


@struct.dataclass
class BallState:
  """Batched initial state of K balls: every field has a leading batch axis n.

  position: [n, K, 2] world units; velocity: [n, K, 2] world units / s; radius: [n, K] (half the
  side for squares, the outer radius for rings); color: [n, K, 3] RGB in [0, 1]; shape: [n, K]
  int32 index into SHAPES.
  """

  position: jax.Array
  velocity: jax.Array
  radius: jax.Array
  color: jax.Array
  shape: jax.Array

  @property
  def mass(self) -> jax.Array:
    """Mass at unit density per unit of r**2, as in the study."""
    return self.radius**2


@struct.dataclass
class Trajectory:
  """Batched video of K objects over T frames (frame k at t = k * FRAME_DT).

  position, velocity: [n, T, K, 2]; radius: [n, K]; color: [n, K, 3]; shape: [n, K].
  """

  position: jax.Array
  velocity: jax.Array
  radius: jax.Array
  color: jax.Array
  shape: jax.Array

  @property
  def num_frames(self) -> int:
    return self.position.shape[1]


@struct.dataclass
class BodyTrajectory:
  """Batched video of K rigid-body slots over T frames (frame k at t = k * the scene's frame dt).

  position, velocity: [n, T, K, 2] world units (per second); angle, angular_velocity: [n, T, K]
  radians (per second, counter-clockwise); shape: [n, K] index into BODY_SHAPES; size: [n, K, 2]
  (radius, radius) for discs or half extents (along the body's x and y axes) for boxes; color:
  [n, K, 3] RGB in [0, 1]; dynamic, active: [n, K] bool. Inactive slots are absent from the scene
  (invisible, collide with nothing); their other fields are placeholders.
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

  @property
  def num_frames(self) -> int:
    return self.position.shape[1]


@struct.dataclass
class Pool:
  """A fixed dataset of N initial states: parameters [N, P] and the placement key."""

  params: jax.Array
  key: jax.Array

  @property
  def size(self) -> int:
    return self.params.shape[0]


def balls(
  position: jax.Array,
  velocity: jax.Array,
  radius: jax.Array,
  color: jax.Array | Sequence[Sequence[float]] | None = None,
  shape: jax.Array | None = None,
) -> BallState:
  """Builds a BallState from arrays, defaulting to red circles (blue for a second ball).

  `color` may be a per-ball list such as [RED, BLUE]; it is broadcast over the batch.
  """
  position = jnp.asarray(position, jnp.float32)
  velocity = jnp.asarray(velocity, jnp.float32)
  radius = jnp.asarray(radius, jnp.float32)
  if position.ndim != 3 or position.shape[-1] != 2:
    raise ValueError(f"position must have shape [n, K, 2], got {position.shape}")
  n, k = position.shape[:2]
  if velocity.shape != (n, k, 2) or radius.shape != (n, k):
    raise ValueError(
      f"velocity {velocity.shape} and radius {radius.shape} must be [{n}, {k}, 2] and [{n}, {k}]"
    )
  if color is None:
    color = [RED, BLUE, *[RED] * max(0, k - 2)][:k]
  color = jnp.broadcast_to(jnp.asarray(color, jnp.float32), (n, k, 3))
  shape = jnp.zeros((n, k), jnp.int32) if shape is None else jnp.asarray(shape, jnp.int32)
  return BallState(position, velocity, radius, color, jnp.broadcast_to(shape, (n, k)))


def scaled_frames(study_frames: int, num_frames: int) -> int:
  """A frame count of the study's rules for 32-frame clips scaled to a clip of `num_frames`
  frames, rounded and at least 1 (8 of 32 frames is 2 of 8)."""
  if num_frames < 1:
    raise ValueError(f"num_frames must be >= 1, got {num_frames}")
  return max(1, round(study_frames * num_frames / NUM_FRAMES))


def check_choice(kind: str, value: str, allowed: Sequence[str]) -> str:
  """Returns `value` if it is one of `allowed`, else raises a one-line ValueError."""
  if value not in allowed:
    raise ValueError(f"unknown {kind} {value!r}; valid: {', '.join(allowed)}")
  return value


class Scene(abc.ABC):
  """A family of videos: how initial states are drawn (splits, pools) and how they evolve.

  Concrete scenes set `name`, `space` (their ParamSpace), `num_objects` and `dataset_sizes`, and
  define `place`, `rollout`, `pool_params` and `params_of`. Scenes whose placement times events
  (a ball staying in view, a contact) set `fits_clip` and take the clip length as the
  constructor option `num_frames`; `place` then follows the study's training rule scaled to the
  clip, and `place_eval` its evaluation rule where that differs.
  """

  name: str
  space: ParamSpace
  num_objects: int
  dataset_sizes: tuple[str, ...]
  fits_clip: bool = False

  @property
  def param_names(self) -> tuple[str, ...]:
    return self.space.names

  @property
  def splits(self) -> tuple[str, ...]:
    """Names accepted by `sample` and `sample_params`."""
    return self.space.split_names

  def sample_params(self, key: jax.Array, n: int, split: str) -> jax.Array:
    """Draws [n, P] physical parameters (ordered as `param_names`) from a split."""
    return self.space.sample(key, n, self.check_split(split))

  @abc.abstractmethod
  def place(self, keys: jax.Array, params: jax.Array) -> BallState:
    """Initial states for [n, P] parameters, one placement key per example ([n] keys)."""

  def place_eval(self, keys: jax.Array, params: jax.Array) -> BallState:
    """Initial states of evaluation cases (held-out splits); `place` unless the study's
    evaluation rule differs from its training rule."""
    return self.place(keys, params)

  @abc.abstractmethod
  def rollout(self, state0: BallState, num_frames: int = NUM_FRAMES) -> Trajectory:
    """Simulates `num_frames` frames, frame 0 being `state0`."""

  @abc.abstractmethod
  def pool_params(self, dataset_size: str, seed: int = 0) -> np.ndarray:
    """The study's training set of physical parameters for a dataset-size level, [N, P]."""

  @abc.abstractmethod
  def params_of(self, state: BallState) -> jax.Array:
    """Recovers the [n, P] physical parameters of a state (inverse of `place`)."""

  def eval_params(self, split: str, points: int = 8) -> np.ndarray:
    """A deterministic evaluation grid [N, P] of a split (see ParamSpace.grid)."""
    return self.space.grid(self.check_split(split), points)

  def pool(self, dataset_size: str, seed: int = 0) -> Pool:
    """A fixed training set: the study's parameter grid (the part of it in the "train" region
    where the scene has one) plus one placement seed per entry."""
    params = self.pool_params(self.check_dataset_size(dataset_size), seed)
    if self.train_region is not None:
      params = params[self.train_region.contains(params)]
    return Pool(params=jnp.asarray(params), key=jax.random.key(seed))

  @property
  def train_region(self) -> Region | None:
    """The region that "train" and the pools keep (a training set with holes), else None."""
    return self.space.regions.get("train")

  def sample(self, key: jax.Array, n: int, split: str | Pool = "train") -> BallState:
    """Draws n initial states from a named split (fresh parameters and placements) or a Pool.

    From a Pool, entry i always gets the same placement (its key is the pool key folded with i),
    so a pool is an exact, fixed dataset that is sampled with replacement. Pools and "train" are
    placed by `place`, the held-out splits by `place_eval`.
    """
    params_key, place_key = jax.random.split(key)
    if isinstance(split, Pool):
      index = jax.random.randint(params_key, (n,), 0, split.size)
      keys = jax.vmap(jax.random.fold_in, (None, 0))(split.key, index)
      return self.place(keys, split.params[index])
    params = self.sample_params(params_key, n, split)
    place = self.place if split == "train" else self.place_eval
    return place(jax.random.split(place_key, n), params)

  def check_split(self, split: str) -> str:
    return check_choice(f"split for scene {self.name!r}", split, self.splits)

  def check_dataset_size(self, dataset_size: str) -> str:
    return check_choice(f"dataset_size for scene {self.name!r}", dataset_size, self.dataset_sizes)
