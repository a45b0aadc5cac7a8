"""Abnormal rate of PHYRE-like videos: physically implausible events, judged against ground truth.

The study's raters flagged a generated video of the combinatorial scene abnormal when objects
vanished or appeared, changed shape, passed through each other or, being static, moved. This
module parses objects out of frames by colour and compares each generated frame after the
context with the ground-truth frame of the same time (which has the same occlusions); it also
flags a red ball that leaves the simulator's trajectory. `abnormal` gives per-video flags and
measures, `abnormal_rate` the fraction of videos per flag.

Parsing (`coverage_masks`): seeds are pixels clearly of one colour (RED, GRAY or BLACK of
`sims.phyre`); pixels near seeds are unmixed into the seeds' colours and white, so anti-aliased
and blurred edges count by their coverage and areas (coverage sums) survive blur. Objects are the
connected regions of a colour; touching objects of one colour are one object.

Checks (lengths in world units, the frame being 10 x 10; see Thresholds):
- vanished: a ground-truth object's cell (the pixels nearer to it than to other objects of its
  colour, within `match_distance`) holds under 1 - `vanish_fraction` of its area in generated
  coverage; appeared: over `appear_fraction` of a generated object lies farther than
  `match_distance` from its colour in ground truth.
- shape_changed: an object's cell holds generated coverage off its area by more than
  `area_fraction` (and `min_area`). Occluded parts count as present.
- passed_through: the red ball's disc (ground truth's radius, fitted to the generated red) is
  covered deeper than `overlap_depth` more than in ground truth, or ground truth's gray or black
  is drawn red or gray where ground truth has neither within `overlap_depth`.
- static_moved: black farther than `static_distance` from ground truth's black.
- off_trajectory: the red ball's centre farther than `trajectory_distance` from ground truth's.

Calibration, 70 rollouts (one per template, 16 frames, 1 context frame) at 64 px: ground truth
against itself scores 0 %, also after 8-bit rounding, Gaussian blur (sigma 0.5 px), noise (std
0.02) and all three (also blur 0.75 px or noise 0.03 alone; blur 1 px: 10 %); the same at 128
and 256 px. At 32 px PHYRE's bars are under a pixel thick: 8-bit rounding scores 0 %, blur and
noise do not (13 % and 6 %). Corruptions from frame 8 on, flagged in their category at 64 px:
red ball hidden 100 %, a dynamic object hidden 89 % (the rest, touching objects of its colour,
as shape changes), a gray ball added 100 %, red ball 1.5 times the radius 100 %, a dynamic object
squashed 80 %, a static object moved by 0.5 100 %, the red ball moved into a gray box 80 % (95 %
where the box leaves it visible; drawn over the box 100 %), shifted by 1 100 %, frozen 54 %
(100 % where it would move on), blank and noise frames 100 %. A 64 x 64 x 32 video takes ~40 ms,
256 x 256 x 32 ~0.8 s.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
from scipy import ndimage, signal

from sims.core import WORLD_SIZE
from sims.phyre import BLACK, GRAY, RED

FLAGS = (
  "vanished",
  "appeared",
  "shape_changed",
  "passed_through",
  "static_moved",
  "off_trajectory",
)
# Diagnostic numbers per video, each the largest over the objects and frames after the context.
MEASURES = (
  "lost_fraction",  # of a ground-truth object's area, missing from the generated frame
  "new_fraction",  # of a generated object's area, far from its colour in ground truth
  "area_change",  # relative change of an object's area (objects not lost)
  "overlap_area",  # world units^2 of objects drawn through each other
  "static_moved_area",  # world units^2: region of black off ground truth's black
  "red_distance",  # world units: distance of the red ball's centre from ground truth's
)
COLORS = ("red", "gray", "black")
RED_INDEX, GRAY_INDEX, BLACK_INDEX = range(3)
_INK = 1.0 - np.asarray([RED, GRAY, BLACK], np.float32)  # white minus colour [colour, rgb]
_INK_SQUARED = np.sum(_INK**2, -1)
# Anti-aliasing and mild blur spread an object's colour this many pixels beyond its seeds.
_HALO = 2
# The smallest area (pixels) that counts at any resolution: at 32 x 32, min_area is half a
# pixel, and a blurred edge pixel would count as a region.
_MIN_PIXELS = 2.0


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
  """Parsing cut-offs and abnormality thresholds. Lengths are world units (the frame is 10 x 10),
  areas world units^2, so they mean the same at every resolution."""

  color_tolerance: float = 0.15
  """Largest RGB distance of a pixel from the mixture that explains it (anti-aliasing, blur and
  a model's slightly-off colours stay well within it; other colours belong to no object)."""
  min_coverage: float = 0.1
  """Coverage below which a pixel is empty: noise on white (clipped to [0, 1], so it only ever
  adds ink) stays below it."""
  presence: float = 0.3
  """Coverage from which a pixel shows its colour: seeds of parsing, connected regions and
  distances."""
  min_area: float = 0.05
  """Smallest area that counts (an object, a covered region, a moved static region; the change
  of an object's area): 0.6 of the smallest red ball's, 0.4 of a static ball's, 2 pixels at
  64 x 64 (and never less than 2 pixels)."""
  match_distance: float = 1.0
  """Reach of a ground-truth object's cell (the pixels nearer to it than to other objects of its
  colour, where generated coverage counts as its counterpart), and distance from ground truth's
  colour beyond which generated coverage has none."""
  vanish_fraction: float = 0.5
  """A ground-truth object vanished when more than this fraction of its area is missing from its
  cell in the generated frame."""
  appear_fraction: float = 0.5
  """A generated object appeared when more than this fraction of its area lies farther than
  match_distance from its colour in ground truth."""
  area_fraction: float = 0.25
  """Largest relative change of an object's area (at least min_area) that is not a change of
  shape."""
  overlap_depth: float = 0.12
  """Overlaps up to this deep are contacts (the simulator's rest within ~0.1), deeper ones
  pass-throughs."""
  static_distance: float = 0.2
  """Black this far from ground truth's black means a static object moved."""
  trajectory_distance: float = 0.5
  """Largest distance of the red ball's centre from ground truth's."""


def abnormal(
  truth: np.ndarray,
  generated: np.ndarray,
  context_frames: int,
  thresholds: Thresholds = Thresholds(),
) -> dict[str, np.ndarray]:
  """Abnormality flags of generated videos against ground truth, both [n, T, H, H, 3] in [0, 1].

  Returns a bool [n] per name in FLAGS, "abnormal" (any of them) and a float [n] per name in
  MEASURES (0 where nothing was measured). Frames before `context_frames` are not judged.
  """
  truth, generated = _check(truth, generated, context_frames)
  min_area = max(thresholds.min_area, _MIN_PIXELS * (WORLD_SIZE / truth.shape[2]) ** 2)
  per_video = [
    _measures(true_video, generated_video, context_frames, thresholds, min_area)
    for true_video, generated_video in zip(truth, generated, strict=True)
  ]
  measures = {name: np.asarray([m[name] for m in per_video], np.float64) for name in MEASURES}
  flags = {
    "vanished": measures["lost_fraction"] > thresholds.vanish_fraction,
    "appeared": measures["new_fraction"] > thresholds.appear_fraction,
    "shape_changed": measures["area_change"] > thresholds.area_fraction,
    "passed_through": measures["overlap_area"] >= min_area,
    "static_moved": measures["static_moved_area"] >= min_area,
    "off_trajectory": measures["red_distance"] > thresholds.trajectory_distance,
  }
  flags["abnormal"] = np.any([flags[name] for name in FLAGS], axis=0)
  return {**flags, **measures}


def abnormal_rate(report: dict[str, np.ndarray]) -> dict[str, float]:
  """Fraction of videos with each flag of an `abnormal` report, "abnormal" included."""
  return {name: float(np.mean(report[name])) for name in (*FLAGS, "abnormal")}


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
  if not 0 <= context_frames < shape[1]:
    raise ValueError(
      f"context_frames must be in [0, {shape[1] - 1}] (T = {shape[1]}), got {context_frames}"
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


def _cells(
  present: np.ndarray, pixel: float, reach: float, exact_to: float
) -> tuple[np.ndarray, np.ndarray]:
  """Cells of the connected in-frame regions of `present` [T, H, W]: each pixel within `reach`
  (world units) of a region takes its label (unique across frames; 0 elsewhere). Also the
  distance [T, H, W] (world units) to the nearest region, exact up to max(reach, exact_to) and
  inf beyond."""
  labels, _ = ndimage.label(present, structure=_IN_FRAME)
  cells = np.zeros(present.shape, np.int32)
  distance = np.full(present.shape, np.inf, np.float32)
  exact_to = max(reach, exact_to)
  margin = math.ceil(exact_to / pixel) + 1
  for frame in np.flatnonzero(present.any((1, 2))):
    # The distance transform of the box around the regions that holds their reach.
    (top, bottom), (left, right) = (
      (max(index[0] - margin, 0), index[-1] + margin + 1)
      for index in (np.flatnonzero(present[frame].any(1)), np.flatnonzero(present[frame].any(0)))
    )
    box = (frame, slice(top, bottom), slice(left, right))
    pixels, (rows, cols) = ndimage.distance_transform_edt(~present[box], return_indices=True)
    distance[box] = np.where(pixels * pixel <= exact_to, pixels * pixel, np.inf)
    cells[box] = np.where(pixels * pixel <= reach, labels[box][rows, cols], 0)
  return cells, distance


def _sums(
  labels: np.ndarray, mass: np.ndarray, part: np.ndarray, min_mass: float
) -> tuple[np.ndarray, np.ndarray]:
  """Per label (> 0) with at least min_mass of `mass`: `part` as a fraction of it, and it."""
  inside = labels > 0
  labels = labels[inside]
  size = labels.max(initial=0) + 1
  mass_sum = np.bincount(labels, mass[inside], size)[1:]
  part_sum = np.bincount(labels, part[inside], size)[1:]
  judged = mass_sum >= min_mass
  return part_sum[judged] / mass_sum[judged], mass_sum[judged]


def _largest_region(mass: np.ndarray, region: np.ndarray, pixel: float) -> float:
  """Largest coverage (world units^2) of a connected in-frame region of `region` [T, H, W]."""
  labels, count = ndimage.label(region, structure=_IN_FRAME)
  if count == 0:
    return 0.0
  return float(np.bincount(labels.ravel(), mass.ravel())[1:].max() * pixel**2)


def _red_ball(
  masks: np.ndarray, radius: float, depth: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """The disc of `radius` pixels that best explains the red in each frame of masks [3, T, H, W]:
  its centre [T, 2] (rows, columns; pixels, refined by a parabola through the scores of the
  neighbouring centres), the gray and black coverage inside it [T, H, W] and their sum [T]
  deeper than `depth` pixels inside its outline."""
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
  hidden = np.zeros(masks.shape[1:], np.float32)
  hidden[:, top:bottom, left:right] = np.where(squared <= radius**2, occluders, 0.0)
  deep = np.where(squared <= max(radius - depth, 0.0) ** 2, occluders, 0.0).sum((1, 2))
  return centre + np.asarray([top, left]), hidden, deep


def _measures(
  truth: np.ndarray,
  generated: np.ndarray,
  context_frames: int,
  thresholds: Thresholds,
  min_area: float,
) -> dict[str, float]:
  """The MEASURES of one pair of videos [T, H, H, 3]; `min_area` replaces thresholds'."""
  pixel = WORLD_SIZE / truth.shape[1]
  min_mass = min_area / pixel**2  # coverage, in pixels
  true_masks = coverage_masks(truth, thresholds)
  radius = math.sqrt(true_masks[RED_INDEX].sum((1, 2)).max() / math.pi)  # pixels
  true_masks = true_masks[:, context_frames:]
  masks = coverage_masks(generated[context_frames:], thresholds)
  true_present, present = true_masks >= thresholds.presence, masks >= thresholds.presence

  # Occluded parts of objects count as present ("seen") when comparing areas: the red ball's
  # disc covered by gray or black, and ground truth's gray and black that the generated frame
  # shows red or gray instead (`covered`).
  true_seen, seen = true_masks.copy(), masks.copy()
  red_seen = (true_masks[RED_INDEX].sum((1, 2)) >= min_mass) & (
    masks[RED_INDEX].sum((1, 2)) >= min_mass
  )
  red_overlap = red_distance = 0.0
  if red_seen.any():
    depth = thresholds.overlap_depth / pixel
    true_centre, true_hidden, true_deep = _red_ball(true_masks, radius, depth)
    centre, hidden, deep = _red_ball(masks, radius, depth)
    true_seen[RED_INDEX] += true_hidden * red_seen[:, None, None]
    seen[RED_INDEX] += hidden * red_seen[:, None, None]
    red_overlap = float(np.max(np.where(red_seen, deep - true_deep, 0.0))) * pixel**2
    offset = np.hypot(*(centre - true_centre).T) * pixel
    red_distance = float(np.max(np.where(red_seen, offset, 0.0)))
  covered = {}
  for color, coverers in ((GRAY_INDEX, (RED_INDEX,)), (BLACK_INDEX, (RED_INDEX, GRAY_INDEX))):
    shown_instead = np.any([present[c] & ~true_present[c] for c in coverers], 0)
    covered[color] = true_present[color] & ~present[color] & shown_instead
    seen[color] = np.where(covered[color], true_masks[color], masks[color])

  lost = new = change = 0.0
  distance = []  # per colour [T, H, W]: world units to ground truth's colour
  for color in range(len(COLORS)):
    true_cells, to_truth = _cells(
      true_present[color],
      pixel,
      thresholds.match_distance,
      exact_to=max(thresholds.static_distance, thresholds.overlap_depth),
    )
    distance.append(to_truth)
    kept, area = _sums(true_cells, true_seen[color], seen[color], min_mass)
    labels, _ = ndimage.label(present[color], structure=_IN_FRAME)
    unmatched = np.where(to_truth > thresholds.match_distance, seen[color], 0.0)
    fresh, _ = _sums(labels, seen[color], unmatched, min_mass)
    lost = max(lost, float(np.max(1.0 - kept, initial=0.0)))
    new = max(new, float(np.max(fresh, initial=0.0)))
    # Changes relative to the area, or to min_area / area_fraction for small objects.
    relative = np.abs(kept - 1.0) * area / np.maximum(area, min_mass / thresholds.area_fraction)
    survived = kept >= 1.0 - thresholds.vanish_fraction
    change = max(change, float(np.max(relative[survived], initial=0.0)))

  # Covered where ground truth has none of the covering colours within overlap_depth.
  deep_cover = covered[GRAY_INDEX] & (distance[RED_INDEX] > thresholds.overlap_depth)
  deep_cover |= covered[BLACK_INDEX] & (
    np.minimum(distance[RED_INDEX], distance[GRAY_INDEX]) > thresholds.overlap_depth
  )
  static_moved = present[BLACK_INDEX] & (distance[BLACK_INDEX] > thresholds.static_distance)
  return {
    "lost_fraction": lost,
    "new_fraction": new,
    "area_change": change,
    "overlap_area": max(
      red_overlap,
      _largest_region(true_masks[GRAY_INDEX] + true_masks[BLACK_INDEX], deep_cover, pixel),
    ),
    "static_moved_area": _largest_region(masks[BLACK_INDEX], static_moved, pixel),
    "red_distance": red_distance,
  }
