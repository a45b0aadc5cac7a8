"""A rater of PHYRE-like videos: the study's rollout types, judged as its human raters did.

The study's raters sorted rollouts of the combinatorial scene into (1) close to ground truth,
(2) different from ground truth but physically plausible and (3) obviously wrong, and reported
type 3 as the abnormal rate. `rate` does the same automatically. Plausibility is judged from the
generated video alone (its context frames being ground truth); only the type 1 / 2 split looks
at ground truth. `rates` gives a split's type rates, counts and per-check rates.

Parsing (`coverage_masks`): seeds are pixels clearly of one colour (RED, GRAY or BLACK of
`sims.phyre`); pixels near seeds are unmixed into the seeds' colours and white, so anti-aliased
and blurred edges count by their coverage and areas (coverage sums) survive blur. Objects
(regions) are the connected pixels of a colour that show it (`presence`), each owning the
coverage within _HALO pixels; touching objects of one colour are one region. In PHYRE nothing
leaves the frame (walls), objects start at rest, static bodies are black, dynamic ones gray and
the red ball red; in its plane objects hide each other only where they overlap.

Checks (type 3 when any is flagged; lengths in world units, the frame being 10 x 10; the
reference is the last context frame; see Thresholds):
- vanished / appeared: a colour's area (coverage sum) falls / rises from the reference by more
  than `vanish_fraction` / `appear_fraction` of the colour's smallest object there.
- deformed: a region's area matches no reference object's of its colour, nor a sum of them
  (touching objects are one region), within `area_fraction`. Regions, one of them unmatched,
  that together match one object replace it (touching objects that separate), so a body that
  breaks in place without losing area is missed.
- static_moved: black (static) farther than `static_distance` from the reference's black.
- interpenetrating: the reference's black deeper than `overlap_depth` inside drawn gray or red,
  or gray and black deeper than `overlap_depth` inside the red ball's disc (the reference's
  radius, fitted to the red of each frame; the red ball is drawn below everything).
- unphysical_motion: each red and gray region that is one object (area and extents, the
  sqrt(12 x eigenvalues) of its second moments, within `area_fraction` of one) is tracked from
  frame to frame (the mutual nearest, to where its last velocity takes it, within `max_step`
  and of the same size within `link_fraction`). Its centre's acceleration minus gravity must
  lie in the cone of contact normals (widened by PHYRE's friction) of the objects and walls
  within reach (`contact_distance` plus the distance it moved); the residual is the distance
  from that cone (world units / s^2), frame 0 starting at rest, and flags teleports, sudden
  stops and pushes without contact beyond `motion_residual` (plus `motion_per_pixel` x the
  pixel size).
- hovering: the same residual averaged over SUSTAINED_FRAMES frames (against the contacts of
  any of them) beyond `sustained_residual`: bodies frozen or held up in mid-air.
Type 1 against 2: the Hausdorff distance between the red and the gray objects of the generated
and the true frames after the context, largest over frames, within `close_distance`.

Calibration: `python -m benchmarks.rater_calibration` (70 templates, 16 frames, CUT = 6), its
JSON's type rates per resolution and condition (frozen: the 51 / 26 videos whose red ball moves
on after the cut; static_moved: those with static bodies; docs/data/rater_calibration.json):

    px   condition       videos  type 1  type 2  type 3
    64   truth               70  0.986   0.000   0.014
    64   8bit                70  0.986   0.000   0.014
    64   blur                70  0.986   0.000   0.014
    64   other_trial         70  0.000   0.986   0.014
    64   appeared            70  0.000   0.014   0.986
    64   vanished            70  0.000   0.000   1.000
    64   squashed            70  0.000   0.000   1.000
    64   static_moved        55  0.000   0.000   1.000
    64   passed_through      70  0.000   0.000   1.000
    64   frozen              51  0.020   0.157   0.824
    64   teleported          70  0.000   0.086   0.914
    128  truth               35  1.000   0.000   0.000
    128  8bit                35  1.000   0.000   0.000
    128  blur                35  1.000   0.000   0.000
    128  other_trial         35  0.000   1.000   0.000
    128  appeared            35  0.000   0.000   1.000
    128  vanished            35  0.000   0.000   1.000
    128  squashed            35  0.000   0.000   1.000
    128  static_moved        28  0.000   0.000   1.000
    128  passed_through      35  0.000   0.000   1.000
    128  frozen              26  0.038   0.231   0.731
    128  teleported          35  0.000   0.143   0.857
    256  truth               10  1.000   0.000   0.000
    256  8bit                10  1.000   0.000   0.000
    256  blur                10  1.000   0.000   0.000
    256  other_trial         10  0.000   1.000   0.000

The one truth video rated type 3 at 64 px (template 10041, "vanished"): in its last frame a gray
bar comes to rest on the black static bar, and the mixed pixels of the 1.3-pixel-thin bar on
black parse as black, so gray loses most of the bar's area.
"""

from __future__ import annotations

