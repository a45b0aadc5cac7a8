"""Attribute pairings: training sets that bind two attributes of one moving object.

The study's attribute-priority experiments (section 5.3) train uniform motion on two of the four
combinations of two attributes and test on the other two (the "swapped" pairs): a test case
conflicts with training, and the model keeps one attribute and bends the other. An attribute is
the colour (red or blue, PALETTE), the shape (circle, square or ring, `sims.SHAPES`), the size
(radius) or the velocity (speed). `sims.make("uniform_motion", pairing=NAME)` (or "parabola")
gives a scene whose parameters are (radius, speed, color, shape), the last two being indices into
PALETTE and SHAPES, with the splits "train" (the two training combinations) and "swapped" (the
other two). Each combination is one box of (radius, speed) with fixed colour and shape.

The study's settings (its code `one_object_uniform_motion_*.py`, where released):
- color_shape: red circles and blue squares, swapped blue circles and red squares (its text;
  its figure caption says the reverse).
- size_shape: red circles r in [0.7, 1.05] and red squares r in [1.05, 1.4].
- velocity_shape: red circles v in [1, 2.5] and red squares v in [2.5, 4].
- velocity_size: red circles with (v <= 2.5 and r <= 1.05) or (v >= 2.5 and r >= 1.05).
- color_size: small red r in [0.7, 1.05] and large blue r in [1.05, 1.4].
- color_velocity: slow red v in [1, 2.5] and fast blue v in [2.5, 4].
- color_ring (its appendix): blue circles and red rings, swapped red circles and blue rings.
Unbound ranges are the whole in-distribution range, r in [0.7, 1.4] and v in [1, 4]. The
evaluation grid of a split is, per combination, linspace radii x linspace speeds over its box
with the study's counts where it gives them (e.g. 11 speeds x 36 radii for color_velocity) and
25 radii x 28 speeds (700 per combination, its 1.4K test cases) for the two shape pairings whose
grid it does not give.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from sims.core import BLUE, RED, SHAPES, BallState, check_choice
from sims.params import Bands, ParamSpace, Region

PALETTE = (RED, BLUE)
COLOR_NAMES = ("red", "blue")
ATTRIBUTES = ("color", "shape", "size", "velocity")
LABELS = ("color", "shape")
_LABEL_SIZES = (len(PALETTE), len(SHAPES))
Interval = tuple[float, float]
_RADIUS = (0.7, 1.4)
_SPEED = (1.0, 4.0)
_SMALL, _LARGE = (0.7, 1.05), (1.05, 1.4)
_SLOW, _FAST = (1.0, 2.5), (2.5, 4.0)


@dataclasses.dataclass(frozen=True)
class Combination:
  """One object kind of a pairing: colour and shape names, radius and speed intervals."""

  color: str = "red"
  shape: str = "circle"
  radius: Interval = _RADIUS
  speed: Interval = _SPEED

  @property
  def lo(self) -> np.ndarray:
    return np.array([self.radius[0], self.speed[0], *self.labels], np.float32)

  @property
  def hi(self) -> np.ndarray:
    return np.array([self.radius[1], self.speed[1], *self.labels], np.float32)

  @property
  def labels(self) -> tuple[int, int]:
    return COLOR_NAMES.index(self.color), SHAPES.index(self.shape)


@dataclasses.dataclass(frozen=True)
class Pairing:
  """Two bound attributes, the training combinations, the swapped ones, and the evaluation grid
  per combination (number of radii, number of speeds)."""

  attributes: tuple[str, str]
  train: tuple[Combination, Combination]
  swapped: tuple[Combination, Combination]
  grid: tuple[int, int]


def _c(**fields) -> Combination:
  return Combination(**fields)


PAIRINGS: dict[str, Pairing] = {
  "color_shape": Pairing(
    ("color", "shape"),
    (_c(color="red"), _c(color="blue", shape="square")),
    (_c(color="blue"), _c(color="red", shape="square")),
    (25, 28),
  ),
  "size_shape": Pairing(
    ("size", "shape"),
    (_c(radius=_SMALL), _c(shape="square", radius=_LARGE)),
    (_c(radius=_LARGE), _c(shape="square", radius=_SMALL)),
    (5, 31),
  ),
  "velocity_shape": Pairing(
    ("velocity", "shape"),
    (_c(speed=_SLOW), _c(shape="square", speed=_FAST)),
    (_c(speed=_FAST), _c(shape="square", speed=_SLOW)),
    (11, 16),
  ),
  "velocity_size": Pairing(
    ("velocity", "size"),
    (_c(radius=_SMALL, speed=_SLOW), _c(radius=_LARGE, speed=_FAST)),
    (_c(radius=_LARGE, speed=_SLOW), _c(radius=_SMALL, speed=_FAST)),
    (18, 61),
  ),
  "color_size": Pairing(
    ("color", "size"),
    (_c(radius=_SMALL), _c(color="blue", radius=_LARGE)),
    (_c(color="blue", radius=_SMALL), _c(radius=_LARGE)),
    (11, 31),
  ),
  "color_velocity": Pairing(
    ("color", "velocity"),
    (_c(speed=_SLOW), _c(color="blue", speed=_FAST)),
    (_c(color="blue", speed=_SLOW), _c(speed=_FAST)),
    (36, 11),
  ),
  "color_ring": Pairing(
    ("color", "shape"),
    (_c(color="blue"), _c(shape="ring")),
    (_c(), _c(color="blue", shape="ring")),
    (25, 28),
  ),
}


def get(name: str) -> Pairing:
  """The pairing called `name`, or a one-line error listing them."""
  return PAIRINGS[check_choice("pairing", name, tuple(PAIRINGS))]


def _region(combinations: tuple[Combination, ...], grid: tuple[int, int]) -> Region:
  lo = np.stack([c.lo for c in combinations])
  hi = np.stack([c.hi for c in combinations])
  return Region(lo, hi, grid_counts=(*grid, 1, 1))


def with_pairing(space: ParamSpace, name: str) -> ParamSpace:
  """The (radius, speed) `space` of one ball extended by the label parameters (color, shape),
  with the pairing's region splits "train" and "swapped" only."""
  pairing = get(name)
  if space.names != ("radius", "speed"):
    raise ValueError(f"pairings need a (radius, speed) space, got {space.names}")
  return ParamSpace(
    names=(*space.names, *LABELS),
    bands=(*space.bands, *(Bands(id=(0, n - 1), low=(0, 0), high=(0, 0)) for n in _LABEL_SIZES)),
    splits={},
    regions={
      "train": _region(pairing.train, pairing.grid),
      "swapped": _region(pairing.swapped, pairing.grid),
    },
  )


