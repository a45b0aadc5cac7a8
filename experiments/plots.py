"""Report figures: error over the parameter plane and error against velocity."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.colors as mcolors
import matplotlib.patches as mpatches
import matplotlib.pyplot as plt
import numpy as np
from etils import epath

import sims
from experiments import outputs
from experiments.velocity_probe import CaseErrors, radius_columns, speed_columns


def _plane_axes(scene: sims.Scene) -> tuple[int, int]:
  """Columns shown on the heat map: (velocity, radius) for one ball, (speed1, speed2) for two."""
  speeds, radii = speed_columns(scene), radius_columns(scene)
  return (speeds[0], speeds[1]) if len(speeds) > 1 else (speeds[0], radii[0])


def error_heatmap(scene: sims.Scene, results: dict[str, CaseErrors], path: epath.Path) -> None:
  """Velocity error of every case on the parameter plane, the training range outlined."""
  x_col, y_col = _plane_axes(scene)
  params = np.concatenate([r.params for r in results.values()])
  error = np.concatenate([r.velocity_error for r in results.values()])
  scored = np.isfinite(error)
  fig, ax = plt.subplots(figsize=(6.4, 4.8))
  low, high = (error[scored].min(), error[scored].max()) if scored.any() else (1e-3, 1.0)
  norm = mcolors.LogNorm(vmin=max(low, 1e-3), vmax=max(high, 1e-2))
  points = ax.scatter(
    params[scored, x_col],
    params[scored, y_col],
    c=error[scored],
    norm=norm,
    cmap="viridis",
    marker="s",
    s=40,
    edgecolors="none",
  )
  ax.scatter(
    params[~scored, x_col],
    params[~scored, y_col],
    marker="x",
    c="grey",
    s=20,
    label="no scored frames",
  )
  x_band, y_band = scene.space.bands[x_col].id, scene.space.bands[y_col].id
  ax.add_patch(
    mpatches.Rectangle(
      (x_band[0], y_band[0]),
      x_band[1] - x_band[0],
      y_band[1] - y_band[0],
      fill=False,
      edgecolor="red",
      linewidth=1.5,
      label="training range",
    )
  )
  ax.set_xlabel(scene.param_names[x_col])
  ax.set_ylabel(scene.param_names[y_col])
  ax.set_title(f"{scene.name}: velocity error |v - v_true| (world units / s)")
  fig.colorbar(points, ax=ax)
  ax.legend(loc="upper right", fontsize=8)
  fig.tight_layout()
  outputs.save_figure(fig, path)
  plt.close(fig)


def error_vs_velocity(scene: sims.Scene, results: dict[str, CaseErrors], path: epath.Path) -> None:
  """Velocity error against the (first) launch speed, per split, with the parser floor."""
  speed = speed_columns(scene)[0]
  fig, ax = plt.subplots(figsize=(6.4, 4.0))
  band = scene.space.bands[speed].id
  ax.axvspan(*band, color="red", alpha=0.08, label="training range")
  for split, errors in results.items():
    ax.scatter(errors.params[:, speed], errors.velocity_error, s=14, label=split)
  floors = np.concatenate([r.floor for r in results.values()])
  if np.isfinite(floors).any():
    ax.axhline(np.nanmean(floors), color="grey", linestyle="--", label="parser floor (truth)")
  if np.any(np.concatenate([r.velocity_error for r in results.values()]) > 0):
    ax.set_yscale("log")
  ax.set_xlabel(scene.param_names[speed])
  ax.set_ylabel("velocity error (world units / s)")
  ax.legend(fontsize=8)
  fig.tight_layout()
  outputs.save_figure(fig, path)
  plt.close(fig)
