"""The study's velocity probe in 3-D: parse each ball from the frames, in pixels and in metres.

Per case and ball, the parser (`parse_centres`) takes the centroid of the pixels whose largest
channel is the ball colour's, weighted by their colour excess (largest minus smallest channel)
above EXCESS_FLOOR. The scene's floor and shadows are grey, and over grey a primary-coloured
ball's excess is its coverage times its shading. Subtracting EXCESS_FLOOR keeps a generated
frame's noise out: every noisy grey pixel has some excess, and thousands of them would pull each
centroid toward the frame's centre (with Gaussian noise of 0.03 on the truth frames the motion
error stays under 0.3 px per frame, `tests/velocity3d_test.py`). Shading pulls the centroid a
fraction of a pixel toward the lit side, an offset that cancels in the velocities. The truth is
the simulator's centre projected through the known camera (`sims.world3d.render.project`).

- Image space: per frame pair (t, t + 1) from the first generated frame on, with the ball in
  view in both, |d parsed - d projected| in pixels per frame.
- World space: the parsed centres are cast back through the camera onto the plane the ball moves
  in (`motion_planes`: the vertical plane y = y0 of a thrown ball, the plane z = r of a ball on
  the floor) and differenced over the frame time, against the simulator's velocity over the
  same pair: |v - v_true| in m/s.

Both are averaged over the pairs of a ball and over the balls of a case. The same scoring of the
ground-truth frames is the parser floor, reported beside every number; a prediction in which
nothing moves (copy_last) would score the mean true speed, also reported.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from etils import epath
from matplotlib.axes import Axes

import sims
from experiments.probes.base import Batch, KeptCase, Probe, Section, concatenate, gif_lines
from sims.world3d import render
from sims.world3d.scenes import Bounce3D, Collision3D, Rolling3D

# Colour excess (largest minus smallest channel) a pixel needs to count for a ball, and the total
# excess (in fully coloured pixels) that finds a ball in a frame.
EXCESS_FLOOR = 0.15
MIN_PIXELS = 0.5
# A ball counts in a frame when its projected centre is this many projected radii inside it.
IN_VIEW_RADII = 1.0
SCENES = (Bounce3D, Rolling3D, Collision3D)


def parse_centres(frames: np.ndarray, colors: np.ndarray) -> np.ndarray:
  """Pixel centres (column, row) [n, T, K, 2] of K coloured balls in frames [n, T, H, W, 3]
  (colors [n, K, 3]); NaN where no pixel matches."""
  frames = np.asarray(frames, np.float32)
  excess = np.maximum(frames.max(-1) - frames.min(-1) - EXCESS_FLOOR, 0.0)
  channel = frames.argmax(-1)  # [n, T, H, W]
  dominant = np.asarray(colors).argmax(-1)  # [n, K]
  mine = excess[:, :, None] * (channel[:, :, None] == dominant[:, None, :, None, None])
  rows, cols = np.indices(frames.shape[2:4], dtype=np.float32)
  total = mine.sum((-2, -1))
  with np.errstate(invalid="ignore", divide="ignore"):
    centre = np.stack([(mine * cols).sum((-2, -1)), (mine * rows).sum((-2, -1))], -1)
    return np.where(total[..., None] > MIN_PIXELS, centre / total[..., None], np.nan)


def motion_planes(scene: sims.Scene, traj: Any) -> tuple[np.ndarray, np.ndarray]:
  """Normal [3] and offsets [n, K] of the plane each ball moves in: y = y0 for a thrown ball,
  z = r for balls on the floor."""
  position, size = np.asarray(traj.position), np.asarray(traj.size)
  if isinstance(scene, Bounce3D):
    return np.array([0.0, 1.0, 0.0]), position[:, 0, :, 1]
  return np.array([0.0, 0.0, 1.0]), size


def case_errors(
  scene: sims.Scene, traj: Any, frames: np.ndarray, context_frames: int
) -> dict[str, np.ndarray]:
  """Per-case image-space (px / frame) and world-space (m / s) velocity errors [n] of `frames`
  against the trajectory, and the true speed [n], over the scored pairs (NaN where none)."""
  resolution = frames.shape[2]
  position = np.asarray(traj.position)
  projected, depth = render.project(position, resolution)
  focal = resolution / (2 * np.tan(np.deg2rad(render.DEFAULT_CAMERA.fov) / 2))
  margin = IN_VIEW_RADII * np.asarray(traj.size)[:, None] * focal / depth  # [n, T, K]
  in_view = (projected >= margin[..., None]) & (projected <= resolution - 1 - margin[..., None])
  parsed = parse_centres(frames, np.asarray(traj.color))
  found = in_view.all(-1) & (depth > 0) & np.isfinite(parsed).all(-1)  # [n, T, K]
  pairs = found[:, :-1] & found[:, 1:]
  pairs[:, :context_frames] = False
  normal, offset = motion_planes(scene, traj)
  located = render.back_project(parsed, normal, offset[:, None], resolution)
  pixel_error = np.linalg.norm(np.diff(parsed, axis=1) - np.diff(projected, axis=1), axis=-1)
  v_true = np.diff(position, axis=1) / scene.frame_dt
  world_error = np.linalg.norm(np.diff(located, axis=1) / scene.frame_dt - v_true, axis=-1)
  speed = np.linalg.norm(v_true, axis=-1)

  def mean_over_pairs_then_balls(values: np.ndarray) -> np.ndarray:
    counted = pairs.sum(1)  # [n, K]
    with np.errstate(invalid="ignore", divide="ignore"):
      per_ball = np.where(pairs, values, 0.0).sum(1) / counted
      return np.where(counted > 0, per_ball, 0.0).sum(1) / (counted > 0).sum(1)

  return {
    "pixel_error": mean_over_pairs_then_balls(pixel_error),
    "world_error": mean_over_pairs_then_balls(world_error),
    "true_speed": mean_over_pairs_then_balls(speed),
  }


class Velocity3D(Probe):
  """Velocity error of the generated balls in pixels and metres, per split, with its floor."""

  name = "velocity3d"
  title = "Velocity probe in 3-D"
  columns = ("pixel_error", "world_error", "true_speed")

  def __init__(self, scene: sims.Scene, config: Any):
    super().__init__(scene, config)
    self.model: dict[str, list[dict[str, np.ndarray]]] = {}
    self.floor: dict[str, list[dict[str, np.ndarray]]] = {}
    self.worst = KeptCase()

  @classmethod
  def check(cls, scene: sims.Scene) -> None:
    if not isinstance(scene, SCENES):
      allowed = ", ".join(s.name for s in SCENES)
      raise ValueError(f"probe {cls.name!r} needs one of the scenes {allowed}, not {scene.name!r}")

  def update(self, batch: Batch) -> None:
    context = self.config.video.context_frames
    model = case_errors(self.scene, batch.traj, batch.prediction, context)
    floor = case_errors(self.scene, batch.traj, batch.truth, context)
    self.model.setdefault(batch.split, []).append(model)
    self.floor.setdefault(batch.split, []).append(floor)
    self.worst.offer(model["world_error"], batch)

  def finish(self, out_dir: epath.Path, report_dir: str) -> Section:
    numbers = {}
    for split, batches in self.model.items():
      model = {c: concatenate([b[c] for b in batches]) for c in self.columns}
      floor = {c: concatenate([b[c] for b in self.floor[split]]) for c in self.columns}
      scored = np.isfinite(model["world_error"])
      numbers[split] = {
        "cases": len(scored),
        "scored": int(scored.sum()),
        **{f"model_{c}": _mean(model[c]) for c in self.columns[:2]},
        **{f"floor_{c}": _mean(floor[c]) for c in self.columns[:2]},
        "true_speed": _mean(floor["true_speed"]),
      }
    self.save_figure(numbers, out_dir, self.title, (6.0, 3.5))
    gif = self.worst.write_gif(out_dir, "velocity3d_worst.gif", self.config.eval.gif_scale)
    lines = [
      f"## {self.title}",
      "",
      "Balls parsed from the frames by colour; pixel error per frame pair, world error through "
      "the known camera onto each ball's plane of motion (m/s). Floor: the same parser on the "
      "ground-truth frames. A still prediction (copy_last) would score the true speed.",
      "",
      "| split | scored / cases | px/frame: model | floor | m/s: model | floor | true speed |",
      "|---|---|---|---|---|---|---|",
      *(
        f"| {split} | {n['scored']} / {n['cases']} | {n['model_pixel_error']:.3f} | "
        f"{n['floor_pixel_error']:.3f} | {n['model_world_error']:.3f} | "
        f"{n['floor_world_error']:.3f} | {n['true_speed']:.3f} |"
        for split, n in numbers.items()
      ),
      "",
      f"![{self.title}]({report_dir}/{self.name}.png)",
      "",
      *gif_lines("The case with the largest world-space error", report_dir, gif),
    ]
    return Section(numbers, lines)

  @staticmethod
  def draw(ax: Axes, numbers: dict[str, Any], title: str) -> None:
    splits = list(numbers)
    x = np.arange(len(splits))
    for shift, (key, label) in enumerate(
      (
        ("model_world_error", "model"),
        ("floor_world_error", "parser floor"),
        ("true_speed", "copy_last"),
      )
    ):
      ax.bar(x + (shift - 1) * 0.27, [numbers[s][key] for s in splits], 0.27, label=label)
    ax.set_xticks(x, splits, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("velocity error (m/s)")
    ax.set_title(title)
    ax.legend(fontsize=8)

  @staticmethod
  def headline(numbers: dict[str, Any]) -> dict[str, str]:
    return {
      f"{split} m/s (floor)": f"{n['model_world_error']:.3f} ({n['floor_world_error']:.3f})"
      for split, n in numbers.items()
    }


def _mean(values: np.ndarray) -> float:
  finite = values[np.isfinite(values)]
  return float(finite.mean()) if len(finite) else float("nan")
