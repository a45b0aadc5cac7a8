"""The velocity-error probe: which frame pairs count, both aggregates, sub-levels, summaries."""

import jax
import jax.numpy as jnp
import numpy as np

import sims
from experiments import velocity_probe

DT = sims.FRAME_DT


def uniform_traj(n=4, num_frames=12):
  scene = sims.make("uniform_motion")
  state = sims.balls(
    jnp.tile(jnp.array([[[2.0, 5.0]]]), (n, 1, 1)),
    jnp.tile(jnp.array([[[1.5, 0.0]]]), (n, 1, 1)),
    jnp.full((n, 1), 1.0),
  )
  return scene, scene.rollout(state, num_frames)


def test_a_constant_offset_costs_nothing_and_a_drift_costs_its_speed():
  _, traj = uniform_traj()
  pairs = velocity_probe.scored_pairs(traj, context_frames=3, post_contact=False)
  offset = traj.position + 0.3
  error, error_mean = velocity_probe.velocity_errors(traj.position, offset, pairs)
  np.testing.assert_allclose(error, 0.0, atol=1e-4)
  drift = traj.position + jnp.arange(traj.num_frames)[None, :, None, None] * DT * 0.2
  error, error_mean = velocity_probe.velocity_errors(traj.position, drift, pairs)
  np.testing.assert_allclose(error, 0.2 * np.sqrt(2), rtol=1e-4)  # 0.2 in x and in y
  np.testing.assert_allclose(error_mean, 0.2 * np.sqrt(2), rtol=1e-4)


def test_the_two_aggregates_differ_on_jitter():
  _, traj = uniform_traj()
  pairs = velocity_probe.scored_pairs(traj, context_frames=3, post_contact=False)
  jitter = jnp.where(jnp.arange(traj.num_frames) % 2 == 0, 0.01, -0.01)[None, :, None, None]
  error, error_mean = velocity_probe.velocity_errors(
    traj.position, traj.position + jitter * jnp.array([1.0, 0.0]), pairs
  )
  np.testing.assert_allclose(error, 0.2, rtol=1e-3)  # every pair is off by 0.02 / 0.1
  assert float(error_mean.max()) < 0.05  # alternating errors cancel in the mean


def test_only_generated_pairs_in_view_count():
  _, traj = uniform_traj(num_frames=32)
  pairs = np.asarray(velocity_probe.scored_pairs(traj, context_frames=3, post_contact=False))
  assert not pairs[:, :3].any()
  x = np.asarray(traj.position[0, :, 0, 0])
  in_view = (x - 1.0 >= 0) & (x + 1.0 <= 10)
  np.testing.assert_array_equal(pairs[0, 3:, 0], (in_view[3:-1] & in_view[4:]))


def test_collisions_score_post_contact_pairs_only():
  state = sims.balls([[[2.0, 5.0], [7.0, 5.0]]], [[[2.0, 0.0], [-1.0, 0.0]]], [[0.8, 0.8]])
  traj = sims.make("collision").rollout(state, 32)
  pairs = np.asarray(velocity_probe.scored_pairs(traj, context_frames=3, post_contact=True))
  t_contact = (5.0 - 1.6) / 3.0  # 1.133 s
  first = int(np.ceil(t_contact / DT))
  assert not pairs[0, :first].any() and pairs[0, first, 0] and pairs[0, first, 1]


def test_sublevels_and_study_filter():
  scene = sims.make("uniform_motion")
  params = scene.eval_params("ood_rv", points=2)
  levels = velocity_probe.sublevels(scene, params, "ood_rv")
  assert set(levels) == {"ood_rv_low", "ood_rv_high", "ood_rv_cross"}
  np.testing.assert_array_equal(velocity_probe.sublevels(scene, params[:2], "id"), "id")
  errors = velocity_probe.CaseErrors(
    params=np.array([[0.5, 2.0], [1.0, 2.0], [1.0, 3.0]]),
    level=np.array(["id"] * 3),
    velocity_error=np.array([0.3, 0.1, np.nan]),
    velocity_error_mean_then_abs=np.array([0.2, 0.05, np.nan]),
    floor=np.array([0.02, 0.01, np.nan]),
    floor_mean_then_abs=np.array([0.01, 0.01, np.nan]),
  )
  summary = velocity_probe.summarize(scene, errors)
  assert summary["count"] == 2 and summary["cases"] == 3
  np.testing.assert_allclose(summary["velocity_error"], 0.2)
  np.testing.assert_allclose(summary["velocity_error_study_filter"], 0.1)  # r = 0.5 skipped
  assert summary["count_study_filter"] == 1


def test_case_errors_of_perfect_predictions_equal_the_floor():
  scene = sims.make("uniform_motion")
  state = scene.sample(jax.random.key(0), 4, "id")
  traj = scene.rollout(state, 16)
  frames = sims.render(traj, 64)
  errors = velocity_probe.case_errors(scene, traj, frames, frames, 3, "id")
  np.testing.assert_allclose(errors.velocity_error, errors.floor)
  # Per-pair mask-centroid jitter at 64 px is about 0.1-0.2 units / s; it averages out in the mean.
  assert np.all(errors.floor < 0.3) and np.all(errors.floor_mean_then_abs < 0.05)
  np.testing.assert_allclose(errors.params, scene.params_of(state), rtol=1e-6)