import dataclasses
import itertools
import math

import numpy as np
from scipy import ndimage, optimize, signal

from sims.core import WORLD_SIZE
from sims.phyre import BLACK, FRICTION, GRAVITY, GRAY, PHYSICS_HZ, RED, STEPS_PER_FRAME

CHECKS = (
  "vanished",
  "appeared",
  "deformed",
  "static_moved",
  "interpenetrating",
  "unphysical_motion",
  "hovering",
)
# The measure behind each check, per video the largest over objects and frames after the context.
MEASURES = {
  "vanished": "lost_fraction",  # of the colour's smallest object, area lost
  "appeared": "new_fraction",  # of the colour's smallest object, area gained
  "deformed": "shape_change",  # relative mismatch of a region's area or extents
  "static_moved": "static_moved_area",  # world units^2 of black off the reference's black
  "interpenetrating": "overlap_area",  # world units^2 of objects drawn deep inside others
  "unphysical_motion": "motion_residual",  # world units / s^2 beyond gravity and contacts
  "hovering": "sustained_residual",  # the same, averaged over SUSTAINED_FRAMES frames
}
TYPES = (1, 2, 3)
COLORS = ("red", "gray", "black")
RED_INDEX, GRAY_INDEX, BLACK_INDEX = range(3)
_INK = 1.0 - np.asarray([RED, GRAY, BLACK], np.float32)  # white minus colour [colour, rgb]
_INK_SQUARED = np.sum(_INK**2, -1)
# Anti-aliasing and mild blur spread an object's colour this many pixels beyond its seeds.
_HALO = 2
# The smallest area (pixels) that counts at any resolution: at 32 x 32, min_area is half a
# pixel, and a blurred edge pixel would count as a region.
_MIN_PIXELS = 2.0
# Up to this many objects of a colour, touching objects are matched by sums of their areas.
_MAX_SUMMED = 10
# Frames over which an acceleration is averaged to find a body held up (or pushed) by nothing.
SUSTAINED_FRAMES = 4
# Contact normals are merged into this many directions.
_NORMAL_BINS = 32
# The simulator's displacement per frame under gravity from rest, and its second difference per
# frame, in multiples of GRAVITY (semi-implicit Euler over STEPS_PER_FRAME steps of 1 / HZ s).
_FALL_FROM_REST = STEPS_PER_FRAME * (STEPS_PER_FRAME + 1) / 2 / PHYSICS_HZ**2
_FALL_PER_FRAME = (STEPS_PER_FRAME / PHYSICS_HZ) ** 2


def _mixture(
  colors: tuple[int, ...], white: bool
) -> tuple[tuple[int, ...], np.ndarray, np.ndarray]:
  """A mixture of object colours (with white or without): its colours and the affine map
  (matrix [rgb, colour], offset [colour]) from a pixel's ink to its least-squares coverage."""
  matrix, offset = np.zeros((3, 3), np.float32), np.zeros(3, np.float32)
  if white:
    matrix[:, colors] = np.linalg.pinv(_INK[list(colors)].T).T
  else:  # a segment between two colours: coverage 1 - t and t
    first, second = colors
    step = (_INK[second] - _INK[first]) / np.sum((_INK[second] - _INK[first]) ** 2)
    matrix[:, first], matrix[:, second] = -step, step
    offset[first], offset[second] = 1.0 + _INK[first] @ step, -(_INK[first] @ step)
  return colors, matrix, offset


# The mixtures a pixel may show: white with one colour, white with red and gray or black, and
# gray with black (whose inks differ by only 11 degrees, too little to unmix with white as well).
_MIXTURES = [
  _mixture((RED_INDEX,), True),
  _mixture((GRAY_INDEX,), True),
  _mixture((BLACK_INDEX,), True),
  _mixture((RED_INDEX, GRAY_INDEX), True),
  _mixture((RED_INDEX, BLACK_INDEX), True),
  _mixture((GRAY_INDEX, BLACK_INDEX), False),
]
# Connects pixels within a frame only (axes: frame, row, column).
_IN_FRAME = np.zeros((3, 3, 3), bool)
_IN_FRAME[1] = ndimage.generate_binary_structure(2, 2)


