"""Figure 7 of the study: does the model imitate the closest training case instead of the law?

Uniform motion trained on fast balls only (v in [2.5, 4]), moving right (Set-1) or in both
directions (Set-2, `direction="both"`), is tested on slow balls (v in [1, 2.5], the split
"gap"). Per case the generated velocity is the study's (mean x velocity parsed from the
generated frames), signed along the context's direction of motion. A rollout reverses when that
velocity points against the context's by more than REVERSAL_SPEED. The study: Set-1 never
reverses and its speeds are biased toward the training range; Set-2 sometimes reverses, as
the flipped training videos are the closest case.
"""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
import numpy as np
from etils import epath
from matplotlib.axes import Axes

import sims
from experiments.probes.base import (
  Batch,
  KeptCase,
  Probe,
  Section,
  concatenate,
  gif_lines,
  mean_and_count,
  speeds_along_motion,
)

# Backward speed (world units / s) above which a rollout counts as reversed: several times the
# parser's floor at 32 px (0.06), so that a ball left standing still does not count.
REVERSAL_SPEED = 0.25
# A generated ball is intact when it is found in every generated frame with a mask-area radius
# within this fraction of its radius in the last context frame (not smeared, split or faded).
INTACT_RADIUS_CHANGE = 0.25


class Reversal(Probe):
  """Signed generated velocities of slow test balls, the reversal rate and the speed bias."""

  name = "reversal"
  title = "Reversal (the study's Figure 7)"

  def __init__(self, scene: sims.Scene, config: Any):
    super().__init__(scene, config)
    self.conditioned, self.along, self.intact = [], [], []
    self.reversed_case, self.sped_up_case = KeptCase(), KeptCase()

  @classmethod
  def check(cls, scene: sims.Scene) -> None:
    if "speed" not in scene.param_names or getattr(scene, "direction", "") not in (
      "right",
      "left",
      "both",
    ):
      raise ValueError(
        f"probe {cls.name!r} needs a one-ball scene moving left or right, not {scene.name!r}"
      )

  def update(self, batch: Batch) -> None:
    conditioned, along = speeds_along_motion(self.scene, batch)
    self.conditioned.append(conditioned)
    self.along.append(along)
    in_view = np.asarray(sims.parsing.fully_in_view(batch.traj.position, batch.traj.radius))
    context_frames = self.config.video.context_frames
    self.intact.append(ball_intact(batch.prediction, in_view[..., 0], context_frames))
    self.reversed_case.offer(-along, batch, allowed=self.intact[-1])
    self.sped_up_case.offer(along - conditioned, batch)

  def finish(self, out_dir: epath.Path, report_dir: str) -> Section:
    conditioned, along = concatenate(self.conditioned), concatenate(self.along)
    scored = np.isfinite(along)
    reversed_ = scored & (along < -REVERSAL_SPEED)
    intact = concatenate(self.intact).astype(bool)
    speed = np.abs(along)
    train_lo, train_hi = _train_speed_range(self.scene)
    generated_speed, count = mean_and_count(speed, scored)
    numbers = {
      "direction": self.scene.direction,
      "reversal_rate": float(reversed_.sum() / max(count, 1)),
      "reversed": int(reversed_.sum()),
      "reversed_intact": int((reversed_ & intact).sum()),
      "intact_rate": float((intact & scored).sum() / max(count, 1)),
      "count": count,
      "cases": len(along),
      "mean_generated_speed": generated_speed,
      "mean_conditioned_speed": mean_and_count(conditioned, scored)[0],
      "in_training_range_rate": float(
        ((speed >= train_lo) & (speed <= train_hi) & scored).sum() / max(count, 1)
      ),
      "train_speeds": [train_lo, train_hi],
      "test_speeds": [float(conditioned.min()), float(conditioned.max())] if len(along) else [],
      "along": [float(v) if np.isfinite(v) else None for v in along],
    }
    self.save_figure(numbers, out_dir, f"direction={self.scene.direction}", (5.2, 3.8))
    # The most reversed rollout with an intact ball, or else the one sped up most.
    shown, caption = (
      (self.reversed_case, "The most reversed rollout whose ball stays intact")
      if (reversed_ & intact).any()
      else (self.sped_up_case, "No rollout reversed with its ball intact; the one sped up most")
    )
    gif = shown.write_gif(out_dir, "reversal_case.gif", self.config.eval.gif_scale)
    lines = [
      f"## {self.title}",
      "",
      f"Training speeds [{train_lo:g}, {train_hi:g}] (direction={self.scene.direction}); test "
      f"speeds {numbers['test_speeds'][0]:.2f}-{numbers['test_speeds'][1]:.2f}. Generated "
      "velocity: the study's parser, mean over the generated frames, signed along the "
      f"context's direction. A rollout reverses if it moves back faster than {REVERSAL_SPEED:g}; "
      "its ball is intact if found in every generated frame with a radius within "
      f"{100 * INTACT_RADIUS_CHANGE:.0f}% of the context's.",
      "",
      "| reversal rate | reversed, ball intact | balls intact | mean generated speed "
      "| mean conditioned speed | generated speed in the training range |",
      "|---|---|---|---|---|---|",
      f"| {100 * numbers['reversal_rate']:.1f}% ({numbers['reversed']} of {count}) "
      f"| {numbers['reversed_intact']} | {100 * numbers['intact_rate']:.0f}% "
      f"| {generated_speed:.3f} | {numbers['mean_conditioned_speed']:.3f} "
      f"| {100 * numbers['in_training_range_rate']:.1f}% |",
      "",
      "The study: Set-1 (one direction) never reverses and its speeds lean toward the training "
      "range; Set-2 (flipped videos too) sometimes reverses.",
      "",
      f"![reversal]({report_dir}/reversal.png)",
      "",
    ]
    lines += gif_lines(caption, report_dir, gif)
    return Section(numbers, lines)

  @staticmethod
  def headline(numbers: dict[str, Any]) -> dict[str, str]:
    return {
      "reversal rate": f"{100 * numbers['reversal_rate']:.1f}% ({numbers['reversed']} of "
      f"{numbers['count']})",
      "reversed, ball intact": str(numbers["reversed_intact"]),
      "balls intact": f"{100 * numbers['intact_rate']:.0f}%",
      "mean generated speed": f"{numbers['mean_generated_speed']:.3f}",
      "mean conditioned speed": f"{numbers['mean_conditioned_speed']:.3f}",
      "in the training range": f"{100 * numbers['in_training_range_rate']:.1f}%",
    }

  @staticmethod
  def draw(ax: Axes, numbers: dict[str, Any], title: str) -> None:
    along = np.asarray([v for v in numbers["along"] if v is not None], float)
    lo, hi = numbers["train_speeds"]
    ax.axvspan(lo, hi, color="0.85", zorder=0, label="training speeds")
    if numbers["direction"] == "both":
      ax.axvspan(-hi, -lo, color="0.85", zorder=0)
    if numbers["test_speeds"]:
      ax.axvspan(*numbers["test_speeds"], color="tab:green", alpha=0.15, zorder=0, label="test")
    ax.hist(along, bins=np.linspace(-4.5, 4.5, 37), color="tab:blue")
    ax.axvline(0.0, color="k", lw=1)
    ax.set(xlabel="generated velocity along the context's direction", ylabel="cases")
    ax.set_title(f"{title}: reversed {100 * numbers['reversal_rate']:.0f}%")
    ax.legend(fontsize=7, loc="upper left")


