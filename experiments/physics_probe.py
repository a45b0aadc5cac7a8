"""Physics consistency of generated law-task videos, beside the velocity probe.

For each case the generated video is explained by the simulator (`sims.physics_score`: the
initial state fitted through rollout + render by analysis by synthesis, and the law residuals of
`sims.laws`), giving
- "fit_residual": the RMS pixel error of the best simulated video (about 1e-4 on ground truth:
  the 8-bit rounding of the rims), large where no physical motion explains the video;
- "fit_velocity_error": |v_fit - v_true| of the fitted initial velocities (mean over balls), the
  velocity the video implies when read as physics as a whole rather than frame pair by pair;
- the law residuals ("trajectory" and "acceleration" for free flight, "momentum" and "energy"
  for collisions) of the generated video, and each one's floor on the ground-truth video.
"""

from __future__ import annotations

import jax
import numpy as np

import sims


def case_scores(
  scene: sims.Scene, traj: sims.Trajectory, truth: jax.Array, prediction: jax.Array
) -> dict[str, np.ndarray]:
  """Per-case scores [n] of generated frames against the simulator's trajectory and frames."""
  score = sims.physics_score(scene, prediction)
  floor = sims.laws.scores(scene, truth)
  true_velocity = np.asarray(traj.velocity[:, 0])  # [n, K, 2] at frame 0
  fitted_error = np.linalg.norm(np.asarray(score["velocity"]) - true_velocity, axis=-1)
  laws = [name for name in floor if name != "count"]
  return {
    "fit_residual": np.asarray(score["fit_residual"]),
    "fit_velocity_error": fitted_error.mean(-1),
    **{name: np.asarray(score[name]) for name in laws},
    **{f"{name}_floor": np.asarray(floor[name]) for name in laws},
  }


def summarize(scores: dict[str, np.ndarray]) -> dict[str, float]:
  """Means over the cases where each score was measured (NaN where none was)."""
  return {
    name: float(np.nanmean(values)) if np.isfinite(values).any() else float("nan")
    for name, values in scores.items()
  }
