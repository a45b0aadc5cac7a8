"""Training sets with holes: the parameter regions of the study's interpolation experiments.

A scene option restricts the "train" split (and its pools) to a region of the in-distribution
range and adds the left-out part as a split of its own:

- `train_speeds` (one ball): speed intervals within [1, 4]; the rest of [1, 4] is split "gap".
  The study's Figure 5 panels are presets "fig5_panel1" ... "fig5_panel5"; the memorization test
  (Figure 7: training at v in [2.5, 4], test on slow balls) is `train_speeds=[(2.5, 4.0)]`, whose
  "gap" split is the slow set v in [1, 2.5].
- `train_holes` (collision): boxes removed from the (v1, v2) square [1, 4]^2, each a pair
  (v1 interval, v2 interval), or a mapping from parameter names to intervals (for holes in other
  parameters, such as the study's mass hole in (r1, r2)); the removed boxes are split "hole".
  The study's Figure 6 variants are presets (`HOLE_PRESETS`).

Every scene of a study space also has the split "sweep": the study's evaluation grid of these
experiments (Figure 5: 121 speeds x 36 radii over the ID range; Figure 6: v1 in linspace(0, 4.5,
21) x v2 in linspace(1, 4, 13) x r1, r2 in linspace(0.5, 1.5, 5)); sampling it draws uniformly
from the grid's bounding box.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence

import numpy as np

from sims.params import ParamSpace, Region, box_difference

Interval = tuple[float, float]

SPEED_PRESETS: dict[str, tuple[Interval, ...]] = {
  "fig5_panel1": ((1.0, 1.25), (3.75, 4.0)),
  "fig5_panel2": ((1.0, 1.5), (3.5, 4.0)),
  "fig5_panel3": ((1.0, 1.75), (3.25, 4.0)),
  "fig5_panel4": ((1.0, 1.75), (2.375, 2.625), (3.25, 4.0)),
  "fig5_panel5": ((1.0, 1.125), (1.875, 2.125), (2.875, 3.125), (3.875, 4.0)),
  "memorization": ((2.5, 4.0),),
}
_SQUARES = ((2.0, 3.0), (1.75, 3.25), (1.5, 3.5), (1.25, 3.75), (1.1, 3.9))
HOLE_PRESETS: dict[str, tuple] = {
  **{f"square_{lo:g}_{hi:g}": (((lo, hi), (lo, hi)),) for lo, hi in _SQUARES},
  "three": (((1.2, 2.2), (2.7, 3.7)), ((2.7, 3.7), (1.2, 2.2)), ((2.9, 3.5), (3.3, 3.9))),
  # The L-shaped set: train only where v1 <= 1.25 or v2 <= 1.25.
  "half": (((1.25, 4.0), (1.25, 4.0)),),
  "mass": ({"radius1": (0.8, 1.2), "radius2": (0.8, 1.2)},),
}
# The study's evaluation grids of Figures 5 (one ball) and 6 (collision), per parameter.
FIG5_AXES = {"radius": np.linspace(0.7, 1.4, 36), "speed": np.linspace(1.0, 4.0, 121)}
FIG6_AXES = {
  "radius1": np.linspace(0.5, 1.5, 5),
  "radius2": np.linspace(0.5, 1.5, 5),
  "speed1": np.linspace(0.0, 4.5, 21),
  "speed2": np.linspace(1.0, 4.0, 13),
}


def with_sweep(space: ParamSpace, axes: Mapping[str, np.ndarray]) -> ParamSpace:
  """`space` with the split "sweep": the grid of `axes` (values per parameter) and, for
  sampling, its bounding box."""
  values = tuple(np.asarray(axes[name], np.float32) for name in space.names)
  lo = np.array([[v.min() for v in values]])
  hi = np.array([[v.max() for v in values]])
  return space.with_regions(sweep=Region(lo, hi, grid_axes=values))


def with_speed_gaps(
  space: ParamSpace, train_speeds: str | Sequence[Interval], speed: str = "speed"
) -> ParamSpace:
  """`space` whose "train" keeps only the speeds in `train_speeds` (a preset name or intervals
  within the ID speed range) and whose split "gap" is the rest of that range."""
  intervals = _preset(train_speeds, SPEED_PRESETS, "train_speeds")
  column = space.names.index(speed)
  id_lo, id_hi = space.id_box
  intervals = _check_intervals("train_speeds", intervals, (id_lo[column], id_hi[column]))
  train = _boxes(id_lo, id_hi, [{speed: interval} for interval in intervals], space.names)
  gap = box_difference(id_lo, id_hi, train)
  if not len(gap.lo):
    raise ValueError(
      f"train_speeds {intervals} leave no gap in [{id_lo[column]:g}, "
      f"{id_hi[column]:g}]; valid: intervals that do not cover the whole range"
    )
  return space.with_regions(train=train, gap=gap)


def with_holes(space: ParamSpace, train_holes: str | Sequence, speeds=("speed1", "speed2")):
  """`space` whose "train" excludes the `train_holes` boxes (a preset name, or a list of
  (v1 interval, v2 interval) pairs or {parameter: interval} mappings) and whose split "hole"
  draws only inside them."""
  holes = _preset(train_holes, HOLE_PRESETS, "train_holes")
  if not len(holes):
    raise ValueError("train_holes is empty; valid: a preset name or at least one hole")
  id_lo, id_hi = space.id_box
  boxes = []
  for hole in holes:
    hole = dict(hole) if isinstance(hole, Mapping) else dict(zip(speeds, hole, strict=True))
    for name, interval in hole.items():
      if name not in space.names:
        raise ValueError(f"train_holes parameter {name!r} is unknown; valid: {space.names}")
      column = space.names.index(name)
      _check_intervals(f"train_holes {name}", [interval], (id_lo[column], id_hi[column]))
    boxes.append(hole)
  hole_region = _boxes(id_lo, id_hi, boxes, space.names)
  for i in range(len(boxes)):
    for j in range(i):
      overlap = np.minimum(hole_region.hi[i], hole_region.hi[j]) - np.maximum(
        hole_region.lo[i], hole_region.lo[j]
      )
      if (overlap > 0).all():
        raise ValueError(f"train_holes {boxes[j]} and {boxes[i]} overlap; valid: disjoint holes")
  train = box_difference(id_lo, id_hi, hole_region)
  if not len(train.lo):
    raise ValueError(
      f"train_holes {list(holes)} leave no training data; valid: holes that "
      "leave part of the in-distribution range"
    )
  return space.with_regions(train=train, hole=hole_region)


def _preset(value, presets: Mapping[str, tuple], option: str):
  if isinstance(value, str):
    if value not in presets:
      raise ValueError(f"unknown {option} preset {value!r}; valid: {', '.join(presets)}")
    return presets[value]
  return value


def _check_intervals(option: str, intervals, bounds: tuple[float, float]) -> list[Interval]:
  """The intervals sorted, each within `bounds`, ordered low to high and disjoint, else a
  one-line ValueError naming the bad one."""
  lo_bound, hi_bound = float(bounds[0]), float(bounds[1])
  checked = []
  for interval in intervals:
    if len(interval) != 2:
      raise ValueError(f"{option} interval {interval!r} must be a pair (low, high)")
    lo, hi = float(interval[0]), float(interval[1])
    if not lo < hi:
      raise ValueError(
        f"{option} interval ({lo:g}, {hi:g}) is reversed or empty; valid: low < high"
      )
    if lo < lo_bound - 1e-9 or hi > hi_bound + 1e-9:
      raise ValueError(
        f"{option} interval ({lo:g}, {hi:g}) leaves the study's range; "
        f"valid: within [{lo_bound:g}, {hi_bound:g}]"
      )
    checked.append((lo, hi))
  if not checked:
    raise ValueError(f"{option} is empty; valid: at least one interval")
  checked.sort()
  for (_, first_hi), (second_lo, second_hi) in itertools.pairwise(checked):
    if second_lo < first_hi:
      raise ValueError(
        f"{option} intervals overlap at ({second_lo:g}, {min(first_hi, second_hi):g}); "
        "valid: disjoint intervals"
      )
  return checked


def _boxes(
  id_lo: np.ndarray, id_hi: np.ndarray, boxes: Sequence[Mapping[str, Interval]], names
) -> Region:
  """Boxes that span the ID range in every parameter they do not name."""
  lo = np.tile(id_lo, (len(boxes), 1)).astype(np.float64)
  hi = np.tile(id_hi, (len(boxes), 1)).astype(np.float64)
  for row, box in enumerate(boxes):
    for name, (a, b) in box.items():
      lo[row, names.index(name)], hi[row, names.index(name)] = a, b
  return Region(lo, hi)
