"""Figure 6 of the study: does the model fill a hole in its training set, and where does that
stop?

Collisions trained without the cases in some holes (`sims.make("collision", train_holes=...)`)
are evaluated on the study's grid (split "sweep": v1 reaches 0-4.5, past the training range).
The error is the study's post-collision velocity error (`velocity_error_study`, without the
cases its code skips: a ball of radius 0.5). Each case is in
the training region, left out but inside the convex hull of the training region (in the full
parameter space: radii and speeds), or outside that hull. The study: cases inside the hull are
about as good as training cases, even for a large hole; cases outside it are much worse.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from etils import epath
from matplotlib import patches
from matplotlib.axes import Axes
from scipy import spatial

import sims
from experiments.probes.base import (
  Batch,
  KeptCase,
  Probe,
  Section,
  concatenate,
  gif_lines,
  mean_and_count,
)
from experiments.velocity_probe import study_filter

CATEGORIES = ("training", "inside_hull", "outside_hull")
# The study's colour scale for the error heat map (stretched where the errors exceed it).
STUDY_ERROR_SCALE = (0.0, 0.5)


class CollisionHole(Probe):
  """Post-collision velocity error over the plane of the holes, by hull membership."""

  name = "collision_hole"
  title = "Collision hole (the study's Figure 6)"

  def __init__(self, scene: sims.Scene, config: Any):
    super().__init__(scene, config)
    region = scene.space.regions.get("train")
    lo, hi = scene.space.id_box
    self.train_lo, self.train_hi = (
      (region.lo, region.hi) if region is not None else (lo[None], hi[None])
    )
    corners = _box_corners(self.train_lo, self.train_hi)
    self.hull = spatial.ConvexHull(corners).equations  # [F, P + 1]: normal . x + offset <= 0
    holes = scene.space.regions.get("hole")
    self.plane = self._plane(holes)
    self.hole_boxes = (
      []
      if holes is None
      else [(lo[self.plane], hi[self.plane]) for lo, hi in zip(holes.lo, holes.hi, strict=True)]
    )
    self.params, self.errors, self.category = [], [], []
    self.outside_case, self.inside_case = KeptCase(), KeptCase()

  def _plane(self, holes) -> list[int]:
    """The two parameters the heat map shows: those the holes restrict, else (v1, v2)."""
    names = list(self.scene.param_names)
    if holes is not None:
      lo, hi = self.scene.space.id_box
      narrower = (holes.lo > lo + 1e-9) | (holes.hi < hi - 1e-9)  # [holes, P]
      restricted = list(np.flatnonzero(narrower.any(0)))
      if len(restricted) == 2:
        return restricted
    return [names.index("speed1"), names.index("speed2")]

  @classmethod
  def check(cls, scene: sims.Scene) -> None:
    if scene.name != "collision":
      raise ValueError(f"probe {cls.name!r} needs the scene 'collision', not {scene.name!r}")

  def categorize(self, params: np.ndarray) -> np.ndarray:
    """[N] index into CATEGORIES of each case."""
    in_hull = (params @ self.hull[:, :-1].T + self.hull[:, -1] <= 1e-6).all(-1)
    in_train = self.scene.space.in_train(params)
    return np.where(in_train, 0, np.where(in_hull, 1, 2))

  def update(self, batch: Batch) -> None:
    params = batch.params
    # The study's code skips the smallest balls (r = 0.5 on this grid), as the split's numbers do.
    error = np.where(study_filter(self.scene, params), batch.errors.velocity_error_study, np.nan)
    category = self.categorize(params)
    self.params.append(params)
    self.errors.append(error)
    self.category.append(category)
    self.inside_case.offer(error, batch, allowed=category == 1)
    self.outside_case.offer(error, batch, allowed=category == 2)

  def finish(self, out_dir: epath.Path, report_dir: str) -> Section:
    params = concatenate(self.params).reshape(-1, len(self.scene.param_names))
    error, category = concatenate(self.errors), concatenate(self.category).astype(int)
    names = self.scene.param_names
    numbers: dict[str, Any] = {"preset": self.config.scene_options.get("train_holes")}
    for index, name in enumerate(CATEGORIES):
      numbers[f"{name}_error"], numbers[f"{name}_count"] = mean_and_count(error, category == index)
    numbers.update(
      plane=[names[i] for i in self.plane],
      holes=[[*map(float, lo), *map(float, hi)] for lo, hi in self.hole_boxes],
      hull=_plane_hull(self.train_lo[:, self.plane], self.train_hi[:, self.plane]),
      cases={
        "x": params[:, self.plane[0]].tolist(),
        "y": params[:, self.plane[1]].tolist(),
        "error": [float(v) if np.isfinite(v) else None for v in error],
        "category": category.tolist(),
      },
    )
    self.save_figure(numbers, out_dir, str(numbers["preset"] or "collision hole"), (5.6, 4.6))
    scale = self.config.eval.gif_scale
    gifs = {
      "inside": self.inside_case.write_gif(out_dir, "collision_hole_inside.gif", scale),
      "outside": self.outside_case.write_gif(out_dir, "collision_hole_outside.gif", scale),
    }
    labels = {
      "training": "training region",
      "inside_hull": "left out, inside the convex hull",
      "outside_hull": "outside the convex hull",
    }
    lines = [
      f"## {self.title}",
      "",
      f"Post-collision velocity error (the study's code) over ({', '.join(numbers['plane'])}), "
      "mean over the other parameters per point; holes dashed red, the convex hull of the "
      "training region solid. The study: inside the hull about as good as the training region, "
      "outside much worse.",
      "",
      "| cases | velocity error | n |",
      "|---|---|---|",
      *(
        f"| {labels[name]} | {numbers[f'{name}_error']:.4f} | {numbers[f'{name}_count']} |"
        for name in CATEGORIES
      ),
      "",
      f"![collision hole]({report_dir}/collision_hole.png)",
      "",
    ]
    for kind, gif in gifs.items():
      lines += gif_lines(f"The worst case {kind} the hull", report_dir, gif)
    return Section(numbers, lines)

  @staticmethod
  def headline(numbers: dict[str, Any]) -> dict[str, str]:
    return {
      f"{name.replace('_', ' ')} error (n)": (
        f"{numbers[f'{name}_error']:.4f} ({numbers[f'{name}_count']})"
      )
      for name in CATEGORIES
    }

  @staticmethod
  def draw(ax: Axes, numbers: dict[str, Any], title: str) -> None:
    cases = numbers["cases"]
    x, y = np.asarray(cases["x"]), np.asarray(cases["y"])
    error = np.asarray([np.nan if v is None else v for v in cases["error"]], float)
    # One square per point of the plane: the mean error over the cases there.
    points, where = np.unique(np.stack([x, y], -1).reshape(-1, 2), axis=0, return_inverse=True)
    where = where.ravel()
    scored = np.isfinite(error)
    total = np.bincount(where[scored], error[scored], minlength=len(points))
    count = np.bincount(where[scored], minlength=len(points))
    means = np.where(count > 0, total / np.maximum(count, 1), np.nan)
    # The study's colour scale, stretched where the errors exceed it.
    top = max(STUDY_ERROR_SCALE[1], np.nanpercentile(means, 95) if np.isfinite(means).any() else 0)
    image = ax.scatter(
      points[:, 0],
      points[:, 1],
      c=means,
      cmap="viridis",
      marker="s",
      s=60,
      vmin=STUDY_ERROR_SCALE[0],
      vmax=top,
    )
    ax.figure.colorbar(image, ax=ax, label="velocity error")
    for hole in numbers["holes"]:
      lo, hi = hole[:2], hole[2:]
      width, height = hi[0] - lo[0], hi[1] - lo[1]
      ax.add_patch(patches.Rectangle(lo, width, height, fill=False, ec="tab:red", ls="--", lw=1.5))
    hull = np.asarray(numbers["hull"])
    ax.add_patch(patches.Polygon(hull, closed=True, fill=False, ec="k", lw=1.2))
    ax.set(xlabel=numbers["plane"][0], ylabel=numbers["plane"][1], title=title)
    ax.text(
      0.98,
      0.02,
      "\n".join(
        f"{name.replace('_', ' ')} {numbers[f'{name}_error']:.3f} (n={numbers[f'{name}_count']})"
        for name in CATEGORIES
      ),
      transform=ax.transAxes,
      ha="right",
      va="bottom",
      fontsize=7,
      bbox={"facecolor": "w", "alpha": 0.8, "edgecolor": "none"},
    )


def _box_corners(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
  """Every corner of every box [B, P] -> [B * 2^P, P]."""
  num = lo.shape[1]
  choice = np.array(np.meshgrid(*[[0, 1]] * num, indexing="ij")).reshape(num, -1).T  # [2^P, P]
  return np.concatenate([np.where(choice, top, bottom) for bottom, top in zip(lo, hi, strict=True)])


def _plane_hull(lo: np.ndarray, hi: np.ndarray) -> list[list[float]]:
  """The convex hull of the training boxes projected on the plane, as polygon vertices."""
  corners = _box_corners(lo, hi)
  hull = spatial.ConvexHull(corners)
  return corners[hull.vertices].tolist()