@dataclasses.dataclass(frozen=True)
class Thresholds:
  """Parsing cut-offs and the checks' thresholds. Lengths are world units (the frame is 10 x 10),
  areas world units^2, so they mean the same at every resolution."""

  color_tolerance: float = 0.15
  """Largest RGB distance of a pixel from the mixture that explains it (anti-aliasing, blur and
  a model's slightly-off colours stay well within it; other colours belong to no object)."""
  min_coverage: float = 0.1
  """Coverage below which a pixel is empty: noise on white (clipped to [0, 1], so it only ever
  adds ink) stays below it."""
  presence: float = 0.3
  """Coverage from which a pixel shows its colour: seeds of parsing, regions and distances."""
  min_area: float = 0.05
  """Smallest area that counts (a region, an overlap, a moved static region): 0.4 of a static
  ball's, 2 pixels at 64 x 64 (and never less than 2 pixels)."""
  vanish_fraction: float = 0.5
  """Largest loss of a colour's area, as a fraction of its smallest object's."""
  appear_fraction: float = 0.5
  """Largest gain of a colour's area, as a fraction of its smallest object's."""
  area_fraction: float = 0.3
  """Largest relative mismatch of a region's area with its objects' that is not a change of
  shape; also of area and extents for a region to count as one object (tracking)."""
  link_fraction: float = 0.15
  """Largest mismatch of area and extents between a tracked region and its continuation in the
  next frame: a body's drawn area barely changes from one frame to the next, while touching
  objects that separate (a region within area_fraction of one object, then that object alone)
  change it by more and would fake an acceleration of the region's centre."""
  extent_floor: float = 0.6
  """Extents are compared relative to at least this length (a bar's thickness blurs)."""
  static_distance: float = 0.2
  """Black this far from the reference's black means a static object moved."""
  overlap_depth: float = 0.12
  """Overlaps up to this deep are contacts (the simulator's rest within ~0.1), deeper ones
  interpenetrations."""
  max_step: float = 2.0
  """Farthest a region's centre may move in a frame and be tracked (a fall across the scene
  moves under 1.7)."""
  contact_distance: float = 0.2
  """Gap up to which another object or a wall may touch a region, besides the distance the
  region moves in the adjacent frames (contacts happen between frames)."""
  motion_residual: float = 2.0
  """Largest acceleration (world units / s^2) beyond what gravity and contacts explain, plus
  motion_per_pixel: a shift by 0.8 leaves 7.2, a ball falling at 1 / s that stops in mid-air 3
  and then GRAVITY (1.15) each frame."""
  motion_per_pixel: float = 12.0
  """Allowance (1 / s^2) per world unit of pixel size: centres of thin bars and small balls
  wobble by a fraction of a pixel, magnified by 1 / FRAME_DT^2 = 9 / s^2."""
  sustained_residual: float = 0.5
  """Largest such acceleration averaged over SUSTAINED_FRAMES frames, plus motion_per_pixel /
  SUSTAINED_FRAMES per world unit of pixel size: a body frozen in mid-air leaves GRAVITY."""
  close_distance: float = 0.5
  """Largest Hausdorff distance of a type 1 rollout's red and gray objects from ground truth's."""


def rate(
  truth: np.ndarray,
  generated: np.ndarray,
  context_frames: int,
  thresholds: Thresholds = Thresholds(),
) -> dict[str, np.ndarray]:
  """Rollout types of generated videos, [n, T, H, H, 3] in [0, 1], beside their ground truth.

  Returns "type" (int [n]: 1, 2 or 3), "plausible" (bool [n]), a bool [n] per name in CHECKS,
  a float [n] per measure in MEASURES and "truth_distance" (float [n], world units). The first
  `context_frames` frames are ground truth; plausibility never reads `truth`.
  """
  truth, generated = _check(truth, generated, context_frames)
  pixel = WORLD_SIZE / truth.shape[2]
  min_area = max(thresholds.min_area, _MIN_PIXELS * pixel**2)
  per_video = []
  for true_video, generated_video in zip(truth, generated, strict=True):
    masks = coverage_masks(generated_video, thresholds)
    measures = _plausibility(masks, context_frames, thresholds, min_area)
    true_masks = coverage_masks(true_video[context_frames:], thresholds)
    measures["truth_distance"] = _truth_distance(
      true_masks, masks[:, context_frames:], thresholds, min_area
    )
    per_video.append(measures)
  names = (*MEASURES.values(), "truth_distance")
  report = {name: np.asarray([m[name] for m in per_video], np.float64) for name in names}
  limits = {
    "vanished": thresholds.vanish_fraction,
    "appeared": thresholds.appear_fraction,
    "deformed": thresholds.area_fraction,
    "static_moved": min_area,
    "interpenetrating": min_area,
    "unphysical_motion": thresholds.motion_residual + thresholds.motion_per_pixel * pixel,
    "hovering": thresholds.sustained_residual
    + thresholds.motion_per_pixel * pixel / SUSTAINED_FRAMES,
  }
  for check, measure in MEASURES.items():
    report[check] = report[measure] > limits[check]
  report["plausible"] = ~np.any([report[check] for check in CHECKS], axis=0)
  close = report["truth_distance"] <= thresholds.close_distance
  report["type"] = np.where(report["plausible"], np.where(close, 1, 2), 3)
  return report


def rates(report: dict[str, np.ndarray]) -> dict[str, float]:
  """A split's numbers from `rate` reports of its videos: "videos", "type{k}_count" and
  "type{k}_rate" for each type, and "{check}_rate" (fraction of videos flagged) per check."""
  videos = len(report["type"])
  if videos == 0:
    raise ValueError("rates need at least one rated video, got 0")
  numbers: dict[str, float] = {"videos": videos}
  for kind in TYPES:
    count = int(np.sum(report["type"] == kind))
    numbers[f"type{kind}_count"] = count
    numbers[f"type{kind}_rate"] = count / videos
  for check in CHECKS:
    numbers[f"{check}_rate"] = float(np.mean(report[check]))
  return numbers


