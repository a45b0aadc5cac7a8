"""The study's velocity-error probe: parse balls out of generated frames and compare velocities.

For each evaluation case the model generates the frames after the context; the study's hard
colour-threshold parser finds each ball, forward differences give its velocity, and the error is
taken against the simulator's exact velocity over the frame pairs that count:

- pairs (t, t + 1) with t at or after the first generated frame,
- in which the true ball is fully in view in both frames,
- for collisions, only pairs after the contact (the study scores post-collision motion).

Two aggregates per video, both averaged over balls: the paper's mean over pairs of |v - v_true|
("velocity_error") and its code's |mean v - mean v_true| ("velocity_error_mean_then_abs"). The
same parser run on the ground-truth frames gives the floor, reported beside every number.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

import sims
from sims import parsing, physics

# The study's evaluator skipped balls it considered too small to parse ("disappearing balls").
STUDY_MIN_RADIUS = {"uniform_motion": 0.6, "parabola": 0.6, "collision": 0.5}


@dataclasses.dataclass
class CaseErrors:
  """Per-case numbers of one split: [N] arrays (NaN where no frame pair counts)."""

  params: np.ndarray  # [N, P]
  level: np.ndarray  # [N] sub-level label, e.g. "ood_v_low"
  velocity_error: np.ndarray
  velocity_error_mean_then_abs: np.ndarray
  floor: np.ndarray
  floor_mean_then_abs: np.ndarray

  def _arrays(self) -> list[np.ndarray]:
    return [getattr(self, f.name) for f in dataclasses.fields(self)]

  def concatenate(self, other: CaseErrors) -> CaseErrors:
    return CaseErrors(
      *(np.concatenate([a, b]) for a, b in zip(self._arrays(), other._arrays(), strict=True))
    )

  def select(self, index: np.ndarray | slice) -> CaseErrors:
    return CaseErrors(*(a[index] for a in self._arrays()))


def scored_pairs(traj: sims.Trajectory, context_frames: int, post_contact: bool) -> jax.Array:
  """[n, T-1, K] mask of the frame pairs (t, t + 1) that count for the error."""
  num_frames = traj.num_frames
  in_view = parsing.fully_in_view(traj.position, traj.radius)
  pairs = in_view[:, :-1] & in_view[:, 1:]
  generated = jnp.arange(num_frames - 1) >= context_frames
  pairs = pairs & generated[None, :, None]
  if post_contact:
    t_contact = physics.contact_time(initial_state(traj))
    after = physics.frame_times(num_frames)[None, :-1] >= t_contact[:, None]
    pairs = pairs & after[..., None]
  return pairs


def velocity_errors(
  true_position: jax.Array, parsed_position: jax.Array, pairs: jax.Array
) -> tuple[jax.Array, jax.Array]:
  """Per-video (abs-then-mean, mean-then-abs) velocity errors [n], averaged over balls."""
  v_true = parsing.forward_velocity(true_position)
  v_parsed = parsing.forward_velocity(parsed_position)
  weight = pairs.astype(jnp.float32)[..., None]  # [n, T-1, K, 1]
  count = weight.sum(1)  # [n, K, 1]
  safe = jnp.maximum(count, 1.0)
  per_pair = jnp.linalg.norm(v_parsed - v_true, axis=-1, keepdims=True)
  abs_then_mean = (per_pair * weight).sum(1) / safe
  mean_gap = ((v_parsed - v_true) * weight).sum(1) / safe
  mean_then_abs = jnp.linalg.norm(mean_gap, axis=-1, keepdims=True)
  has_pairs = count > 0

  def over_balls(per_ball):
    total = jnp.where(has_pairs, per_ball, 0.0).sum((1, 2))
    balls = has_pairs.sum((1, 2))
    return jnp.where(balls > 0, total / jnp.maximum(balls, 1), jnp.nan)

  return over_balls(abs_then_mean), over_balls(mean_then_abs)


def case_errors(
  scene: sims.Scene,
  traj: sims.Trajectory,
  truth: jax.Array,
  prediction: jax.Array,
  context_frames: int,
  split: str,
) -> CaseErrors:
  """Velocity errors of generated frames and the parser floor on the true frames."""
  colors = tuple(map(tuple, np.asarray(traj.color[0])))
  pairs = scored_pairs(traj, context_frames, post_contact=scene.num_objects == 2)
  generated = parsing.hard_parse(prediction, colors=colors).position
  floor = parsing.hard_parse(truth, colors=colors).position
  error, error_mean = velocity_errors(traj.position, generated, pairs)
  floor_error, floor_mean = velocity_errors(traj.position, floor, pairs)
  params = np.asarray(scene.params_of(initial_state(traj)))
  return CaseErrors(
    params=params,
    level=sublevels(scene, params, split),
    velocity_error=np.asarray(error),
    velocity_error_mean_then_abs=np.asarray(error_mean),
    floor=np.asarray(floor_error),
    floor_mean_then_abs=np.asarray(floor_mean),
  )


def initial_state(traj: sims.Trajectory) -> sims.BallState:
  """The state at frame 0 of a trajectory."""
  return sims.BallState(
    traj.position[:, 0], traj.velocity[:, 0], traj.radius, traj.color, traj.shape
  )


def sublevels(scene: sims.Scene, params: np.ndarray, split: str) -> np.ndarray:
  """Labels each case of an OOD split with its low / high / cross sub-level."""
  if not split.startswith("ood_"):
    return np.full(len(params), split)
  columns = [
    np.where(params[:, i] < bands.id[0], "low", np.where(params[:, i] > bands.id[1], "high", ""))
    for i, bands in enumerate(scene.space.bands)
  ]
  base = split.removesuffix("_low").removesuffix("_high").removesuffix("_cross")
  labels = []
  for row in zip(*columns, strict=True):
    kinds = {kind for kind in row if kind}
    labels.append(f"{base}_{kinds.pop() if len(kinds) == 1 else 'cross'}")
  return np.asarray(labels)


def summarize(scene: sims.Scene, errors: CaseErrors) -> dict[str, float]:
  """Split-level numbers: means over cases with scored frames, all and with the study's filter."""
  scored = np.isfinite(errors.velocity_error)
  radii = errors.params[:, list(radius_columns(scene))]
  min_radius = STUDY_MIN_RADIUS.get(scene.name, 0.0)
  big_enough = (
    (radii > min_radius).all(1) if scene.num_objects == 2 else (radii >= min_radius).all(1)
  )
  study = scored & big_enough

  def mean(values, mask):
    return float(np.mean(values[mask])) if mask.any() else float("nan")

  return {
    "velocity_error": mean(errors.velocity_error, scored),
    "velocity_error_mean_then_abs": mean(errors.velocity_error_mean_then_abs, scored),
    "floor": mean(errors.floor, scored),
    "floor_mean_then_abs": mean(errors.floor_mean_then_abs, scored),
    "count": int(scored.sum()),
    "cases": len(scored),
    "velocity_error_study_filter": mean(errors.velocity_error, study),
    "floor_study_filter": mean(errors.floor, study),
    "count_study_filter": int(study.sum()),
  }


def radius_columns(scene: sims.Scene) -> tuple[int, ...]:
  return tuple(i for i, name in enumerate(scene.param_names) if name.startswith("radius"))


def speed_columns(scene: sims.Scene) -> tuple[int, ...]:
  return tuple(i for i, name in enumerate(scene.param_names) if name.startswith("speed"))
