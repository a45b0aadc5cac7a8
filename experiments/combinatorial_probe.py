"""The study's combinatorial probe (its Table 2): video quality and rollout types per split.

Each split's generated videos are scored against the simulator's ground truth with the study's
metrics (`video_metrics`: FVD on I3D logits, SSIM, PSNR, LPIPS) and rated as the study's human
raters did (`rater`): type 1 close to ground truth, type 2 different but physically plausible,
type 3 implausible (objects vanish or appear, deform, interpenetrate, static ones move, motion
that gravity and contacts do not explain). The study's abnormal rate is its raters' type 3
rate; the report sets ours (automatic) beside theirs (human).
PSNR, SSIM and LPIPS are reported over all frames, the study's convention (the copied context
frame scores the study's 100 dB cap, SSIM 1, LPIPS 0), and over the generated frames alone.
"""

from __future__ import annotations

import numpy as np

from experiments import rater, video_metrics
from sims.core import WORLD_SIZE

FRAME_METRICS = ("psnr", "ssim", "lpips")
# The study's Table 2, (model size, training templates) -> split -> metric; phyworld-facts.md 5.3.
STUDY_TABLE = {
  ("XL", "6"): {
    "in_template": dict(fvd=18.2, ssim=0.973, psnr=32.8, lpips=0.028, abnormal=0.03),
    "out_of_template": dict(fvd=22.1, ssim=0.943, psnr=25.5, lpips=0.082, abnormal=0.67),
  },
  ("XL", "30"): {
    "in_template": dict(fvd=19.5, ssim=0.973, psnr=32.7, lpips=0.028, abnormal=0.03),
    "out_of_template": dict(fvd=19.7, ssim=0.950, psnr=27.1, lpips=0.065, abnormal=0.18),
  },
  ("XL", "60"): {
    "in_template": dict(fvd=17.6, ssim=0.972, psnr=32.4, lpips=0.030, abnormal=0.02),
    "out_of_template": dict(fvd=18.7, ssim=0.951, psnr=27.3, lpips=0.062, abnormal=0.10),
  },
  ("B", "60"): {
    "in_template": dict(fvd=18.4, ssim=0.967, psnr=30.9, lpips=0.035, abnormal=0.03),
    "out_of_template": dict(fvd=21.4, ssim=0.949, psnr=27.0, lpips=0.066, abnormal=0.24),
  },
}


# A generated red ball "follows ground truth" where its height stays this close (world units, a
# tenth of the frame) to the true ball's, on average over the generated frames.
RED_FOLLOW_DISTANCE = 1.0


def red_height_error(truth: np.ndarray, generated: np.ndarray, context_frames: int) -> np.ndarray:
  """Per video [n]: the mean over generated frames of |y - y_true| (world units) of the red
  ball's coverage centroid (`rater.coverage_masks`); NaN where the generated red is gone."""
  heights = []
  for video in (truth, generated):
    red = rater.coverage_masks(video[:, context_frames:])[rater.RED_INDEX]  # [n, T', H, W]
    rows = red.shape[-2]
    y = (rows - 0.5 - np.arange(rows)) * WORLD_SIZE / rows  # world y of each row (y up)
    area = red.sum((-2, -1))
    height = (red.sum(-1) * y).sum(-1) / np.maximum(area, 1e-9)
    heights.append(np.where(area > 0, height, np.nan))
  return np.abs(heights[1] - heights[0]).mean(-1)