def _check(
  truth: np.ndarray, generated: np.ndarray, context_frames: int
) -> tuple[np.ndarray, np.ndarray]:
  """Both videos as float32, after checking shapes, context_frames and the value range."""
  truth, generated = np.asarray(truth, np.float32), np.asarray(generated, np.float32)
  shape = truth.shape
  if len(shape) != 5 or shape[-1] != 3 or shape[2] != shape[3] or 0 in shape:
    raise ValueError(f"truth must be [n, T, H, H, 3] (square, non-empty frames), got {shape}")
  if generated.shape != shape:
    raise ValueError(f"generated must have truth's shape {shape}, got {generated.shape}")
  if not 1 <= context_frames < shape[1]:
    raise ValueError(
      f"context_frames must be in [1, {shape[1] - 1}] (T = {shape[1]}), got {context_frames}"
    )
  for name, video in (("truth", truth), ("generated", generated)):
    if not np.all((video >= 0.0) & (video <= 1.0)):
      raise ValueError(f"{name} must lie in [0, 1], got [{np.min(video)}, {np.max(video)}]")
  return truth, generated


def coverage_masks(frames: np.ndarray, thresholds: Thresholds = Thresholds()) -> np.ndarray:
  """Coverage [3, ..., H, W] of each pixel of frames [..., H, W, 3] by red, gray and black.

  Seeds are pixels whose nearest white-to-colour segment is within `color_tolerance` and at
  least `presence` of the way to the colour (gray not next to black seeds: light gray and the
  faint edge of black differ only in tint). A pixel within _HALO pixels of seeds is unmixed into
  their colours by the nearest of the _MIXTURES they allow; other pixels, pixels farther than
  `color_tolerance` from every allowed mixture and coverage below `min_coverage` are empty.
  """
  frames = np.asarray(frames, np.float32)
  shape = frames.shape[:-1]
  leading = (1,) * (len(shape) - 2)  # filter sizes of the axes before rows and columns
  rgb = frames.reshape(-1, 3)
  # Seeds need about `presence` of gray's ink (the faintest colour's); only those are tested.
  brightness = rgb[:, 0] + rgb[:, 1] + rgb[:, 2]
  candidates = np.flatnonzero(brightness <= 3.0 - thresholds.presence * _INK[GRAY_INDEX].sum())
  ink = 1.0 - rgb[candidates].T  # [rgb, candidate]
  dots = _INK @ ink  # [colour, candidate]
  along = dots / _INK_SQUARED[:, None]
  off_line = np.where(along > 0.0, np.sum(ink**2, 0) - along * dots, np.inf)
  nearest = np.argmin(off_line, 0)
  pick = (nearest, np.arange(len(candidates)))
  seed_color = np.full(len(rgb), -1)
  seed_color[candidates] = np.where(
    (along[pick] >= thresholds.presence) & (off_line[pick] <= thresholds.color_tolerance**2),
    nearest,
    -1,
  )
  seeds = [(seed_color == color).reshape(shape) for color in range(len(COLORS))]
  seeds[GRAY_INDEX] &= ~ndimage.maximum_filter(seeds[BLACK_INDEX], size=(*leading, 3, 3))
  window = (*leading, 2 * _HALO + 1, 2 * _HALO + 1)
  near = np.stack([ndimage.maximum_filter(seed, size=window).ravel() for seed in seeds])
  pixels = np.flatnonzero(near.any(0))
  ink, near = 1.0 - rgb[pixels].T, near[:, pixels]
  best = np.full(len(pixels), thresholds.color_tolerance**2, np.float32)
  coverage = np.zeros((len(COLORS), len(pixels)), np.float32)
  for colors, matrix, offset in _MIXTURES:
    fit = np.clip(matrix.T @ ink + offset[:, None], 0.0, 1.0)
    residual = np.sum((ink - _INK.T @ fit) ** 2, 0)
    better = near[list(colors)].all(0) & (residual < best)
    best = np.where(better, residual, best)
    coverage = np.where(better, fit, coverage)
  masks = np.zeros((len(COLORS), math.prod(shape)), np.float32)
  masks[:, pixels] = np.where(coverage >= thresholds.min_coverage, coverage, 0.0)
  return masks.reshape(len(COLORS), *shape)


@dataclasses.dataclass(frozen=True)
class _Regions:
  """The regions of one colour in a video (those of at least min_area), indexed 0..m-1.

  pixels [T, H, W]: the index of the region each pixel shows, -1 for none; frame [m]; area [m]
  (world units^2, coverage within _HALO pixels); centre [m, 2] (world units, down and right);
  extent [m, 2] (sqrt(12 x eigenvalues of the second moments), largest first).
  """

  pixels: np.ndarray
  frame: np.ndarray
  area: np.ndarray
  centre: np.ndarray
  extent: np.ndarray

  def in_frame(self, frame: int) -> np.ndarray:
    return np.flatnonzero(self.frame == frame)


