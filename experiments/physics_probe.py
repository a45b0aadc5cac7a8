"""Physics consistency of generated law-task videos, beside the velocity probe.

For each case the generated video is explained by the simulator (`sims.physics_score`: the
initial state fitted through rollout + render by analysis by synthesis, and the law residuals of
`sims.laws`), giving
- "fit_residual": the RMS pixel error of the best simulated video (about 1e-4 on ground truth:
  the 8-bit rounding of the rims), large where no physical motion explains the video;
- "fit_velocity_error": |v_fit - v_true| of the fitted initial velocities (mean over balls), the
  velocity the video implies when read as physics as a whole rather than frame pair by pair;
- the law residuals ("trajectory" and "acceleration" for free flight, "momentum" and "energy"
  for collisions) of the generated video, and each one's floor on the ground-truth video;
- "follows_guide": where a ball's speed in the context lies outside the training range, whether
  the generated frames show the context's law-abiding continuation (what a simulator guide
  shows: `guide_following`) rather than the balls at the nearest training speeds.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

import sims
from experiments import velocity_probe

# World units / s beyond the training range a ball's context speed must lie for its case to
# count in "follows_guide": nearer, the guide and the nearest training speed are not told apart.
FOLLOW_MARGIN = 0.25


def case_scores(
  scene: sims.Scene,
  traj: sims.Trajectory,
  truth: jax.Array,
  prediction: jax.Array,
  context_frames: int,
) -> dict[str, np.ndarray]:
  """Per-case scores [n] of generated frames against the simulator's trajectory and frames
  (the first `context_frames` frames are the context)."""
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
    "follows_guide": guide_following(scene, truth, prediction, context_frames),
  }


def guide_following(
  scene: sims.Scene, truth: jax.Array, prediction: jax.Array, context_frames: int
) -> np.ndarray:
  """Per case [n]: 1 where the generated frames follow the guide rather than the training speeds,
  0 where they follow the training speeds, NaN where no ball's speed is out of the training range.

  The guide is what `worldmodel.guides` builds: the state fitted to the context frames, rolled
  out with the scene's law. A case counts where a ball's fitted context speed lies FOLLOW_MARGIN
  or more outside its training range. Its alternative is the same rollout from the last context
  frame on with every ball's velocity there rescaled to the nearest training speed (exact for
  free flight; after a collision in the context, the rescaled velocity stands in for the
  training-speed rollout). The generated frames follow the guide where their mean squared
  distance to the guide's rendering is the smaller of the two.
  """
  num_frames, resolution = truth.shape[1], truth.shape[2]
  guide_state, _ = sims.fit_initial_state(scene, truth[:, :context_frames])
  guide = scene.rollout(guide_state, num_frames)
  bands = [scene.space.bands[column].id for column in velocity_probe.speed_columns(scene)]
  low, high = (jnp.asarray([band[end] for band in bands]) for end in (0, 1))
  speed = jnp.linalg.norm(guide_state.velocity, axis=-1)  # [n, K] the context's
  nearest = jnp.clip(speed, low, high)
  last = context_frames - 1
  rescale = (nearest / jnp.maximum(speed, 1e-6))[..., None]
  pulled = scene.rollout(
    guide_state.replace(
      position=guide.position[:, last], velocity=guide.velocity[:, last] * rescale
    ),
    num_frames - last,
  )
  generated = prediction[:, context_frames:]

  def distance(traj: sims.Trajectory) -> jax.Array:
    rendered = sims.render(traj, resolution)[:, -generated.shape[1] :]
    return jnp.mean((rendered - generated) ** 2, axis=(1, 2, 3, 4))

  follows = (distance(guide) < distance(pulled)).astype(jnp.float32)
  out_of_range = jnp.any(jnp.abs(speed - nearest) >= FOLLOW_MARGIN, axis=-1)
  return np.asarray(jnp.where(out_of_range, follows, jnp.nan))


def summarize(scores: dict[str, np.ndarray]) -> dict[str, float]:
  """Means over the cases where each score was measured (NaN where none was)."""
  return {
    name: float(np.nanmean(values)) if np.isfinite(values).any() else float("nan")
    for name, values in scores.items()
  }