def label_pool(grid: np.ndarray, region: Region) -> np.ndarray:
  """The rows of a (radius, speed) grid [N, 2] inside each box of a labelled region, each with
  its box's labels appended: a pool [M, 4] of the region's combinations."""
  parts = []
  for lo, hi in zip(region.lo, region.hi, strict=True):
    inside = ((grid >= lo[:2] - 1e-6) & (grid <= hi[:2] + 1e-6)).all(-1)
    labels = np.broadcast_to(lo[2:], (int(inside.sum()), len(lo) - 2))
    parts.append(np.concatenate([grid[inside], labels], -1))
  return np.concatenate(parts).astype(np.float32)


def attributes_of(params: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Colours [n, 3] and shape indices [n] int32 of labelled parameters [n, 4]."""
  color = jnp.asarray(PALETTE, jnp.float32)[params[:, 2].astype(jnp.int32)]
  return color, params[:, 3].astype(jnp.int32)


def labels_of(state: BallState) -> jax.Array:
  """[n, 2] (color, shape) labels of a one-ball state: the nearest PALETTE colour and the shape."""
  distance = jnp.sum((state.color[:, 0, None] - jnp.asarray(PALETTE)) ** 2, -1)
  return jnp.stack([jnp.argmin(distance, -1), state.shape[:, 0]], -1).astype(jnp.float32)


__all__ = [
  "ATTRIBUTES",
  "COLOR_NAMES",
  "PAIRINGS",
  "PALETTE",
  "Combination",
  "Pairing",
  "attributes_of",
  "get",
  "label_pool",
  "labels_of",
  "with_pairing",
]