def _regions(coverage: np.ndarray, present: np.ndarray, pixel: float, min_area: float) -> _Regions:
  """The regions of one colour's coverage [T, H, W], `present` where it shows."""
  labels, count = ndimage.label(present, structure=_IN_FRAME)
  cells = np.zeros_like(labels)
  for frame in np.flatnonzero(present.any((1, 2))):
    distance, (rows, cols) = ndimage.distance_transform_edt(~present[frame], return_indices=True)
    cells[frame] = np.where(distance <= _HALO, labels[frame][rows, cols], 0)
  frames, rows, cols = np.indices(cells.shape)
  y, x = (rows + 0.5) * pixel, (cols + 0.5) * pixel
  weights = np.where(cells > 0, coverage, 0.0).ravel()
  flat = cells.ravel()

  def total(values):
    return np.bincount(flat, weights * values.ravel(), count + 1)[1:]

  mass = np.maximum(total(np.ones_like(y)), 1e-12)
  mean_y, mean_x = total(y) / mass, total(x) / mass
  var_y = total(y * y) / mass - mean_y**2
  var_x = total(x * x) / mass - mean_x**2
  cov = total(y * x) / mass - mean_y * mean_x
  spread = np.sqrt(np.maximum(0.25 * (var_y - var_x) ** 2 + cov**2, 0.0))
  eigen = np.stack([0.5 * (var_y + var_x) + spread, 0.5 * (var_y + var_x) - spread], -1)
  frame_of = np.zeros(count + 1, np.int64)
  frame_of[labels.ravel()] = frames.ravel()
  area = mass * pixel**2
  keep = np.flatnonzero(area >= min_area)
  index = np.full(count + 1, -1)
  index[keep + 1] = np.arange(len(keep))
  return _Regions(
    pixels=np.where(present, index[labels], -1),
    frame=frame_of[1:][keep],
    area=area[keep],
    centre=np.stack([mean_y, mean_x], -1)[keep],
    extent=np.sqrt(12.0 * np.maximum(eigen, 0.0))[keep],
  )


def _plausibility(
  masks: np.ndarray, context_frames: int, thresholds: Thresholds, min_area: float
) -> dict[str, float]:
  """The MEASURES of one generated video from its coverage masks [3, T, H, W]."""
  pixel = WORLD_SIZE / masks.shape[-1]
  present = masks >= thresholds.presence
  regions = [_regions(masks[c], present[c], pixel, min_area) for c in range(len(COLORS))]
  explained = [_explain(region, context_frames - 1, thresholds) for region in regions]
  motion = [
    _motion_residuals(regions[c], explained[c][1], present, context_frames, thresholds)
    for c in (RED_INDEX, GRAY_INDEX)
  ]
  reference = context_frames - 1
  after = slice(context_frames, None)
  areas = masks.sum((2, 3)) * pixel**2  # [colour, T]
  smallest = _smallest_objects(regions, reference, min_area)
  change = (areas[:, after] - areas[:, reference : reference + 1]) / smallest[:, None]
  return {
    "lost_fraction": float(max(-change.min(), 0.0)),
    "new_fraction": float(max(change.max(), 0.0)),
    "shape_change": max(
      float(np.max(mismatch[region.frame >= context_frames], initial=0.0))
      for region, (mismatch, _) in zip(regions, explained, strict=True)
    ),
    "static_moved_area": _static_moved_area(masks, present, reference, after, thresholds),
    "overlap_area": _overlap_area(masks, present, areas, reference, after, thresholds, min_area),
    "motion_residual": max(residual[0] for residual in motion),
    "sustained_residual": max(residual[1] for residual in motion),
  }


def _smallest_objects(regions: list[_Regions], reference: int, min_area: float) -> np.ndarray:
  """Area [colour] of each colour's smallest object in the reference frame; for a colour with
  none, the smallest object of any colour (min_area if there is none)."""
  smallest = np.asarray(
    [np.min(r.area[r.frame == reference], initial=np.inf) for r in regions], np.float64
  )
  fallback = np.min(smallest) if np.isfinite(smallest).any() else min_area
  return np.where(np.isfinite(smallest), smallest, fallback)


