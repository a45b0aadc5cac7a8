"""Figure 5 of the study: does the model interpolate across a gap in its training speeds?

Uniform motion trained on speed bands (`sims.make(..., train_speeds=...)`) is evaluated on the
whole in-distribution grid (split "sweep"). Per case, the generated speed is the study's: the
mean x velocity parsed from the generated frames (`velocity_probe.velocity_study`), along the
direction of motion; the error is |v_gen - v_cond|. Cases whose conditioned speed lies in a
training band are "training range", the others "gap". The study's numbers (its Figure 5,
digitised from 800 plotted points per panel) stand beside ours where the run is one of its
panels.
"""

from __future__ import annotations

from typing import Any

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

# Mean |v_gen - v_cond| on (training-range, gap) points per panel of the study's Figure 5.
STUDY_FIG5 = {
  "fig5_panel1": (0.023, 0.449),
  "fig5_panel2": (0.014, 0.334),
  "fig5_panel3": (0.014, 0.133),
  "fig5_panel4": (0.018, 0.093),
  "fig5_panel5": (0.017, 0.022),
}


class SpeedGap(Probe):
  """Generated against conditioned speed, on training-range and gap cases."""

  name = "speed_gap"
  title = "Speed gap (the study's Figure 5)"

  def __init__(self, scene: sims.Scene, config: Any):
    super().__init__(scene, config)
    self.conditioned, self.generated, self.in_train = [], [], []
    self.pulled = KeptCase()
    speed_column = scene.param_names.index("speed")
    region = scene.space.regions.get("train")
    lo, hi = scene.space.id_box
    self.train_speeds = (
      sorted(zip(region.lo[:, speed_column], region.hi[:, speed_column], strict=True))
      if region is not None
      else [(lo[speed_column], hi[speed_column])]
    )

  @classmethod
  def check(cls, scene: sims.Scene) -> None:
    if "speed" not in scene.param_names:
      raise ValueError(f"probe {cls.name!r} needs a one-ball scene, not {scene.name!r}")

  def update(self, batch: Batch) -> None:
    conditioned, generated = speeds_along_motion(self.scene, batch)
    in_train = self.scene.space.in_train(batch.params)
    self.conditioned.append(conditioned)
    self.generated.append(generated)
    self.in_train.append(in_train)
    # The gap case pulled furthest toward the nearest training speed.
    nearest = np.array([self._nearest_train_speed(v) for v in conditioned])
    pull = (generated - conditioned) * np.sign(nearest - conditioned)
    self.pulled.offer(pull, batch, allowed=~in_train)

  def _nearest_train_speed(self, speed: float) -> float:
    edges = np.clip(speed, *np.array(self.train_speeds).T)
    return float(edges[np.argmin(np.abs(edges - speed))])

  def finish(self, out_dir: epath.Path, report_dir: str) -> Section:
    conditioned, generated = concatenate(self.conditioned), concatenate(self.generated)
    in_train = concatenate(self.in_train).astype(bool)
    error = np.abs(generated - conditioned)
    train_error, train_count = mean_and_count(error, in_train)
    gap_error, gap_count = mean_and_count(error, ~in_train)
    preset = self.config.scene_options.get("train_speeds")
    study = STUDY_FIG5.get(preset) if isinstance(preset, str) else None
    numbers = {
      "train_error": train_error,
      "train_count": train_count,
      "gap_error": gap_error,
      "gap_count": gap_count,
      "gap_to_train": gap_error / train_error if train_error > 0 else float("nan"),
      "study": dict(zip(("train_error", "gap_error"), study, strict=True)) if study else None,
      "train_speeds": [[float(lo), float(hi)] for lo, hi in self.train_speeds],
      "preset": preset if isinstance(preset, str) else None,
      "cases": {
        "conditioned": conditioned.tolist(),
        "generated": [None if not np.isfinite(v) else float(v) for v in generated],
        "in_train": in_train.tolist(),
      },
    }
    self.save_figure(numbers, out_dir, numbers["preset"] or "speed gap", (5.2, 4.6))
    gif = self.pulled.write_gif(out_dir, "speed_gap_pulled.gif", self.config.eval.gif_scale)

    def cell(value, count):
      return f"{value:.3f} (n = {count})"

    lines = [
      f"## {self.title}",
      "",
      "Generated speed (the study's parser, mean over the generated frames) against the "
      "conditioned speed, one point per case; shaded: the training speeds. Mean "
      "|v_gen - v_cond| in world units / s:",
      "",
      "| | training range | gap | gap / training |",
      "|---|---|---|---|",
      f"| ours | {cell(train_error, train_count)} | {cell(gap_error, gap_count)} "
      f"| {numbers['gap_to_train']:.2f} |",
    ]
    if study:
      lines.append(
        f"| the study ({preset}, 128 px, DiT-B) | {study[0]:.3f} | {study[1]:.3f} "
        f"| {study[1] / study[0]:.1f} |"
      )
    lines += ["", f"![speed gap]({report_dir}/speed_gap.png)", ""]
    caption = (
      "The gap case pulled furthest toward the nearest training speed (by "
      f"{self.pulled.score:.2f} world units / s)"
    )
    lines += gif_lines(caption, report_dir, gif)
    return Section(numbers, lines)

  @staticmethod
  def headline(numbers: dict[str, Any]) -> dict[str, str]:
    study = numbers["study"] or {}
    return {
      "training range error (n)": f"{numbers['train_error']:.3f} ({numbers['train_count']})",
      "gap error (n)": f"{numbers['gap_error']:.3f} ({numbers['gap_count']})",
      "gap / training": f"{numbers['gap_to_train']:.2f}",
      "the study: training / gap (ratio)": (
        f"{study['train_error']:.3f} / {study['gap_error']:.3f} "
        f"({study['gap_error'] / study['train_error']:.1f})"
        if study
        else "-"
      ),
    }

  @staticmethod
  def draw(ax: Axes, numbers: dict[str, Any], title: str) -> None:
    cases = numbers["cases"]
    conditioned = np.asarray(cases["conditioned"], float)
    generated = np.asarray([np.nan if v is None else v for v in cases["generated"]], float)
    in_train = np.asarray(cases["in_train"], bool)
    for lo, hi in numbers["train_speeds"]:
      ax.axvspan(lo, hi, color="0.85", zorder=0)
    ax.plot([1.0, 4.0], [1.0, 4.0], "k--", lw=1, label="v_gen = v_cond")
    ax.scatter(conditioned[in_train], generated[in_train], s=10, c="tab:blue", label="training")
    ax.scatter(conditioned[~in_train], generated[~in_train], s=10, c="tab:orange", label="gap")
    ax.set(xlim=(0.9, 4.1), ylim=(0.5, 4.5), xlabel="conditioned speed", title=title)
    ax.set_ylabel("generated speed")
    ax.text(
      0.98,
      0.03,
      f"train {numbers['train_error']:.3f}\ngap {numbers['gap_error']:.3f}",
      transform=ax.transAxes,
      ha="right",
      va="bottom",
      fontsize=8,
    )
    ax.legend(loc="upper left", fontsize=7)
