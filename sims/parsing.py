"""Parsing balls out of video frames: the study's colour-threshold parser and a soft version.

Both parsers find one ball per colour in each frame from a per-pixel membership weight: its
centre is the weighted mean of the pixel centres (world units, y up, as in `sims.render`) and
its radius that of a disc of the weighted area. A colour whose weight is empty in a frame falls
back as in the study: x to a fixed value (0 for the left ball of two, 10 otherwise), y and the
radius to the previous frame's (5 and 0 before any frame has been found). Colours are RGB
triples with channels 0 or 1 (e.g. sims.RED, sims.BLUE) on a white background. `study_parse`
reads frames exactly as the study's evaluation code does, pixel grid included.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from sims.core import BLUE, CIRCLE, FRAME_DT, RED, RING, RING_INNER, SQUARE, WORLD_SIZE

Color = Sequence[float]

# The study's evaluator thresholds uint8 channels at 127.
THRESHOLD = 127.0
# Where pixel j of W sits, as a fraction of a pixel: x = (j + origin) * 10 / W.
PIXEL_CENTRE, PIXEL_CORNER = 0.5, 0.0


@struct.dataclass
class Parsed:
  """Balls found in a batch of videos, one per colour.

  position: [n, T, K, 2] world units; radius: [n, T, K]; found: [n, T, K] bool (False where the
  colour was absent and the fallback values were used).
  """

  position: jax.Array
  radius: jax.Array
  found: jax.Array


def hard_parse(
  frames: jax.Array,
  colors: Sequence[Color] = (RED, BLUE),
  empty_x: Sequence[float] | None = None,
) -> Parsed:
  """The study's parser: hard colour masks, mask centroids and mask-area radii.

  A pixel belongs to a colour when every channel that is 1 in the colour exceeds 127 and every
  channel that is 0 lies below 127, on the 0..255 scale. Float frames [n, T, H, W, 3] in [0, 1]
  are compared as `frames * 255`, unrounded (a uint8 frame rounds values within half a level of
  the threshold first). Pixel (i, j) sits at its centre, x = (j + 0.5) * 10 / W; the study's code
  used j * 10 / W (`study_parse`), a half-pixel shift of every position that cancels in
  velocities.

  `empty_x` is the x reported for each colour in frames where it is absent; by default 0 for the
  first of two colours (the left ball) and 10 otherwise.
  """
  colors, empty_x = _check(frames, colors, empty_x)
  return _hard_parse(frames, colors, empty_x, False, PIXEL_CENTRE, 1.0)


def study_parse(
  frames: jax.Array,
  colors: Sequence[Color] = (RED, BLUE),
  render_width: int | None = None,
  empty_x: Sequence[float] | None = None,
) -> Parsed:
  """The study's evaluation code's reading of frames (`parse_state_from_image[_collision]`).

  `hard_parse` on frames rounded to 8-bit levels (the study decoded 8-bit videos), with pixel
  (i, j) read at (j, i) * 10 / W, i counted from the bottom row: our renderer's pixel centres
  sit half a pixel further on, a constant shift. The x of an absent colour is the study's (0 for
  the first of two colours, 10 otherwise); y and the radius before the first found frame are
  ours (its code starts from NaN, and scores x only).

  The study's renderer drew pixel j at j * 10 / (W - 1) (a `linspace(0, 1, W)` grid), so its
  code read every position, and every speed, at (W - 1) / W of the truth. With `render_width`
  (the study's: 256) found centres are our pixel-centre reading times (render_width - 1) /
  render_width: what its code would have read had its renderer drawn these frames. `empty_x`
  as in `hard_parse`.
  """
  colors, empty_x = _check(frames, colors, empty_x)
  if render_width is None:
    return _hard_parse(frames, colors, empty_x, True, PIXEL_CORNER, 1.0)
  if render_width < 2:
    raise ValueError(f"render_width must be at least 2 pixels or None, got {render_width}")
  scale = (render_width - 1) / render_width
  return _hard_parse(frames, colors, empty_x, True, PIXEL_CENTRE, scale)


def soft_parse(
  frames: jax.Array,
  colors: Sequence[Color] = (RED, BLUE),
  sharpness: float = 1.25,
  min_area: float = 0.5,
  empty_x: Sequence[float] | None = None,
) -> Parsed:
  """A differentiable parser: soft colour membership, weighted centroids and areas.

  Each channel votes with a clipped ramp, clip(0.5 + sharpness * (value - 0.5), 0, 1) for a
  channel that is 1 in the colour and the same of 1 - value for one that is 0, and a pixel's
  membership is the smallest vote. At sharpness 1 this is exactly the colour's coverage of an
  anti-aliased pure-colour frame (the rim of a red disc over white has G = B = 1 - coverage);
  larger values leave a dead zone of (1 - 1 / sharpness) / 2 at either end, so near-white or
  slightly noisy backgrounds weigh nothing, and tend to the hard parser as sharpness grows. The
  weights are piecewise linear in the frames, differentiable almost everywhere. On rendered
  frames the default finds centres to 0.05 px (the hard parser: 0.16 px). A colour counts
  as found where its total weight exceeds `min_area` pixels; otherwise the fallbacks of
  `hard_parse` apply.
  """
  colors, empty_x = _check(frames, colors, empty_x)
  return _soft_parse(frames, colors, empty_x, sharpness, min_area)


@struct.dataclass
class Attributes:
  """The attributes of one object per colour in a batch of videos.

  position: [n, T, K, 2] world units; area: [n, T, K] world units^2; shape: [n, T, K] int32
  index into sims.SHAPES; radius: [n, T, K] of that shape's area (half the side for squares,
  the outer radius for rings); found: [n, T, K] bool (the colour covers at least `min_area`
  pixels; the other fields are meaningless where it does not).
  """

  position: jax.Array
  area: jax.Array
  shape: jax.Array
  radius: jax.Array
  found: jax.Array


# Shape tests on the weight's central moments (scale free, so they hold at any size): a ring's
# area is about half of 2 pi (Mxx + Myy), a disc's and a square's about all of it; a square's
# E[x^2 y^2] equals E[x^2] E[y^2], a disc's is two thirds of it.
RING_FILL = 0.67
SQUARE_KURTOSIS = 0.87


def parse_attributes(
  frames: jax.Array,
  colors: Sequence[Color] = (RED, BLUE),
  sharpness: float = 1.0,
  min_area: float = 0.5,
) -> Attributes:
  """Colour, shape, size and position of one object per colour, from `soft_parse`'s weights
  (at sharpness 1 by default: the exact coverage of rendered frames, whose soft rims the shape
  tests need at 32 px).

  The colour's weight is read in a window of 1.5 equal-area radii around its centroid (specks
  elsewhere in a generated frame do not count). The shape comes from scale-free moments of the
  weight about its centroid: a ring (a hole) when its area is below RING_FILL of
  2 pi (Mxx + Myy) (disc 1, square 0.95, ring of inner radius 0.6 r 0.47), else a square when
  E[x^2 y^2] / (E[x^2] E[y^2]) exceeds
  SQUARE_KURTOSIS (disc 2/3, axis-aligned square 1), else a circle. The radius follows from the
  area and that shape. Velocities are `forward_velocity` of the positions.
  """
  colors, _ = _check(frames, colors, None)
  return _parse_attributes(frames, colors, sharpness, min_area)


@functools.partial(jax.jit, static_argnums=(1, 2, 3))
def _parse_attributes(frames, colors, sharpness, min_area) -> Attributes:
  weight = _soft_weight(frames, colors, sharpness)  # [n, T, K, H, W]
  height, width = weight.shape[-2:]
  pixel = WORLD_SIZE / width
  xs = (jnp.arange(width, dtype=jnp.float32) + PIXEL_CENTRE) * pixel
  ys = (jnp.arange(height, dtype=jnp.float32)[::-1] + PIXEL_CENTRE) * (WORLD_SIZE / height)
  found = weight.sum((-2, -1)) > min_area

  def moments(weight: jax.Array) -> tuple[jax.Array, ...]:
    total = weight.sum((-2, -1))
    safe_total = jnp.where(total > 0, total, 1.0)

    def mean(values: jax.Array) -> jax.Array:
      return (weight * values).sum((-2, -1)) / safe_total

    x, y = mean(xs), mean(ys[:, None])
    dx, dy = xs - x[..., None, None], ys[:, None] - y[..., None, None]
    return total, x, y, dx, dy, mean

  # A first pass over the whole frame finds the object; the second keeps a window around it
  # (1.5 equal-area radii and a pixel: every shape's reach), so that specks elsewhere in a
  # generated frame do not count.
  total, x, y, dx, dy, _ = moments(weight)
  reach = 1.5 * jnp.sqrt(total * pixel * (WORLD_SIZE / height) / jnp.pi) + pixel
  window = dx**2 + dy**2 <= (reach**2)[..., None, None]
  total, x, y, dx, dy, mean = moments(jnp.where(window, weight, 0.0))
  mxx, myy, mxxyy = mean(dx**2), mean(dy**2), mean(dx**2 * dy**2)
  area = total * pixel * (WORLD_SIZE / height)
  safe_spread = jnp.maximum(mxx + myy, 1e-12)
  is_ring = area < RING_FILL * 2.0 * jnp.pi * safe_spread
  is_square = mxxyy > SQUARE_KURTOSIS * mxx * myy
  shape = jnp.where(is_ring, RING, jnp.where(is_square, SQUARE, CIRCLE)).astype(jnp.int32)
  fill = jnp.where(
    shape == SQUARE, 4.0, jnp.where(shape == RING, jnp.pi * (1 - RING_INNER**2), jnp.pi)
  )
  return Attributes(jnp.stack([x, y], -1), area, shape, jnp.sqrt(area / fill), found)


def forward_velocity(position: jax.Array, frame_dt: float = FRAME_DT) -> jax.Array:
  """Velocities [n, T-1, K, 2] by forward differences of positions [n, T, K, 2]."""
  return jnp.diff(position, axis=1) / frame_dt


def fully_in_view(position: jax.Array, radius: jax.Array) -> jax.Array:
  """[n, T, K] whether each disc (centres [n, T, K, 2], radii [n, K]) lies inside the world."""
  reach = radius[:, None, :, None]
  inside = (position - reach >= 0.0) & (position + reach <= WORLD_SIZE)
  return inside.all(-1)


def _check(
  frames: jax.Array, colors: Sequence[Color], empty_x: Sequence[float] | None
) -> tuple[tuple[tuple[float, ...], ...], tuple[float, ...]]:
  """Validates the arguments; returns hashable colours and the per-colour empty x."""
  if frames.ndim != 5 or frames.shape[-1] != 3:
    raise ValueError(f"frames must have shape [n, T, H, W, 3], got {frames.shape}")
  table = np.asarray(colors, np.float64)
  if table.ndim != 2 or table.shape[1] != 3 or not np.isin(table, (0.0, 1.0)).all():
    raise ValueError(f"colors must be RGB triples of 0s and 1s, got {colors}")
  num_colors = len(table)
  if empty_x is None:
    empty_x = (0.0, WORLD_SIZE) if num_colors == 2 else (WORLD_SIZE,) * num_colors
  if len(empty_x) != num_colors:
    raise ValueError(f"empty_x needs one value per colour ({num_colors}), got {len(empty_x)}")
  return tuple(map(tuple, table.tolist())), tuple(float(x) for x in empty_x)


@functools.partial(jax.jit, static_argnums=(1, 2, 3, 4, 5))
def _hard_parse(frames, colors, empty_x, eight_bit, origin, scale) -> Parsed:
  levels = frames * 255.0
  if eight_bit:
    levels = jnp.round(jnp.clip(levels, 0.0, 255.0))
  levels = levels[:, :, None]  # [n, T, 1, H, W, 3]
  on = np.asarray(colors)[:, None, None] > 0.5  # [K, 1, 1, 3]
  votes = jnp.where(on, levels > THRESHOLD, levels < THRESHOLD)
  # Combined channel by channel (not .all(-1)) so that XLA fuses the mask into the reductions.
  mask = votes[..., 0] & votes[..., 1] & votes[..., 2]
  return _locate(mask.astype(jnp.float32), empty_x, 0.0, origin, scale)


@functools.partial(jax.jit, static_argnums=(1, 2))
def _soft_parse(frames, colors, empty_x, sharpness, min_area) -> Parsed:
  weight = _soft_weight(frames, colors, sharpness)
  return _locate(weight, empty_x, min_area, PIXEL_CENTRE, 1.0)


def _soft_weight(frames: jax.Array, colors: tuple, sharpness: float) -> jax.Array:
  """Per-colour membership [n, T, K, H, W] (see `soft_parse`)."""
  sign = np.where(np.asarray(colors) > 0.5, 1.0, -1.0).astype(np.float32)[:, None, None]
  votes = jnp.clip(0.5 + sharpness * sign * (frames[:, :, None] - 0.5), 0.0, 1.0)
  return jnp.minimum(jnp.minimum(votes[..., 0], votes[..., 1]), votes[..., 2])


def _locate(
  weight: jax.Array,
  empty_x: tuple[float, ...],
  min_area: float | jax.Array,
  origin: float,
  scale: float,
) -> Parsed:
  """Centroids and equal-area radii of per-colour weights [n, T, K, H, W], with fallbacks.

  Column j sits at x = (j + origin) * 10 / W * scale, and row i (0 at the top) likewise at the
  y of its distance from the bottom row; at PIXEL_CENTRE and scale 1 these are the renderer's
  pixel centres.
  """
  n, _, num_colors, height, width = weight.shape
  xs = (jnp.arange(width, dtype=jnp.float32) + origin) * (WORLD_SIZE / width * scale)
  ys = (jnp.arange(height, dtype=jnp.float32)[::-1] + origin) * (WORLD_SIZE / height * scale)
  pixel_area = (WORLD_SIZE / width) * (WORLD_SIZE / height)
  column_mass = weight.sum(3)  # [n, T, K, W]
  row_mass = weight.sum(4)  # [n, T, K, H]
  total = column_mass.sum(3)  # [n, T, K]
  found = total > min_area
  safe_total = jnp.where(found, total, 1.0)
  # Elementwise sums rather than einsum, so no backend runs them at reduced matmul precision.
  x = (column_mass * xs).sum(3) / safe_total
  y = (row_mass * ys).sum(3) / safe_total
  radius = jnp.sqrt(safe_total * pixel_area / jnp.pi)
  x = jnp.where(found, x, jnp.asarray(empty_x, jnp.float32))

  def hold(previous, current):
    y_now, radius_now, found_now = current
    held = (jnp.where(found_now, y_now, previous[0]), jnp.where(found_now, radius_now, previous[1]))
    return held, held

  start = (jnp.full((n, num_colors), WORLD_SIZE / 2), jnp.zeros((n, num_colors)))
  per_frame = tuple(jnp.moveaxis(a, 1, 0) for a in (y, radius, found))
  _, (y, radius) = jax.lax.scan(hold, start, per_frame)
  y, radius = jnp.moveaxis(y, 0, 1), jnp.moveaxis(radius, 0, 1)
  return Parsed(position=jnp.stack([x, y], -1), radius=radius, found=found)