def _explain(
  regions: _Regions, reference: int, thresholds: Thresholds
) -> tuple[np.ndarray, np.ndarray]:
  """Each region's smallest relative mismatch [m] of its area with an object's or a sum of
  objects' of its colour (touching objects are one region), and whether it is one object
  (single [m] bool: area and extents within area_fraction). The objects start as the reference
  frame's regions; regions of a frame, one of them unmatched, whose areas sum to one object's
  replace it (touching objects that separate), the closest sum first."""
  objects = list(regions.in_frame(reference))
  mismatch = np.zeros(len(regions.frame))
  single = np.zeros(len(regions.frame), bool)
  if not objects:
    return mismatch, single
  for frame in np.unique(regions.frame):
    ids = regions.in_frame(frame)
    alone = _mismatch(
      regions.area[ids, None],
      regions.extent[ids, None],
      regions.area[objects],
      regions.extent[objects],
      thresholds,
    ).min(-1)
    single[ids] = alone <= thresholds.area_fraction
    mismatch[ids] = _sum_mismatch(regions.area[ids], regions.area[objects])
    unmatched = set(ids[mismatch[ids] > thresholds.area_fraction])
    splits = [parts for parts in _subsets(list(ids), minimum=2) if unmatched & set(parts)]
    if not splits:
      continue
    sums = np.asarray([regions.area[list(parts)].sum() for parts in splits])
    whole = np.abs(sums[:, None] - regions.area[objects]) / regions.area[objects]
    split, replaced = np.unravel_index(np.argmin(whole), whole.shape)
    if whole[split, replaced] <= thresholds.area_fraction:
      objects.pop(int(replaced))
      objects += splits[split]
      parts = list(splits[split])
      mismatch[parts], single[parts] = whole[split, replaced], True
  return mismatch, single


def _subsets(items: list, minimum: int) -> list[tuple]:
  """Subsets of at least `minimum` items, none if there are more than _MAX_SUMMED items."""
  if len(items) > _MAX_SUMMED:
    return []
  return [
    subset
    for size in range(minimum, len(items) + 1)
    for subset in itertools.combinations(items, size)
  ]


def _sum_mismatch(area: np.ndarray, object_area: np.ndarray) -> np.ndarray:
  """Smallest relative mismatch of areas [r] with an object's area or a sum of them [k]."""
  sums = [sum(subset) for subset in _subsets(list(object_area), minimum=2)]
  sums = np.asarray([*object_area, *sums])
  return (np.abs(area[:, None] - sums) / sums).min(-1)


def _static_moved_area(
  masks: np.ndarray, present: np.ndarray, reference: int, after: slice, thresholds: Thresholds
) -> float:
  """Largest region (world units^2) of black after the context far from the reference's."""
  pixel = WORLD_SIZE / masks.shape[-1]
  black = present[BLACK_INDEX, reference]
  if black.any():
    distance = ndimage.distance_transform_edt(~black) * pixel
  else:
    distance = np.full(black.shape, np.inf)
  moved = present[BLACK_INDEX, after] & (distance > thresholds.static_distance)
  return _largest_region(masks[BLACK_INDEX, after], moved, pixel)


def _overlap_area(
  masks: np.ndarray,
  present: np.ndarray,
  areas: np.ndarray,
  reference: int,
  after: slice,
  thresholds: Thresholds,
  min_area: float,
) -> float:
  """Largest area (world units^2) of an object drawn deeper than overlap_depth inside another:
  the reference's black (static, so still there) under gray or red, or gray and black inside
  the red ball's disc."""
  pixel = WORLD_SIZE / masks.shape[-1]
  inside = ndimage.distance_transform_edt(present[BLACK_INDEX, reference]) * pixel
  covered = (
    (inside > thresholds.overlap_depth)
    & ~present[BLACK_INDEX, after]
    & (present[RED_INDEX, after] | present[GRAY_INDEX, after])
  )
  black_under = _largest_region(
    np.broadcast_to(masks[BLACK_INDEX, reference], covered.shape), covered, pixel
  )
  red_frames = np.flatnonzero(areas[RED_INDEX] >= min_area)
  red_frames = red_frames[red_frames >= after.start]
  if areas[RED_INDEX, reference] < min_area or len(red_frames) == 0:
    return black_under
  radius = math.sqrt(areas[RED_INDEX, reference] / math.pi) / pixel
  deep = _red_ball_overlap(masks[:, red_frames], radius, thresholds.overlap_depth / pixel)
  return max(black_under, float(deep.max()) * pixel**2)