class SplitScores:
  """Accumulates one split's scores batch by batch (memory: one batch of videos)."""

  def __init__(self, metrics: tuple[str, ...], context_frames: int, batch_size: int):
    self.context_frames = context_frames
    self._metrics = video_metrics.Accumulator(metrics, batch_size)
    self._ratings: list[dict[str, np.ndarray]] = []
    self._templates: list[np.ndarray] = []
    self._scores: dict[str, float | np.ndarray] | None = None  # metrics of the videos so far

  def add(self, truth: np.ndarray, generated: np.ndarray, templates: np.ndarray) -> None:
    """Scores generated videos against ground truth, [n, T, H, W, 3] in [0, 1], of templates [n]."""
    generated = np.clip(generated, 0.0, 1.0)
    self._metrics.add(truth, generated)
    rating = rater.rate(truth, generated, self.context_frames)
    rating["red_height_error"] = red_height_error(truth, generated, self.context_frames)
    self._ratings.append(rating)
    self._templates.append(np.asarray(templates))
    self._scores = None

  def _metric_scores(self) -> dict[str, float | np.ndarray]:
    """The accumulated metrics (FVD's Frechet distance included), computed once per state."""
    if self._scores is None:
      self._scores = self._metrics.result()
    return self._scores

  def per_video(self) -> dict[str, np.ndarray]:
    """Per-video scores [n]: template, each frame metric, the rollout type, each check's flag
    and measure."""
    scores = self._metric_scores()
    per_video = {"template": np.concatenate(self._templates)}
    for name in FRAME_METRICS:
      if name in scores:
        per_video[name] = scores[f"{name}_per_video"]
    for name in self._ratings[0]:
      per_video[name] = np.concatenate([rating[name] for rating in self._ratings])
    return per_video

  def summary(self) -> dict[str, float]:
    """The split's numbers: metrics over all and over generated frames, "cases", `rater.rates`
    (type{k}_rate and type{k}_count per type, {check}_rate per check), the mean
    "red_height_error" (over videos whose red ball is there) and "red_follows_rate", the share
    of videos whose red ball stays within RED_FOLLOW_DISTANCE of the true one's height."""
    scores = self._metric_scores()
    per_video = self.per_video()
    summary: dict[str, float] = {"cases": len(per_video["template"])}
    if "fvd" in scores:
      summary["fvd"] = scores["fvd"]
    for name in FRAME_METRICS:
      if name in scores:
        summary[name] = scores[name]
        summary[f"{name}_generated"] = float(
          scores[f"{name}_per_frame"][self.context_frames :].mean()
        )
    rates = rater.rates(per_video)
    summary.update({name: value for name, value in rates.items() if name != "videos"})
    error = per_video["red_height_error"]
    summary["red_height_error"] = float(np.nanmean(error)) if np.isfinite(error).any() else np.nan
    summary["red_follows_rate"] = float(np.mean(error <= RED_FOLLOW_DISTANCE))
    return summary

  def per_template(self) -> dict[int, dict[str, float]]:
    """Type 3 (implausible) rate and frame metrics per template id."""
    per_video = self.per_video()
    table = {}
    for template in np.unique(per_video["template"]):
      rows = per_video["template"] == template
      table[int(template)] = {
        "cases": int(rows.sum()),
        "type3_rate": float(np.mean(per_video["type"][rows] == 3)),
        **{
          name: float(per_video[name][rows].mean()) for name in FRAME_METRICS if name in per_video
        },
      }
    return table


def study_rows(size: str, templates: str) -> dict[str, dict[str, float]] | None:
  """The study's Table 2 numbers for a model size and template subset, where it has them."""
  return STUDY_TABLE.get((size, templates))


def _cell(summary: dict[str, float], metric: str) -> str:
  value = summary.get(metric)
  if value is None:
    return "-"
  return f"{100 * value:.0f}%" if metric == "abnormal" else f"{value:.3f}"


# Who judged the abnormal rate of each row of `table_lines`.
JUDGES = {"ours": "automatic (ours)", "study": "human (study)"}


def table_lines(
  summaries: dict[str, dict[str, float]], study: dict[str, dict[str, float]] | None, label: str
) -> list[str]:
  """Markdown rows in the study's Table 2 layout: each cell is in-template / out-of-template.
  Our abnormal rate is the rater's type 3 rate, labelled automatic beside the study's human
  one. The baselines scored beside the model (each split's "baselines") follow our row."""
  splits = ("in_template", "out_of_template")
  metrics = ("fvd", "ssim", "psnr", "lpips", "abnormal")
  lines = [
    "| model | FVD ↓ | SSIM ↑ | PSNR ↑ | LPIPS ↓ | abnormal (type 3) ↓ |",
    "|---|---|---|---|---|---|",
  ]

  def with_abnormal(numbers):
    return {split: {**v, "abnormal": v.get("type3_rate")} for split, v in numbers.items()}

  rows = [(label, with_abnormal(summaries), JUDGES["ours"])]
  baselines = {
    name: {split: v["baselines"][name] for split, v in summaries.items()}
    for name in next(iter(summaries.values()), {}).get("baselines", {})
  }
  for name, numbers in baselines.items():
    rows.append((f"{name} (baseline)", with_abnormal(numbers), JUDGES["ours"]))
  if study is not None:
    rows.append(("the study", study, JUDGES["study"]))
  for name, numbers, judge in rows:
    cells = [
      " / ".join(_cell(numbers.get(split, {}), metric) for split in splits) for metric in metrics
    ]
    lines.append(f"| {name} | " + " | ".join(cells) + f" {judge} |")
  return lines
