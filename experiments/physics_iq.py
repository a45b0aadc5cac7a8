"""The Physics-IQ benchmark's metrics (Motamed et al. 2025, "Do generative video models understand
physical principles?"), as pure functions on videos [..., T, H, W, 3] in [0, 1].

Physics-IQ (github.com/google-deepmind/physics-IQ-benchmark, `physiq/binary_mask_generator.py`,
`physiq/calculate_and_write_metrics_to_csv.py`, `physiq/calculate_iq_score*.py`) scores a
generated continuation against the real one ("take 1") with four numbers, each also measured
between take 1 and a second real recording of the same scene ("take 2", the physical variance):

- Motion masks (`motion_masks`): per frame, greyscale (BT.601 weights, as OpenCV's BGR2GRAY),
  a 5 x 5 Gaussian blur (cv2.GaussianBlur with sigma 0: the fixed kernel [1, 4, 6, 4, 1] / 16,
  sigma ~1.1 px, borders reflected as BORDER_REFLECT_101), a running-average background
  (cv2.accumulateWeighted: avg = 0.7 avg + 0.3 grey, updated before the difference; the first
  frame seeds it and gets an empty mask), |grey - round(avg)| > 10 grey levels of 255, then a
  morphological opening and a closing with a 5 x 5 square (OpenCV's border: it never erodes).
  The grey and blurred frames are rounded to whole levels as OpenCV's uint8 images are.
- Spatial IoU: IoU of the masks collapsed over time (active in any frame).
- Spatiotemporal IoU: the mean over frames of the per-frame IoU.
- Weighted spatial IoU: from the fraction-of-frames-active maps a and b,
  sum(min(a, b)) / sum(max(a, b)).
  Every IoU is 1 where both masks are empty (their convention).
- MSE: per-frame mean squared error of the RGB frames in [0, 1] (their 8-bit frames divided by
  255), averaged over frames.

The score (`physics_iq_score`, their `IQTable` in `calculate_iq_score_stable.py`): each metric
is averaged over the scenarios (cases) first, for the model and for the variance alike; each IoU
is then divided by the variance's (model IoU / variance IoU) and the MSE compared by difference
(model MSE - variance MSE). The original score (the paper's) is clip(mean of the three IoU
ratios - MSE difference, 0, 1); the "stable" score their code now recommends clips each of the
four terms to [0, 1] first. Both are reported x 100 in their tables; 100 is a model as close to
the truth as a second take of the same physics. There is no random or worst-case baseline in
their formula: the IoUs are normalised by the variance alone. (Their dataset-level score
divides plainly; we add the 1e-8 of their per-scenario ratios to the variance, against a
division by zero.)

Departures from their code, for our small simulated videos:

- Resolution. Their masks are made on the dataset's videos, then masks and frames are resized to
  a quarter (cv2.resize, bilinear; masks re-thresholded at > 127 of 255) for the metrics. Our
  32-64 px frames are the metric grid, scored without resizing; their kernels scaled to it act
  over 5 / 4 px (the blur's sigma ~0.28 px; the opening drops specks under 1.25 px). To apply
  exactly that, masks are made on the frames upsampled UPSAMPLE = 4 x (bilinear, as cv2.resize)
  with their parameters unchanged and resized back as they resize theirs (`downsample_mask`).
  Their kernels applied at 32 px directly (even a 3 x 3 cross) erase the 1-2 px wide motion of
  a slow ball: with a 3 x 3 cross, a fifth of the generated frames of ID balls slower than 2
  units / s had no mask left (64 cases at 32 px); with these masks none. The rate (0.3 per
  frame) and the threshold (10 levels) do not scale with pixels and are kept (our clips run at
  10 frames per second, theirs at 8-30).
- Frames are clipped to [0, 1] (a saved video's range); the masks' grey frames are rounded to
  8-bit levels as theirs, the MSE's frames are not quantised. Their mask videos are stored as
  lossy mp4; ours stay exact.
- Generated frames only. Their generated and test videos start after the conditioning, and each
  video's own first frame seeds its background (an empty first mask, counted in their
  spatiotemporal mean as an IoU of 1). Our clips are short (5 generated frames of 8 at 32 px),
  so each video's background is seeded with its last context frame instead and the masks and
  MSE cover the generated frames alone (`generated_masks`). The weighted spatial IoU is
  unaffected (a common scale of both maps cancels), and so is the spatial IoU (an empty mask
  adds nothing to the union over time).
- One view, one take each: their per-scenario numbers are means over three camera views.
- The variance take is simulated, not filmed (see `experiments/probes/physics_iq.py`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import ndimage

GREY_WEIGHTS = (0.299, 0.587, 0.114)  # R, G, B (OpenCV's BGR2GRAY)
# OpenCV's GaussianBlur with ksize (5, 5) and sigma 0 uses this fixed kernel (sigma ~ 1.1 px).
BLUR_KERNEL = np.array([1.0, 4.0, 6.0, 4.0, 1.0]) / 16.0
BACKGROUND_RATE = 0.3  # cv2.accumulateWeighted's alpha
THRESHOLD = 10.0  # grey levels of 255: a pixel moves where |grey - background| > THRESHOLD
STRUCTURE = np.ones((5, 5), bool)  # the opening's and closing's kernel (a square: separable)
# Physics-IQ makes its masks at 4 x the resolution its metrics use (then resizes them to a
# quarter); our frames are the metric grid, so masks are made on frames upsampled 4 x.
UPSAMPLE = 4
METRICS = ("spatial_iou", "spatiotemporal_iou", "weighted_spatial_iou", "mse")
IOU_METRICS = METRICS[:3]
_CHUNK_PIXELS = 1 << 24  # upsampled grey pixels processed at once


def motion_masks(video: Any, upsample: int = UPSAMPLE) -> np.ndarray:
  """Physics-IQ's binary motion masks [..., T, H, W] (bool) of videos [..., T, H, W, 3] in
  [0, 1]: frame 0 seeds the running-average background and its mask is empty. The masks are
  made on the frames upsampled `upsample` x (bilinear) and resized back as Physics-IQ resizes
  its masks for the metrics (`downsample_mask`)."""
  video = np.clip(np.asarray(video, np.float32), 0.0, 1.0)
  grey = 255.0 * (video @ np.asarray(GREY_WEIGHTS, np.float32))  # [..., T, H, W]
  lead = grey.shape[:-3]
  flat = grey.reshape(-1, *grey.shape[-3:])
  per_video = max(1, _CHUNK_PIXELS // max(1, flat[0].size * upsample**2))
  chunks = [
    _masks_of_grey(flat[i : i + per_video], upsample) for i in range(0, len(flat), per_video)
  ]
  masks = np.concatenate(chunks) if chunks else np.zeros(flat.shape, bool)
  return masks.reshape(*lead, *masks.shape[-3:])


def _masks_of_grey(grey: np.ndarray, upsample: int) -> np.ndarray:
  """`motion_masks` of grey videos [n, T, H, W] in levels of 255."""
  for axis in (-2, -1):
    grey = upsample_bilinear(grey, upsample, axis)
  grey = _blur(np.round(grey))
  background = grey[:, 0].astype(np.float64)
  moving = np.zeros(grey.shape, bool)
  for t in range(1, grey.shape[1]):
    background = (1.0 - BACKGROUND_RATE) * background + BACKGROUND_RATE * grey[:, t]
    moving[:, t] = np.abs(grey[:, t] - np.round(background)) > THRESHOLD
  masks = _close(_open(moving.view(np.uint8))).astype(bool)
  return downsample_mask(masks, upsample)


def upsample_bilinear(x: np.ndarray, factor: int, axis: int) -> np.ndarray:
  """`x` resized `factor` x along `axis` as cv2.resize's bilinear does (pixel centres at half
  pixels, edges clamped)."""
  if factor == 1:
    return x
  axis = axis % x.ndim
  padded = np.pad(x, [(1, 1) if a == axis else (0, 0) for a in range(x.ndim)], mode="edge")
  size = x.shape[axis]
  left, centre, right = (_along(padded, axis, k, k + size) for k in range(3))
  phases = []
  for k in range(factor):  # output pixel i * factor + k samples source pixel i + offset
    offset = (k + 0.5) / factor - 0.5
    neighbour = left if offset < 0 else right
    phases.append(centre * np.float32(1 - abs(offset)) + neighbour * np.float32(abs(offset)))
  out = np.stack(phases, axis=axis + 1)
  return out.reshape(*x.shape[:axis], size * factor, *x.shape[axis + 1 :])


def _along(x: np.ndarray, axis: int, start: int, stop: int) -> np.ndarray:
  return x[(slice(None),) * axis + (slice(start, stop),)]


def _blur(grey: np.ndarray) -> np.ndarray:
  """The 5-tap BLUR_KERNEL along both image axes, borders reflected without repeating the edge
  pixel (OpenCV's BORDER_REFLECT_101, scipy's "mirror"), rounded to whole levels as a uint8
  image is."""
  for axis in (-2, -1):
    grey = ndimage.correlate1d(grey, BLUR_KERNEL.astype(grey.dtype), axis=axis, mode="mirror")
  return np.round(grey)


def downsample_mask(mask: np.ndarray, factor: int) -> np.ndarray:
  """Masks [..., H * factor, W * factor] resized to [..., H, W] as Physics-IQ resizes its 0/255
  mask frames (cv2.resize, bilinear: each output pixel averages the 1 or 2 input pixels nearest
  its centre along each axis) and re-thresholds them (> 127: at least half of those set)."""
  if factor == 1:
    return mask
  *lead, height, width = mask.shape
  blocks = mask.reshape(*lead, height // factor, factor, width // factor, factor)
  taps = slice(factor // 2 - 1 + factor % 2, factor // 2 + 1)
  return blocks[..., taps, :, taps].mean(axis=(-3, -1)) >= 0.5


def _erode(mask: np.ndarray) -> np.ndarray:
  """Erosion by STRUCTURE (a square, so separable); outside pixels count as set (OpenCV's
  default border for morphology: the border never erodes)."""
  reach = STRUCTURE.shape[0]
  for axis in (-2, -1):
    mask = ndimage.minimum_filter1d(mask, reach, axis=axis, mode="constant", cval=1)
  return mask


def _dilate(mask: np.ndarray) -> np.ndarray:
  """Dilation by STRUCTURE; outside pixels count as unset."""
  reach = STRUCTURE.shape[0]
  for axis in (-2, -1):
    mask = ndimage.maximum_filter1d(mask, reach, axis=axis, mode="constant", cval=0)
  return mask


def _open(mask: np.ndarray) -> np.ndarray:
  return _dilate(_erode(mask))


def _close(mask: np.ndarray) -> np.ndarray:
  return _erode(_dilate(mask))


def generated_masks(videos: Any, context_frames: int, upsample: int = UPSAMPLE) -> np.ndarray:
  """Motion masks [..., T - context_frames, H, W] of the generated frames of videos
  [..., T, H, W, 3], each video's background seeded with its last context frame (with no
  context frame, the first frame seeds it and has no mask, as in Physics-IQ)."""
  seed = max(context_frames - 1, 0)
  return motion_masks(np.asarray(videos)[..., seed:, :, :, :], upsample)[..., 1:, :, :]


def iou(a: Any, b: Any, axes: tuple[int, ...] = (-2, -1)) -> np.ndarray:
  """IoU of binary masks over `axes`; 1 where both are empty (Physics-IQ's convention)."""
  a, b = np.asarray(a, bool), np.asarray(b, bool)
  intersection = np.sum(a & b, axis=axes)
  union = np.sum(a | b, axis=axes)
  return np.where(union > 0, intersection / np.maximum(union, 1), 1.0)


def spatial_iou(a: Any, b: Any) -> np.ndarray:
  """IoU [...] of masks [..., T, H, W] collapsed over time (a pixel active in any frame)."""
  return iou(np.any(a, axis=-3), np.any(b, axis=-3))


def spatiotemporal_iou(a: Any, b: Any) -> np.ndarray:
  """The mean over frames [...] of the per-frame IoU of masks [..., T, H, W]."""
  return np.mean(iou(a, b), axis=-1)


def weighted_spatial_iou(a: Any, b: Any) -> np.ndarray:
  """sum(min) / sum(max) [...] of the fraction-of-frames-active maps of masks [..., T, H, W]; 1
  where neither moves."""
  a = np.mean(np.asarray(a, np.float64), axis=-3)
  b = np.mean(np.asarray(b, np.float64), axis=-3)
  low = np.sum(np.minimum(a, b), axis=(-2, -1))
  high = np.sum(np.maximum(a, b), axis=(-2, -1))
  return np.where(high > 0, low / np.where(high > 0, high, 1.0), 1.0)


def frame_mse(a: Any, b: Any) -> np.ndarray:
  """The mean over frames [...] of each frame's MSE, videos [..., T, H, W, 3] clipped to [0, 1]."""
  a, b = (np.clip(np.asarray(x, np.float64), 0.0, 1.0) for x in (a, b))
  error = (a - b) ** 2
  return np.mean(np.mean(error, axis=(-3, -2, -1)), axis=-1)


def compare(
  truth: Any, truth_masks: np.ndarray, video: Any, video_masks: np.ndarray
) -> dict[str, np.ndarray]:
  """The four metrics per video [...] of `video` against `truth` (frames [..., T, H, W, 3] and
  their motion masks [..., T, H, W], the same frames)."""
  return {
    "spatial_iou": spatial_iou(video_masks, truth_masks),
    "spatiotemporal_iou": spatiotemporal_iou(video_masks, truth_masks),
    "weighted_spatial_iou": weighted_spatial_iou(video_masks, truth_masks),
    "mse": frame_mse(video, truth),
  }


def case_metrics(truth: Any, video: Any, context_frames: int) -> dict[str, np.ndarray]:
  """The four metrics per case [n] of videos [n, T, H, W, 3] against the truth, over the
  generated frames (context_frames on)."""
  truth, video = np.asarray(truth), np.asarray(video)
  return compare(
    truth[:, context_frames:],
    generated_masks(truth, context_frames),
    video[:, context_frames:],
    generated_masks(video, context_frames),
  )


def physics_iq_score(model: dict[str, float], variance: dict[str, float]) -> dict[str, float]:
  """Physics-IQ's score of a model from its metrics and the physical variance's, each already
  averaged over the cases: per metric "score_<metric>" (IoU / variance IoU, or MSE - variance
  MSE), "score" (the original: the IoU scores' mean minus the MSE score, clipped to [0, 1]) and
  "score_stable" (each term clipped to [0, 1] first)."""
  scores = {f"score_{m}": model[m] / (variance[m] + 1e-8) for m in IOU_METRICS}
  scores["score_mse"] = model["mse"] - variance["mse"]
  ious = [scores[f"score_{m}"] for m in IOU_METRICS]
  raw = float(np.mean(ious) - scores["score_mse"])
  stable = float(np.mean(np.clip(ious, 0.0, 1.0)) - np.clip(scores["score_mse"], 0.0, 1.0))
  return {
    **{k: float(v) for k, v in scores.items()},
    "score_raw": raw,
    "score": float(np.clip(raw, 0.0, 1.0)),
    "score_stable": float(np.clip(stable, 0.0, 1.0)),
  }