def ball_intact(frames: np.ndarray, in_view: np.ndarray, context_frames: int) -> np.ndarray:
  """[n] whether the red ball of each video [n, T, H, W, 3] is found, with a mask-area radius
  within INTACT_RADIUS_CHANGE of the last context frame's, in every generated frame where the
  true ball is fully in view (`in_view` [n, T])."""
  parsed = sims.parsing.hard_parse(jnp.asarray(frames), colors=(sims.RED,))
  radius, found = np.asarray(parsed.radius[..., 0]), np.asarray(parsed.found[..., 0])
  reference = radius[:, context_frames - 1 : context_frames]
  change = np.abs(radius / np.maximum(reference, 1e-6) - 1.0)
  good = found & (change <= INTACT_RADIUS_CHANGE)
  checked = in_view & (np.arange(frames.shape[1]) >= context_frames)
  return found[:, context_frames - 1] & (good | ~checked).all(1)


def _train_speed_range(scene: sims.Scene) -> tuple[float, float]:
  """The lowest and highest training speed of the scene."""
  column = scene.param_names.index("speed")
  region = scene.space.regions.get("train")
  if region is None:
    lo, hi = scene.space.id_box
    return float(lo[column]), float(hi[column])
  return float(region.lo[:, column].min()), float(region.hi[:, column].max())
