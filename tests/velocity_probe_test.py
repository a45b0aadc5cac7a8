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
    params=np.array([[0.5, 2.0], [1.0, 2.0], [1.0, 3.0], [0.6, 1.0]]),
    level=np.array(["id"] * 4),
    velocity_error=np.array([0.3, 0.1, np.nan, 0.2]),
    velocity_error_mean_then_abs=np.array([0.2, 0.05, np.nan, 0.05]),
    floor=np.array([0.02, 0.01, np.nan, 0.03]),
    floor_mean_then_abs=np.array([0.01, 0.01, np.nan, 0.01]),
    velocity_error_study=np.array([0.9, 0.04, 0.5, np.nan]),
    floor_study=np.array([0.9, 0.01, 0.03, np.nan]),
    velocity_study=np.zeros((4, 1)),
  )
  summary = velocity_probe.summarize(scene, errors)
  assert summary["count"] == 3 and summary["cases"] == 4
  np.testing.assert_allclose(summary["velocity_error"], 0.2)
  # The study's: r = 0.5 skipped (r >= 0.6 kept), the NaN skipped: (0.04 + 0.5) / 2.
  np.testing.assert_allclose(summary["velocity_error_study"], 0.27)
  np.testing.assert_allclose(summary["floor_study"], 0.02)
  assert summary["count_study"] == 2
  row = velocity_probe.table_row("id", {**summary, "frame_mse": 0.00123})
  assert row == "| id | 0.2700 (0.0200, 2) | 4 (3) | 0.2000 (0.0200) | 0.1000 (0.0100) | 0.00123 |"
  assert row.count("|") == velocity_probe.table_header()[0].count("|")


def test_case_errors_of_perfect_predictions_equal_the_floor():
  scene = sims.make("uniform_motion")
  state = scene.sample(jax.random.key(0), 4, "id")
  traj = scene.rollout(state, 16)
  frames = sims.render(traj, 64)
  errors = velocity_probe.case_errors(scene, traj, frames, frames, 3, "id")
  np.testing.assert_allclose(errors.velocity_error, errors.floor)
  np.testing.assert_allclose(errors.velocity_error_study, errors.floor_study)
  # The study's grid reads speeds (256 - 1) / 256 of the truth: about |v_x| / 256 on top.
  bias = np.abs(np.asarray(traj.velocity[:, 0, 0, 0])) / 256
  np.testing.assert_allclose(errors.floor_study, bias, atol=0.01)
  # Per-pair mask-centroid jitter at 64 px is about 0.1-0.2 units / s; it averages out in the mean.
  assert np.all(errors.floor < 0.3) and np.all(errors.floor_mean_then_abs < 0.05)
  np.testing.assert_allclose(errors.params, scene.params_of(state), rtol=1e-6)


def one_ball(x, y=5.0):
  """Positions [1, T, 1, 2] of one ball at x positions `x` and height `y`."""
  x = np.asarray(x, np.float64)
  return np.stack([x, np.full_like(x, y)], -1)[None, :, None]


def test_study_frames_start_at_3_and_need_the_ball_in_view():
  position = one_ball([1.0, 2.0, 3.0, 8.0, 9.0, 9.5])
  frames = velocity_probe.study_frames(position, np.array([[1.0]]), collision=False)
  np.testing.assert_array_equal(frames, [[False, False, False, True, True, False]])
  low = velocity_probe.study_frames(one_ball([5.0] * 5, y=0.5), np.array([[1.0]]), False)
  assert not low.any()  # one ball: y counts too


def test_study_frames_of_a_collision_check_the_outer_edges_in_x_only():
  left = one_ball([1.0, 1.0, 1.0, 1.0, 0.9, 1.5], y=-3.0)  # below the view: ignored
  right = one_ball([9.0, 9.0, 9.0, 9.0, 9.0, 9.6])
  position = np.concatenate([left, right], axis=2)
  frames = velocity_probe.study_frames(position, np.array([[1.0, 0.5]]), collision=True)
  # Frame 4: the left ball's left edge at -0.1; frame 5: the right ball's right edge at 10.1.
  np.testing.assert_array_equal(frames, [[False, False, False, True, False, False]])