def _motion_residuals(
  regions: _Regions,
  single: np.ndarray,
  present: np.ndarray,
  context_frames: int,
  thresholds: Thresholds,
) -> tuple[float, float]:
  """Largest accelerations (world units / s^2) of tracked regions that are one object
  (`single`), after the context, that gravity and contacts do not explain: in one frame, and
  averaged over SUSTAINED_FRAMES consecutive frames (against the contacts of any of them).
  Frame 0 starts at rest."""
  pixel = WORLD_SIZE / present.shape[-1]
  following = _links(regions, single, thresholds)
  preceding = np.full(len(following), -1)
  preceding[following[following >= 0]] = np.flatnonzero(following >= 0)
  shows = present.any(0)
  excess, normals = {}, {}  # per region with a continuation (and a past or frame 0)
  for region in np.flatnonzero(following >= 0):
    frame, after, before = regions.frame[region], following[region], preceding[region]
    centre = regions.centre
    if frame == 0:
      acceleration = (centre[after] - centre[region]) / _FALL_FROM_REST
      moved = np.linalg.norm(centre[after] - centre[region])
    elif before >= 0:
      acceleration = (centre[after] - 2 * centre[region] + centre[before]) / _FALL_PER_FRAME
      moved = max(
        np.linalg.norm(centre[after] - centre[region]),
        np.linalg.norm(centre[region] - centre[before]),
      )
    else:
      continue
    own = regions.pixels[frame] == region
    reach = (thresholds.contact_distance + moved) / pixel
    normals[region] = _contact_normals(own, shows[frame] & ~own, reach)
    excess[region] = acceleration - np.asarray([GRAVITY, 0.0])
  judged = [region for region in excess if regions.frame[region] >= context_frames - 1]
  frame_residual = max(
    (_cone_distance(excess[region], normals[region]) for region in judged), default=0.0
  )
  sustained_residual = 0.0
  for region in judged:
    window = [region]
    while len(window) < SUSTAINED_FRAMES and following[window[-1]] in excess:
      window.append(following[window[-1]])
    if len(window) == SUSTAINED_FRAMES:
      mean = np.mean([excess[r] for r in window], 0)
      together = np.concatenate([normals[r] for r in window])
      sustained_residual = max(sustained_residual, _cone_distance(mean, together))
  return frame_residual, sustained_residual


def _links(regions: _Regions, single: np.ndarray, thresholds: Thresholds) -> np.ndarray:
  """For each region that is one object (`single`), its continuation in the next frame (-1 for
  none): the mutual nearest, to where the region heads at its last velocity, of the next
  frame's single regions within max_step that match its area and extents within
  link_fraction."""
  following = np.full(len(regions.frame), -1)
  preceding = np.full(len(regions.frame), -1)
  for frame in np.unique(regions.frame):
    now, then = regions.in_frame(frame), regions.in_frame(frame + 1)
    now, then = now[single[now]], then[single[then]]
    if len(now) == 0 or len(then) == 0:
      continue
    velocity = np.where(
      (preceding[now] >= 0)[:, None],
      regions.centre[now] - regions.centre[preceding[now]],
      0.0,
    )
    heading = regions.centre[now] + velocity
    distance = np.linalg.norm(heading[:, None] - regions.centre[None, then], axis=-1)
    mismatch = _mismatch(
      regions.area[now, None],
      regions.extent[now, None],
      regions.area[then],
      regions.extent[then],
      thresholds,
    )
    distance = np.where(mismatch <= thresholds.link_fraction, distance, np.inf)
    nearest, nearest_back = distance.argmin(1), distance.argmin(0)
    for row, col in enumerate(nearest):
      if nearest_back[col] == row and distance[row, col] <= thresholds.max_step:
        following[now[row]], preceding[then[col]] = then[col], now[row]
  return following


def _mismatch(
  area: np.ndarray,
  extent: np.ndarray,
  object_area: np.ndarray,
  object_extent: np.ndarray,
  thresholds: Thresholds,
) -> np.ndarray:
  """Relative mismatch (broadcast) of regions' areas and extents [..., 2] with objects'."""
  area_change = np.abs(area - object_area) / object_area
  extent_change = np.abs(extent - object_extent) / np.maximum(
    object_extent, thresholds.extent_floor
  )
  return np.maximum(area_change, extent_change.max(-1))


def _contact_normals(own: np.ndarray, other: np.ndarray, reach: float) -> np.ndarray:
  """Unit normals [m, 2] (down, right) of the pushes that other pixels and the walls within
  `reach` pixels of the `own` pixels [H, W] can exert on them, merged into _NORMAL_BINS
  directions."""
  height, width = own.shape
  rows, cols = np.nonzero(own)
  margin = math.ceil(reach) + 1
  top, left = max(rows.min() - margin, 0), max(cols.min() - margin, 0)
  bottom, right = rows.max() + margin + 1, cols.max() + margin + 1
  box = (slice(top, bottom), slice(left, right))
  distance, (near_rows, near_cols) = ndimage.distance_transform_edt(~own[box], return_indices=True)
  touching = other[box] & (distance <= reach) & (distance > 0)
  at_rows, at_cols = np.nonzero(touching)
  vectors = [
    np.stack([near_rows[touching] - at_rows, near_cols[touching] - at_cols], -1).astype(float)
  ]
  walls = (
    (rows.min() + 0.5 <= reach, (1.0, 0.0)),
    (height - 0.5 - rows.max() <= reach, (-1.0, 0.0)),
    (cols.min() + 0.5 <= reach, (0.0, 1.0)),
    (width - 0.5 - cols.max() <= reach, (0.0, -1.0)),
  )
  vectors.append(np.asarray([normal for near, normal in walls if near], float).reshape(-1, 2))
  vectors = np.concatenate(vectors)
  if len(vectors) == 0:
    return vectors
  vectors /= np.linalg.norm(vectors, axis=-1, keepdims=True)
  angle = np.arctan2(vectors[:, 1], vectors[:, 0])
  bins = np.floor((angle + math.pi) / (2 * math.pi) * _NORMAL_BINS).astype(int) % _NORMAL_BINS
  merged = np.stack([np.bincount(bins, vectors[:, axis], _NORMAL_BINS) for axis in (0, 1)], -1)
  merged = merged[np.linalg.norm(merged, axis=-1) > 0]
  return merged / np.linalg.norm(merged, axis=-1, keepdims=True)


