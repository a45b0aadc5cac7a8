"""The study's velocity-error probe: parse balls out of generated frames and compare velocities.

For each evaluation case the model generates the frames after the context, a parser finds each
ball in every frame, forward differences give its velocity, and the error is taken against the
simulator's. The same scoring of the ground-truth frames gives the floor, reported beside every
number. Two scorings sit side by side:

- The study's code (`id_ood_data/evaluate.py`), reproduced to float32 rounding; the one comparable
  with its published numbers (Figure 3, its ground-truth floors). `study_parse` reads 8-bit
  frames on the study's pixel grid; frames count from index 3 on where the true ball is fully
  in view (for collisions, one mask for both balls: the left ball's left edge and the right
  ball's right edge, x only), the kept frames are differenced as one sequence, and a video's
  error is |mean v_x - mean v_x,true| (x only), for collisions over the pairs after the first
  true velocity jump of more than 0.1 and averaged over both balls. Split means skip videos
  without such pairs and those with the radii its code skipped ("disappearing balls").
- Ours: the per-ball, 2-D version. Pairs (t, t + 1) count from the first generated frame where
  that ball is fully in view in both frames (after the contact time for collisions); the
  parser reads pixel centres, unrounded. Per video, averaged over balls: the paper's formula,
  the mean over pairs of |v - v_true| ("velocity_error"), and |mean v - mean v_true|
  ("velocity_error_mean_then_abs").
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
# Its code scores frames from index 3 on (CONDITION_FRAMES - 1) ...
STUDY_FIRST_FRAME = 3
# ... places the collision after the first pair whose true x velocity changes by more than this,
STUDY_COLLISION_JUMP = 0.1
# ... and reads videos its renderer drew at 256 x 256 on a linspace grid (`parsing.study_parse`).
STUDY_RENDER_WIDTH = 256


@dataclasses.dataclass
class CaseErrors:
  """Per-case numbers of one split: [N] arrays (NaN where no frame pair counts)."""

  params: np.ndarray  # [N, P]
  level: np.ndarray  # [N] sub-level label, e.g. "ood_v_low"
  velocity_error: np.ndarray
  velocity_error_mean_then_abs: np.ndarray
  floor: np.ndarray
  floor_mean_then_abs: np.ndarray
  velocity_error_study: np.ndarray
  floor_study: np.ndarray
  # [N, K] the study's mean parsed x velocity per ball over its scored pairs (generated frames)
  velocity_study: np.ndarray

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


def study_frames(position: np.ndarray, radius: np.ndarray, collision: bool) -> np.ndarray:
  """[n, T] the frames the study's code scores, from true centres [n, T, K, 2] and radii [n, K].

  Frames from STUDY_FIRST_FRAME on where the ball is fully in view; for collisions, where the
  left ball (0) has x - r >= 0 and the right ball (1) has x + r <= 10.
  """
  position, radius = np.asarray(position), np.asarray(radius)
  if collision:
    left_edge = position[:, :, 0, 0] - radius[:, None, 0]
    right_edge = position[:, :, 1, 0] + radius[:, None, 1]
    in_view = (left_edge >= 0) & (right_edge <= sims.WORLD_SIZE)
  else:
    in_view = np.asarray(parsing.fully_in_view(position, radius)).all(-1)
  return in_view & (np.arange(position.shape[1]) >= STUDY_FIRST_FRAME)


def study_errors(
  true_x: np.ndarray, parsed_x: np.ndarray, frames: np.ndarray, collision: bool
) -> np.ndarray:
  """The study's per-video velocity errors [n] (NaN where no frame pair counts).

  true_x, parsed_x: [n, T, K] x centres; frames: [n, T] (`study_frames`). The kept frames are
  differenced as one sequence. One ball: |mean v_x - mean v_x,true| over all their pairs (its
  code compares with the launch speed, which every true pair equals). Collisions: the same per
  ball over the pairs after the collision pair, averaged over the balls.
  """
  true_v, parsed_v = study_velocities(true_x, parsed_x, frames, collision)
  return np.abs(parsed_v - true_v).mean(-1)


def study_velocities(
  true_x: np.ndarray, parsed_x: np.ndarray, frames: np.ndarray, collision: bool
) -> tuple[np.ndarray, np.ndarray]:
  """The mean true and parsed x velocities [n, K] over the pairs the study's code scores (see
  `study_errors`; NaN where none)."""
  true_x, parsed_x = np.asarray(true_x, np.float64), np.asarray(parsed_x, np.float64)
  means = [
    _study_velocity(truth[kept], parsed[kept], collision)
    for truth, parsed, kept in zip(true_x, parsed_x, np.asarray(frames), strict=True)
  ]
  return np.array([m[0] for m in means]), np.array([m[1] for m in means])


def _study_velocity(
  true_x: np.ndarray, parsed_x: np.ndarray, collision: bool
) -> tuple[np.ndarray, np.ndarray]:
  """One video's mean (true, parsed) x velocities [K] from the x centres [m, K] of its kept
  frames."""
  true_v = np.diff(true_x, axis=0) / sims.FRAME_DT
  parsed_v = np.diff(parsed_x, axis=0) / sims.FRAME_DT
  start = collision_pair(true_v) + 1 if collision else 0
  if start >= len(true_v):
    return np.full(true_x.shape[1], np.nan), np.full(true_x.shape[1], np.nan)
  return true_v[start:].mean(0), parsed_v[start:].mean(0)


def collision_pair(true_v: np.ndarray) -> int:
  """The study's collision index: the first pair i >= 1 whose true x velocity [m, K] differs
  from pair i - 1's by more than STUDY_COLLISION_JUMP for either ball, else the last pair."""
  jumps = (np.abs(np.diff(true_v, axis=0)) > STUDY_COLLISION_JUMP).any(-1)
  return int(np.argmax(jumps)) + 1 if jumps.any() else len(true_v) - 1


