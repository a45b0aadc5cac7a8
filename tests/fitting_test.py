"""Analysis by synthesis: fitting initial ball states to held-out ground-truth videos.

Videos are 32 frames, quantised to 8 bits as stored videos are, at 64 px in the default run
(also the study's 128 px in the slow sweep). A case would be excluded only if one of its balls
were never fully in view, so that no frame pins its size and centre; the scenes place every ball
fully in view at the start (one ball) or at the contact (collisions), so `held_out` asserts that
no case is excluded instead of filtering.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import sims
from sims import parsing

NUM_FRAMES = sims.NUM_FRAMES
RESOLUTION = 64
# The README's claim, asserted for every video of every test here: each fitted position and
# radius within 1e-4 world units of the truth, each velocity within 2e-4 world units / s.
# Measured at most 6e-5 (positions), 1.3e-5 (radii) and 1.2e-4 (velocities, the fast large
# balls entering from the edges; 6e-5 elsewhere, at 64 and at 128 px).
TOLERANCE = {"position": 1e-4, "radius": 1e-4, "velocity": 2e-4}
# Default run: one in-distribution and one OOD split per task, CASES_PER_SPLIT videos each, fitted
# as one batch (one compilation per task).
CASES_PER_SPLIT = 3
SPLITS = {
  "uniform_motion": ("id", "ood_v"),
  "parabola": ("id", "ood_r"),
  "collision": ("id", "ood_v1v2_high"),
}
# Slow sweep: the study's resolution, more cases, every kind of OOD level.
SLOW_CASES_PER_SPLIT = 8
SLOW_SPLITS = {
  "uniform_motion": ("id", "ood_v", "ood_r", "ood_rv", "ood_v_low", "ood_v_high"),
  "parabola": ("id", "ood_v", "ood_r", "ood_rv", "ood_v_high"),
  "collision": (
    "id",
    "ood_v1v2_high",
    "ood_v1v2_low",
    "ood_r1",
    "ood_r1r2",
    "ood_r1v1",
    "ood_all",
    "ood_all_high",
  ),
}


@functools.cache
def scene(name: str) -> sims.Scene:
  """One scene object per task, so that every fit of a task reuses one compilation."""
  return sims.make(name)


@functools.partial(jax.jit, static_argnums=(0, 1, 2))
def held_out_states(task: sims.Scene, splits: tuple[str, ...], per_split: int) -> sims.BallState:
  """Initial states drawn from `splits`, per_split each, in order."""
  states = [task.sample(jax.random.key(7), per_split, split) for split in splits]
  return jax.tree.map(lambda *fields: jnp.concatenate(fields), *states)


@functools.partial(jax.jit, static_argnums=(0, 2))
def render_held_out(
  task: sims.Scene, state: sims.BallState, resolution: int
) -> tuple[jax.Array, jax.Array]:
  """8-bit frames [n, T, H, W, 3], and whether every ball of a video is fully in view in some
  frame [n] (the exclusion criterion of the module docstring)."""
  traj = task.rollout(state, NUM_FRAMES)
  frames = jnp.round(sims.render(traj, resolution) * 255.0) / 255.0
  return frames, parsing.fully_in_view(traj.position, traj.radius).any(1).all(1)


@functools.cache
def held_out(
  name: str, splits: tuple[str, ...], per_split: int, resolution: int
) -> tuple[sims.BallState, jax.Array]:
  """Held-out initial states and their videos; no case is excluded (see the module docstring)."""
  state = held_out_states(scene(name), splits, per_split)
  frames, recoverable = render_held_out(scene(name), state, resolution)
  assert np.asarray(recoverable).all()
  return state, frames


def fit_errors(
  truth: sims.BallState, fitted: sims.BallState, residual: jax.Array
) -> dict[str, np.ndarray]:
  """Per-video largest error over balls and axes of a fitted initial state, and its residual."""

  def largest(error):
    return np.asarray(jnp.abs(error)).reshape(len(residual), -1).max(1)

  return {
    "position": largest(fitted.position - truth.position),
    "velocity": largest(fitted.velocity - truth.velocity),
    "radius": largest(fitted.radius - truth.radius),
    "residual": np.asarray(residual),
  }


def check_recovered(errors: dict[str, np.ndarray]) -> None:
  """The fit found the truth (TOLERANCE), up to the 8-bit rounding of the video."""
  for field, tolerance in TOLERANCE.items():
    assert errors[field].max() < tolerance, (field, errors[field].max())
  # The RMS error of 8-bit rounding on the rims (measured 4e-5 to 1.6e-4); balls off by one pixel
  # leave 0.03 to 0.07.
  assert errors["residual"].max() < 3e-4


@pytest.mark.parametrize("name", ["uniform_motion", "parabola"])
def test_fit_recovers_held_out_initial_states(name):
  state, frames = held_out(name, SPLITS[name], CASES_PER_SPLIT, RESOLUTION)
  check_recovered(fit_errors(state, *sims.fit_initial_state(scene(name), frames)))


@pytest.mark.slow
@pytest.mark.parametrize("name", list(SLOW_SPLITS))
def test_fit_recovers_every_split_at_the_study_resolution(name):
  state, frames = held_out(name, SLOW_SPLITS[name], SLOW_CASES_PER_SPLIT, 128)
  check_recovered(fit_errors(state, *sims.fit_initial_state(scene(name), frames)))


@pytest.mark.slow
def test_fit_recovers_fast_large_balls_that_enter_from_the_edges():
  # Radii 1.7-2 and speeds 4.5-6: both balls start cut by the edges and are fully in view in only
  # 3-5 frames around the contact. Starting them at rest (no two whole centres among the first
  # frames) left 6 of 64 such cases in a local minimum, velocity errors up to 0.6.
  state, frames = held_out("collision", ("ood_all_high",), 32, RESOLUTION)
  check_recovered(fit_errors(state, *sims.fit_initial_state(scene("collision"), frames)))


@pytest.mark.slow
def test_frozen_fields_keep_their_start_values():
  state, frames = held_out("uniform_motion", SPLITS["uniform_motion"], CASES_PER_SPLIT, RESOLUTION)
  start = state.replace(radius=state.radius * 1.1, velocity=state.velocity + 0.3)
  fitted, residual = sims.fit_initial_state(
    scene("uniform_motion"), frames, init=start, fit_velocity=False, fit_radius=False
  )
  np.testing.assert_array_equal(fitted.velocity, start.velocity)
  np.testing.assert_array_equal(fitted.radius, start.radius)
  # The position alone cannot explain a ball 10% too large moving 0.3 units / s too fast.
  assert np.asarray(residual).min() > 0.01
  # The residual is the RMS error of the fitted video over all its frames, pixels and channels.
  fitted_video = sims.render(scene("uniform_motion").rollout(fitted, NUM_FRAMES), RESOLUTION)
  rms = np.sqrt(np.mean((np.asarray(fitted_video) - np.asarray(frames)) ** 2, axis=(1, 2, 3, 4)))
  np.testing.assert_allclose(residual, rms, rtol=1e-3)


@pytest.mark.slow
def test_physics_score_recovers_held_out_collisions_and_their_conservation_laws():
  name = "collision"  # the fit of collisions is checked here, through physics_score
  state, frames = held_out(name, SPLITS[name], CASES_PER_SPLIT, RESOLUTION)
  n = len(frames)
  score = sims.physics_score(scene(name), frames)
  shapes = {
    "fit_residual": (n,),
    "params": (n, 4),
    "position": (n, 2, 2),
    "velocity": (n, 2, 2),
    "radius": (n, 2),
    "law_count": (n,),
    "momentum": (n,),
    "energy": (n,),
  }
  assert {key: value.shape for key, value in score.items()} == shapes

  fitted = state.replace(
    position=score["position"], velocity=score["velocity"], radius=score["radius"]
  )
  check_recovered(fit_errors(state, fitted, score["fit_residual"]))
  np.testing.assert_allclose(score["params"], scene(name).params_of(state), atol=1e-3)
  assert np.all(np.asarray(score["law_count"]) > 0)
  # An elastic collision keeps its momentum and energy, up to the soft parser's noise.
  assert np.asarray(score["momentum"]).max() < 0.03 and np.asarray(score["energy"]).max() < 0.05


def test_collision_rollout_is_differentiable_through_the_contact_time():
  collision = scene("collision")
  num_frames, resolution = 16, 32

  def start(speed):  # head-on, ball 1 at `speed`: contact at 3.5 / (speed + 1) s, near frame 12
    return sims.balls(
      jnp.asarray([[[2.0, 5.0], [7.0, 5.0]]]),
      jnp.stack([jnp.stack([speed, 0.0]), jnp.asarray([-1.0, 0.0])])[None],
      jnp.asarray([[1.0, 0.5]]),
    )

  def video(speed):
    return sims.render(collision.rollout(start(speed), num_frames), resolution)

  def last_positions(speed):  # x of both balls in the last frame, long after the contact
    return collision.rollout(start(speed), num_frames).position[0, -1, :, 0]

  def video_loss(speed):  # against the video at speed 2
    return jnp.sum((video(speed) - video(jnp.asarray(2.0))) ** 2)

  step = 1e-2

  @jax.jit
  @jax.vmap
  def derivatives(speed):
    central_difference = (last_positions(speed + step) - last_positions(speed - step)) / (2 * step)
    return jax.grad(video_loss)(speed), jax.jacfwd(last_positions)(speed), central_difference

  # Contact times from 1.21 s to 1.06 s, across frames 12 and 11 (3.5 / 1.1 - 1: on frame 11).
  speeds = jnp.asarray([1.9, 2.05, 2.15, 3.5 / 1.1 - 1.0, 2.25])
  gradients, jacobians, differences = map(np.asarray, derivatives(speeds))
  assert np.isfinite(gradients).all() and np.all(np.abs(gradients) > 1.0)
  assert np.all(np.sign(gradients) == np.sign(np.asarray(speeds) - 2.0))  # towards the target
  # Late positions depend on the speed through the contact time too (where the balls meet and
  # when they switch velocities): the Jacobian matches central differences.
  np.testing.assert_allclose(jacobians, differences, rtol=1e-3, atol=1e-3)


def test_bad_arguments_raise_one_line_value_errors():
  frames = jnp.ones((1, 4, 16, 16, 3))
  uniform_motion = scene("uniform_motion")
  cases = [
    ((uniform_motion, frames[0]), {}, r"frames must have shape \[n, T, H, W, 3\]"),
    ((uniform_motion, frames[:, :1]), {}, "at least 2 frames"),
    ((uniform_motion, frames[:, :, :8]), {}, "frames must be square"),
    ((uniform_motion, frames), {"num_steps": 0}, "num_steps must be >= 1"),
    ((uniform_motion, frames), {"edge_px": 0.5}, "edge_px must be >= 1"),
    ((uniform_motion, frames), {"colors": [sims.RED, sims.BLUE]}, "colors must be 1 RGB triples"),
    ((3, frames), {}, "scene must be a sims.Scene or a scene name"),
    (("pendulum", frames), {}, "unknown scene 'pendulum'"),
  ]
  wrong_init = sims.balls(jnp.zeros((2, 1, 2)), jnp.zeros((2, 1, 2)), jnp.ones((2, 1)))
  cases.append(((uniform_motion, frames), {"init": wrong_init}, r"init must hold \[1, 1\] balls"))
  for args, options, message in cases:
    with pytest.raises(ValueError, match=message) as error:
      sims.fit_initial_state(*args, **options)
    assert "\n" not in str(error.value)
