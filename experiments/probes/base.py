"""The probe interface: a probe consumes evaluated cases batch by batch and owns its numbers,
figures and report section.

`evaluate.py` makes the rollouts of every split in `eval.splits`, scores them with the velocity
probe, and hands each batch (`Batch`) to the probes named in `eval.probes`; after the last split
each probe writes its figures and returns a `Section`: numbers for `eval.json` (under
"probes"/name) and the lines of its part of `report.md`. A probe's `draw` makes its main figure
from those numbers alone, so that `--mode=compare` can draw the runs of one experiment side by
side from their `eval.json` files.
"""

from __future__ import annotations

import abc
import dataclasses
from typing import Any, ClassVar

import numpy as np
from etils import epath
from matplotlib.axes import Axes
from matplotlib.figure import Figure

import sims
from experiments import outputs
from experiments.velocity_probe import CaseErrors


@dataclasses.dataclass(frozen=True)
class Batch:
  """One batch of evaluated cases of a split, padding removed."""

  split: str
  index: np.ndarray  # [b] case numbers within the split
  traj: sims.Trajectory | sims.BodyTrajectory  # [b] the simulator's trajectories
  truth: np.ndarray  # [b, T, H, W, 3] ground-truth frames
  prediction: np.ndarray  # [b, T, H, W, 3] the model's frames (context frames included)
  params: np.ndarray  # [b, P] the cases' parameters (`Scene.params_of`)
  errors: CaseErrors | None = None  # the velocity probe's per-case numbers (law tasks)


@dataclasses.dataclass
class Section:
  """A probe's result: its numbers (for eval.json) and its report.md section."""

  numbers: dict[str, Any]
  lines: list[str]


@dataclasses.dataclass
class KeptCase:
  """The frames of the case that scores highest on some criterion so far (for a GIF)."""

  score: float = -np.inf
  truth: np.ndarray | None = None
  prediction: np.ndarray | None = None

  def offer(self, scores: np.ndarray, batch: Batch, allowed: np.ndarray | None = None) -> None:
    """Keeps the batch's highest-scoring case (among `allowed`) if it beats the kept one."""
    scores = np.where(np.isfinite(scores), scores, -np.inf)
    if allowed is not None:
      scores = np.where(allowed, scores, -np.inf)
    best = int(np.argmax(scores)) if len(scores) else 0
    if len(scores) and scores[best] > self.score:
      self.score = float(scores[best])
      self.truth, self.prediction = batch.truth[best], batch.prediction[best]

  def write_gif(self, out_dir: epath.Path, name: str, scale: int) -> str | None:
    """Writes ground truth beside prediction as `name`; the file name, or None if none kept."""
    if self.truth is None:
      return None
    frames = outputs.side_by_side(self.truth[None], self.prediction[None], scale)
    outputs.write_gif(out_dir / name, frames)
    return name


class Probe(abc.ABC):
  """A measurement over a run's evaluated cases, configured from the experiment."""

  name: ClassVar[str]
  title: ClassVar[str]

  def __init__(self, scene: sims.Scene, config: Any):
    self.scene, self.config = scene, config

  @classmethod
  @abc.abstractmethod
  def check(cls, scene: sims.Scene) -> None:
    """A one-line ValueError if the probe cannot measure this scene."""

  @abc.abstractmethod
  def update(self, batch: Batch) -> None:
    """Takes in one batch of evaluated cases."""

  @abc.abstractmethod
  def finish(self, out_dir: epath.Path, report_dir: str) -> Section:
    """Writes the probe's figures into `out_dir` (linked as `report_dir/...`) and returns its
    numbers and report section."""

  @staticmethod
  @abc.abstractmethod
  def draw(ax: Axes, numbers: dict[str, Any], title: str) -> None:
    """Draws the probe's main figure from its numbers (as `finish` returned them)."""

  def save_figure(
    self, numbers: dict[str, Any], out_dir: epath.Path, title: str, size: tuple[float, float]
  ) -> None:
    """Saves `draw`'s figure of `numbers` as `<name>.png` in `out_dir`."""
    figure = Figure(figsize=size)
    self.draw(figure.add_subplot(), numbers, title)
    figure.tight_layout()
    outputs.save_figure(figure, out_dir / f"{self.name}.png")

  @staticmethod
  @abc.abstractmethod
  def headline(numbers: dict[str, Any]) -> dict[str, str]:
    """The numbers that compare runs (column -> formatted cell), for `--mode=compare`."""

  @staticmethod
  def across_runs(panels: list[tuple[str, dict[str, Any]]]) -> list[str]:
    """Report lines drawn from several runs' numbers ((label, numbers) each) under the compare
    table; none unless the probe has a conclusion that needs them all."""
    return []


def speeds_along_motion(scene: sims.Scene, batch: Batch) -> tuple[np.ndarray, np.ndarray]:
  """One-ball cases' conditioned speed [b] and generated velocity [b] (the study's parser, mean
  over the generated frames) signed along the context's direction of motion (x)."""
  conditioned = batch.params[:, scene.param_names.index("speed")]
  direction = np.sign(np.asarray(batch.traj.velocity[:, 0, 0, 0]))
  return conditioned, batch.errors.velocity_study[:, 0] * direction


def gif_lines(caption: str, report_dir: str, gif: str | None) -> list[str]:
  """Report lines showing a written GIF (ground truth beside prediction) under its caption;
  none if no GIF was written."""
  if gif is None:
    return []
  return [f"{caption}, ground truth left:", "", f"![{caption}]({report_dir}/{gif})", ""]


def mean_and_count(values: np.ndarray, mask: np.ndarray) -> tuple[float, int]:
  """The mean of the finite values under `mask`, and how many there are (NaN, 0 if none)."""
  kept = mask & np.isfinite(values)
  return (float(values[kept].mean()) if kept.any() else float("nan")), int(kept.sum())


def concatenate(batches: list[np.ndarray]) -> np.ndarray:
  return np.concatenate(batches) if batches else np.zeros(0)