def case_errors(
  scene: sims.Scene,
  traj: sims.Trajectory,
  truth: jax.Array,
  prediction: jax.Array,
  context_frames: int,
  split: str,
  render_width: int | None = STUDY_RENDER_WIDTH,
) -> CaseErrors:
  """Velocity errors of generated frames and the parser floor on the true frames, both ours
  and the study's code's. `render_width` emulates the study's renderer's pixel grid on frames of
  ours (`parsing.study_parse`); pass None for frames that its renderer drew (its HDF5 files)."""
  colors, pick, empty_x = case_colors(traj)

  def own_color(parsed: jax.Array) -> jax.Array:
    """Per case and object, the parsed colour that is the object's: [n, T, K, ...]."""
    index = pick.reshape(pick.shape[0], 1, pick.shape[1], *(1,) * (parsed.ndim - 3))
    return jnp.take_along_axis(parsed, jnp.asarray(index), axis=2)

  collision = scene.num_objects == 2
  pairs = scored_pairs(traj, context_frames, post_contact=collision)
  generated = own_color(parsing.hard_parse(prediction, colors, empty_x).position)
  floor = own_color(parsing.hard_parse(truth, colors, empty_x).position)
  error, error_mean = velocity_errors(traj.position, generated, pairs)
  floor_error, floor_mean = velocity_errors(traj.position, floor, pairs)
  frames = study_frames(traj.position, traj.radius, collision)

  def study(video):
    parsed = own_color(parsing.study_parse(video, colors, render_width, empty_x).position)[..., 0]
    return study_velocities(traj.position[..., 0], parsed, frames, collision)

  true_v, generated_v = study(prediction)
  _, floor_v = study(truth)

  params = np.asarray(scene.params_of(initial_state(traj)))
  return CaseErrors(
    params=params,
    level=sublevels(scene, params, split),
    velocity_error=np.asarray(error),
    velocity_error_mean_then_abs=np.asarray(error_mean),
    floor=np.asarray(floor_error),
    floor_mean_then_abs=np.asarray(floor_mean),
    velocity_error_study=np.abs(generated_v - true_v).mean(-1),
    floor_study=np.abs(floor_v - true_v).mean(-1),
    velocity_study=generated_v,
  )