def _cone_distance(vector: np.ndarray, normals: np.ndarray) -> float:
  """Distance of `vector` from the cone of pushes along `normals` [m, 2] with PHYRE's friction
  (each normal widened by FRICTION along its tangent); its length where there are none."""
  if len(normals) == 0:
    return float(np.linalg.norm(vector))
  tangents = np.stack([-normals[:, 1], normals[:, 0]], -1)
  generators = np.concatenate([normals + FRICTION * tangents, normals - FRICTION * tangents])
  _, residual = optimize.nnls(generators.T, vector)
  return float(residual)


def _truth_distance(
  true_masks: np.ndarray, masks: np.ndarray, thresholds: Thresholds, min_area: float
) -> float:
  """Largest Hausdorff distance (world units) between the red objects, and between the gray
  objects, of generated and true frames (masks [3, T, H, W]); inf where one has none."""
  pixel = WORLD_SIZE / masks.shape[-1]
  largest = 0.0
  for color in (RED_INDEX, GRAY_INDEX):
    shown = []
    for video in (true_masks, masks):
      present = video[color] >= thresholds.presence
      shown.append(_regions(video[color], present, pixel, min_area).pixels >= 0)
    for true_frame, frame in zip(*shown, strict=True):
      if true_frame.any() != frame.any():
        return math.inf
      if frame.any():
        for source, target in ((true_frame, frame), (frame, true_frame)):
          largest = max(largest, float(ndimage.distance_transform_edt(~target)[source].max()))
  return largest * pixel


def _largest_region(mass: np.ndarray, region: np.ndarray, pixel: float) -> float:
  """Largest coverage (world units^2) of a connected in-frame region of `region` [T, H, W]."""
  labels, count = ndimage.label(region, structure=_IN_FRAME)
  if count == 0:
    return 0.0
  return float(np.bincount(labels.ravel(), mass.ravel())[1:].max() * pixel**2)


def _red_ball_overlap(masks: np.ndarray, radius: float, depth: float) -> np.ndarray:
  """Gray and black coverage [T] deeper than `depth` pixels inside the disc of `radius` pixels
  that best explains the red in each frame of masks [3, T, H, W] (its centre refined by a
  parabola through the scores of the neighbouring centres)."""
  # Work on the box around every frame's red pixels that holds the discs.
  margin = math.ceil(radius) + 2
  (top, bottom), (left, right) = (
    (max(np.min(index) - margin, 0), np.max(index) + margin + 1)
    for index in np.nonzero(masks[RED_INDEX].any(0))
  )
  box = masks[:, :, top:bottom, left:right]
  occluders = box[GRAY_INDEX] + box[BLACK_INDEX]
  offsets = np.arange(-math.ceil(radius) - 1, math.ceil(radius) + 2)
  disc = np.clip(radius + 0.5 - np.hypot(offsets[:, None], offsets[None, :]), 0.0, 1.0)
  red, occluded = (
    signal.fftconvolve(image, disc[None], mode="same", axes=(1, 2))
    for image in (box[RED_INDEX], occluders)
  )
  # Of the discs that cover nearly all the red they can, the one most occluded (a ball behind a
  # bar shows only part of itself); red counts twice as much as occluders.
  score = red + 0.5 * occluded
  num_frames, height, width = score.shape
  covering = red >= 0.9 * red.reshape(num_frames, -1).max(-1)[:, None, None]
  frames = np.arange(num_frames)
  best = np.where(covering, score, -np.inf).reshape(num_frames, -1).argmax(-1)
  rows, cols = np.divmod(best, width)
  at = score[frames, rows, cols]
  centre = np.stack([rows, cols], -1).astype(np.float64)
  for axis, (row_step, col_step) in enumerate(((1, 0), (0, 1))):
    before = score[frames, np.maximum(rows - row_step, 0), np.maximum(cols - col_step, 0)]
    after = score[
      frames, np.minimum(rows + row_step, height - 1), np.minimum(cols + col_step, width - 1)
    ]
    curvature = np.minimum(before - 2.0 * at + after, -1e-9)
    centre[:, axis] += np.clip(0.5 * (before - after) / curvature, -0.5, 0.5)
  grid_rows, grid_cols = np.indices((height, width))
  squared = (grid_rows - centre[:, :1, None]) ** 2 + (grid_cols - centre[:, 1:, None]) ** 2
  return np.where(squared <= max(radius - depth, 0.0) ** 2, occluders, 0.0).sum((1, 2))
