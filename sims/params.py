"""Physical-parameter spaces: the study's training range, its OOD levels, and its data grids.

A split is a list of alternatives; each alternative assigns every parameter a band: the
in-distribution range, the low OOD range or the high OOD range. Sampling picks an alternative
uniformly per example, then each parameter uniformly within its band. The named OOD levels follow
the study: a level makes a set of parameters OOD; `<level>` mixes every low/high assignment,
`<level>_low` / `<level>_high` make all of them low / high, and `<level>_cross` (levels with two or
more parameters) mixes low and high.

A space may also hold region splits (`Region`: a union of disjoint boxes, sampled uniformly over
its volume), which take precedence over band splits of the same name: a training set with holes
replaces "train" by a region and adds the left-out part as a split of its own (`sims.regions`).
"""

from __future__ import annotations

import dataclasses
import itertools
import zlib
from collections.abc import Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

ID, LOW, HIGH = 0, 1, 2


@dataclasses.dataclass(frozen=True)
class Bands:
  """In-distribution range and the low / high OOD ranges of one parameter."""

  id: tuple[float, float]
  low: tuple[float, float]
  high: tuple[float, float]

  def contains_id(self, value: np.ndarray) -> np.ndarray:
    return (value >= self.id[0]) & (value <= self.id[1])


@dataclasses.dataclass(frozen=True)
class Region:
  """A union of disjoint closed boxes [lo, hi] in parameter space, sampled uniformly by volume.

  A box may be a single value along a parameter (a label, such as a colour index); volumes count
  only the parameters a box spans. The evaluation grid is `grid_axes` where given (values per
  parameter: the study's linspace grids), else `grid_counts` linspace values per parameter over
  each box (endpoints included), else built per box like a band split's.
  """

  lo: np.ndarray  # [B, P]
  hi: np.ndarray  # [B, P]
  grid_axes: tuple[np.ndarray, ...] | None = None
  grid_counts: tuple[int, ...] | None = None

  @property
  def volumes(self) -> np.ndarray:
    return np.prod(np.where(self.hi > self.lo, self.hi - self.lo, 1.0), axis=1)

  def contains(self, params: np.ndarray) -> np.ndarray:
    """[N] whether each row of [N, P] parameters lies in some box (edges included)."""
    params = np.asarray(params)[:, None]
    inside = (params >= self.lo - 1e-6) & (params <= self.hi + 1e-6)  # [N, B, P]
    return inside.all(-1).any(-1)

  def sample(self, key: jax.Array, n: int) -> jax.Array:
    """[n, P] float32 parameters uniform over the region's volume."""
    pick_key, value_key = jax.random.split(key)
    logits = jnp.log(jnp.asarray(self.volumes / self.volumes.sum(), jnp.float32))
    box = jax.random.categorical(pick_key, logits, shape=(n,))
    lo, hi = jnp.asarray(self.lo, jnp.float32)[box], jnp.asarray(self.hi, jnp.float32)[box]
    return lo + jax.random.uniform(value_key, lo.shape) * (hi - lo)

  def grid(self, points: int) -> np.ndarray:
    """The evaluation grid [N, P]: `grid_axes`' product, else `grid_counts` linspace values
    or `points` cell midpoints per parameter in every box."""
    if self.grid_axes is not None:
      return linspace_grid(*self.grid_axes)
    cells = (np.arange(points) + 0.5) / points

    def axis(a: float, b: float, count: int | None) -> np.ndarray:
      return np.linspace(a, b, count) if count else a + cells * (b - a)

    counts = self.grid_counts or (None,) * self.lo.shape[1]
    boxes = zip(self.lo, self.hi, strict=True)
    return np.concatenate(
      [
        linspace_grid(*(axis(a, b, c) for a, b, c in zip(lo, hi, counts, strict=True)))
        for lo, hi in boxes
      ]
    )


def box_difference(lo: np.ndarray, hi: np.ndarray, holes: Region) -> Region:
  """The box [lo, hi] minus the holes, as disjoint boxes: the cells between every hole edge
  that lie in no hole."""
  edges = [
    np.unique(np.clip(np.concatenate([[a, b], holes.lo[:, i], holes.hi[:, i]]), a, b))
    for i, (a, b) in enumerate(zip(lo, hi, strict=True))
  ]
  cells = list(itertools.product(*(range(len(e) - 1) for e in edges)))
  cell_lo = np.array([[e[j] for e, j in zip(edges, c, strict=True)] for c in cells])
  cell_hi = np.array([[e[j + 1] for e, j in zip(edges, c, strict=True)] for c in cells])
  centre = 0.5 * (cell_lo + cell_hi)
  inside = (centre[:, None] > holes.lo) & (centre[:, None] < holes.hi)
  keep = ~inside.all(-1).any(-1) & (np.prod(cell_hi - cell_lo, axis=1) > 0)
  return Region(cell_lo[keep], cell_hi[keep])