def test_study_error_of_one_ball_averages_velocities_over_kept_frames_then_takes_abs():
  true_x = 1.0 + 0.2 * np.arange(7)  # v = 2
  vanished = true_x.copy()
  vanished[6] = 10.0  # empty mask in the last frame: the study's fallback x = 10
  kept = np.arange(7) >= 3
  gap = kept & (np.arange(7) != 5)  # frames 3, 4, 6 differenced as one sequence
  off = true_x + np.where(np.arange(7) == 6, 0.05, 0.0)
  errors = velocity_probe.study_errors(
    np.stack([true_x] * 4)[..., None],
    np.stack([vanished, true_x, off, true_x])[..., None],
    np.stack([kept, kept, gap, kept & (np.arange(7) == 3)]),
    collision=False,
  )
  # (10 - 1.6) / 0.3 = 28 against 2; exact; (x6 + 0.05 - x3) / 0.2 = 2.25; one frame: no pair.
  np.testing.assert_allclose(errors[:3], [26.0, 0.0, 0.25], atol=1e-9)
  assert np.isnan(errors[3])


def collision_case():
  """True x [10, 2] of two balls meeting at frame 5 (2 and -1, then -1 and 2 units / s)."""
  left = np.array([2.0, 2.2, 2.4, 2.6, 2.8, 3.0, 2.9, 2.8, 2.7, 2.6])
  right = np.array([6.0, 5.9, 5.8, 5.7, 5.6, 5.5, 5.7, 5.9, 6.1, 6.3])
  return np.stack([left, right], -1)


def test_study_error_of_a_collision_scores_pairs_after_the_velocity_jump():
  true_x = collision_case()
  parsed = true_x.copy()
  parsed[5, 0] = 3.5  # only in pairs (4, 5) and (5, 6): before the window
  parsed[9, 1] += 0.06
  kept = np.arange(10) >= 3
  # Kept pairs (3,4) ... (8,9); the jump is at pair (5,6), so pairs (6,7), (7,8), (8,9) count.
  assert velocity_probe.collision_pair(np.diff(true_x[kept], axis=0) / DT) == 2
  # Right ball: (6.36 - 5.7) / 0.3 = 2.2 against 2; left ball exact; mean over balls 0.1.
  error = velocity_probe.study_errors(true_x[None], parsed[None], kept[None], collision=True)
  np.testing.assert_allclose(error, [0.1], atol=1e-9)


def test_a_ball_leaving_the_view_ends_the_collision_window_for_both():
  true_x = collision_case()
  true_x[9, 1] = 9.8  # the right ball's right edge leaves the view at frame 9
  parsed = true_x.copy()
  parsed[9, 0] = 0.0  # the left ball is still in view, but frame 9 no longer counts
  parsed[8, 1] += 0.06
  position = np.stack([true_x, np.full_like(true_x, 5.0)], -1)[None]
  frames = velocity_probe.study_frames(position, np.array([[0.5, 0.5]]), collision=True)
  np.testing.assert_array_equal(frames[0], (np.arange(10) >= 3) & (np.arange(10) < 9))
  error = velocity_probe.study_errors(true_x[None], parsed[None], frames, collision=True)
  np.testing.assert_allclose(error, [0.15], atol=1e-9)  # right: (6.16 - 5.7) / 0.2 = 2.3


def test_a_collision_without_a_velocity_jump_has_no_score():
  true_x = np.stack([2.0 + 0.2 * np.arange(10), 8.0 - 0.1 * np.arange(10)], -1)
  error = velocity_probe.study_errors(true_x[None], true_x[None], np.ones((1, 10), bool), True)
  assert np.isnan(error[0])