def case_colors(
  traj: sims.Trajectory,
) -> tuple[tuple[tuple[float, ...], ...], np.ndarray, tuple[float, ...] | None]:
  """The colours to parse a batch with, each case's object -> colour index [n, K], and the
  parsers' empty-frame x per colour.

  Objects keep their colour across a batch in most scenes (the colours are then ordered by
  object, as the parsers expect); under an attribute pairing one ball is red in some cases and
  blue in others, and each case reads the colour of its own ball, absent at the study's x = 10.
  """
  table = np.asarray(traj.color)
  rows = [tuple(map(float, c)) for c in table.reshape(-1, 3)]
  colors = tuple(dict.fromkeys(rows))
  pick = np.array([colors.index(r) for r in rows]).reshape(table.shape[:2])
  empty_x = None if len(colors) == table.shape[1] else (sims.WORLD_SIZE,) * len(colors)
  return colors, pick, empty_x


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
  """Split-level numbers: means over the cases with scored frames, ours over all of them and
  the study's over those its small-radius filter keeps."""
  scored = np.isfinite(errors.velocity_error)
  study = np.isfinite(errors.velocity_error_study) & study_filter(scene, errors.params)

  def mean(values, mask):
    return float(np.mean(values[mask])) if mask.any() else float("nan")

  return {
    "velocity_error": mean(errors.velocity_error, scored),
    "velocity_error_mean_then_abs": mean(errors.velocity_error_mean_then_abs, scored),
    "floor": mean(errors.floor, scored),
    "floor_mean_then_abs": mean(errors.floor_mean_then_abs, scored),
    "count": int(scored.sum()),
    "cases": len(scored),
    "velocity_error_study": mean(errors.velocity_error_study, study),
    "floor_study": mean(errors.floor_study, study),
    "count_study": int(study.sum()),
  }


def study_filter(scene: sims.Scene, params: np.ndarray) -> np.ndarray:
  """[N] the cases the study's code keeps: r >= 0.6 for one ball, both r > 0.5 in a collision."""
  radii = params[:, list(radius_columns(scene))]
  min_radius = STUDY_MIN_RADIUS.get(scene.name, 0.0)
  return (radii > min_radius).all(1) if scene.num_objects == 2 else (radii >= min_radius).all(1)


def table_header() -> list[str]:
  """The header lines of the report's velocity table (rows: `table_row`)."""
  return [
    "| split | study's code: error (floor, n) | cases (scored) | mean abs error (floor) "
    "| mean-then-abs (floor) | frame MSE |",
    "|---|---|---|---|---|---|",
  ]


def table_row(name: str, numbers: dict[str, float]) -> str:
  """One row of the report's velocity table from `summarize`'s numbers (and "frame_mse")."""
  mse = f"{numbers['frame_mse']:.5f}" if "frame_mse" in numbers else ""
  return (
    f"| {name} "
    f"| {numbers['velocity_error_study']:.4f} ({numbers['floor_study']:.4f}, "
    f"{numbers['count_study']}) "
    f"| {numbers['cases']} ({numbers['count']}) "
    f"| {numbers['velocity_error']:.4f} ({numbers['floor']:.4f}) "
    f"| {numbers['velocity_error_mean_then_abs']:.4f} ({numbers['floor_mean_then_abs']:.4f}) "
    f"| {mse} |"
  )


def radius_columns(scene: sims.Scene) -> tuple[int, ...]:
  return tuple(i for i, name in enumerate(scene.param_names) if name.startswith("radius"))


def speed_columns(scene: sims.Scene) -> tuple[int, ...]:
  return tuple(i for i, name in enumerate(scene.param_names) if name.startswith("speed"))