@dataclasses.dataclass(frozen=True)
class ParamSpace:
  """Named parameters, their bands, splits as tables of band alternatives, and region splits."""

  names: tuple[str, ...]
  bands: tuple[Bands, ...]
  splits: Mapping[str, np.ndarray]  # name -> [alternatives, P] of ID / LOW / HIGH
  regions: Mapping[str, Region] = dataclasses.field(default_factory=dict)

  @property
  def split_names(self) -> tuple[str, ...]:
    return tuple(dict.fromkeys([*self.splits, *self.regions]))

  def with_regions(self, **regions: Region) -> ParamSpace:
    """This space with region splits added (replacing any of the same name)."""
    return dataclasses.replace(self, regions={**self.regions, **regions})

  @property
  def id_box(self) -> tuple[np.ndarray, np.ndarray]:
    """(lo, hi) [P] of the in-distribution range."""
    return np.array([b.id[0] for b in self.bands]), np.array([b.id[1] for b in self.bands])

  def in_train(self, params: np.ndarray) -> np.ndarray:
    """[N] whether parameters lie in the training set's range ("train" region or ID box)."""
    if "train" in self.regions:
      return self.regions["train"].contains(params)
    lo, hi = self.id_box
    return ((params >= lo - 1e-6) & (params <= hi + 1e-6)).all(-1)

  def sample(self, key: jax.Array, n: int, split: str) -> jax.Array:
    """Draws [n, P] float32 parameters from the named split."""
    if split in self.regions:
      return self.regions[split].sample(jax.random.fold_in(key, zlib.crc32(split.encode())), n)
    table = jnp.asarray(self.splits[split])
    lows = jnp.asarray([[b.id[0], b.low[0], b.high[0]] for b in self.bands], jnp.float32)
    highs = jnp.asarray([[b.id[1], b.low[1], b.high[1]] for b in self.bands], jnp.float32)
    # Each split draws its own stream, so "train" and "id" with one key give different values.
    pick_key, value_key = jax.random.split(jax.random.fold_in(key, zlib.crc32(split.encode())))
    modes = table[jax.random.randint(pick_key, (n,), 0, table.shape[0])]  # [n, P]
    columns = jnp.arange(len(self.names))
    lo, hi = lows[columns, modes], highs[columns, modes]
    return lo + jax.random.uniform(value_key, (n, len(self.names))) * (hi - lo)

  def grid(self, split: str, points: int) -> np.ndarray:
    """A deterministic evaluation grid [N, P] for a split.

    For every band alternative of the split, each parameter takes `points` values at the
    midpoints of `points` equal cells of its band (so no value sits on a band edge or on the
    endpoints-inclusive linspace grids of the training pools), and the alternatives' grids are
    concatenated.
    """
    if split in self.regions:
      return self.regions[split].grid(points)
    cells = (np.arange(points) + 0.5) / points
    grids = []
    for modes in self.splits[split]:
      axes = []
      for bands, mode in zip(self.bands, modes, strict=True):
        lo, hi = (bands.id, bands.low, bands.high)[mode]
        axes.append(lo + cells * (hi - lo))
      grids.append(linspace_grid(*axes))
    return np.concatenate(grids)


def make_space(
  names: Sequence[str], bands: Sequence[Bands], ood_levels: Mapping[str, Sequence[str]]
) -> ParamSpace:
  """Builds the splits 'train', 'id' and every OOD level with its low / high / cross variants."""
  num = len(names)
  in_range = np.zeros((1, num), np.int32)
  splits: dict[str, np.ndarray] = {"train": in_range, "id": in_range}
  for level, level_params in ood_levels.items():
    columns = [names.index(p) for p in level_params]
    assignments = list(itertools.product((LOW, HIGH), repeat=len(columns)))
    variants = {
      f"ood_{level}": assignments,
      f"ood_{level}_low": [a for a in assignments if set(a) == {LOW}],
      f"ood_{level}_high": [a for a in assignments if set(a) == {HIGH}],
    }
    if len(columns) > 1:
      variants[f"ood_{level}_cross"] = [a for a in assignments if len(set(a)) == 2]
    for split_name, rows in variants.items():
      table = np.zeros((len(rows), num), np.int32)
      table[:, columns] = np.asarray(rows, np.int32)
      splits[split_name] = table
  return ParamSpace(tuple(names), tuple(bands), splits)


def linspace_grid(*axes: np.ndarray) -> np.ndarray:
  """Cartesian product of 1-D value arrays as [N, len(axes)] float32 (first axis slowest)."""
  mesh = np.meshgrid(*axes, indexing="ij")
  return np.stack([m.ravel() for m in mesh], axis=-1).astype(np.float32)
