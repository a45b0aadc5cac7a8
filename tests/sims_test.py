"""Physics, splits, pools and placement of the `sims` scenes."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import sims
from sims import physics

KEY = jax.random.key(0)
DT = sims.FRAME_DT


def rollout(name, n=64, split="train", **options):
  scene = sims.make(name, **options)
  state = scene.sample(KEY, n, split)
  return scene, state, scene.rollout(state)


def second_difference(position):
  return (position[:, 2:] - 2 * position[:, 1:-1] + position[:, :-2]) / DT**2


def test_uniform_motion_has_zero_acceleration_and_constant_velocity():
  _, state, traj = rollout("uniform_motion")
  np.testing.assert_allclose(second_difference(traj.position), 0.0, atol=2e-3)
  step_velocity = (traj.position[:, 1:] - traj.position[:, :-1]) / DT
  np.testing.assert_allclose(step_velocity, traj.velocity[:, 1:], atol=2e-3)
  np.testing.assert_allclose(traj.velocity[:, -1], state.velocity, atol=1e-6)


def test_parabola_accelerates_at_minus_2_5_in_y_only():
  _, state, traj = rollout("parabola")
  accel = second_difference(traj.position)
  np.testing.assert_allclose(accel[..., 0], 0.0, atol=2e-3)
  np.testing.assert_allclose(accel[..., 1], sims.GRAVITY, atol=5e-3)
  np.testing.assert_allclose(traj.velocity[:, -1, :, 0], state.velocity[..., 0], atol=1e-6)


@pytest.mark.slow
def test_collision_conserves_momentum_and_energy_and_matches_1d_formula():
  _, state, traj = rollout("collision", n=256)
  mass = np.asarray(state.mass)
  v_in = np.asarray(traj.velocity[:, 0, :, 0])
  v_out = np.asarray(traj.velocity[:, -1, :, 0])
  collided = np.any(np.abs(v_out - v_in) > 1e-3, axis=1)
  assert collided.mean() > 0.95  # placement puts the contact inside the video
  np.testing.assert_allclose((mass * v_out).sum(1), (mass * v_in).sum(1), rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(
    (mass * v_out**2).sum(1), (mass * v_in**2).sum(1), rtol=1e-5, atol=1e-5
  )
  m1, m2 = mass[:, 0], mass[:, 1]
  u1, u2 = v_in[:, 0], v_in[:, 1]
  expected1 = ((m1 - m2) * u1 + 2 * m2 * u2) / (m1 + m2)
  expected2 = ((m2 - m1) * u2 + 2 * m1 * u1) / (m1 + m2)
  np.testing.assert_allclose(v_out[collided, 0], expected1[collided], atol=1e-5)
  np.testing.assert_allclose(v_out[collided, 1], expected2[collided], atol=1e-5)
  np.testing.assert_allclose(traj.velocity[..., 1], 0.0)  # the motion stays on one line


def test_balls_touch_exactly_at_the_analytic_contact_time():
  state = sims.balls([[[2.0, 5.0], [7.0, 5.0]]], [[[2.0, 0.0], [-1.0, 0.0]]], [[1.0, 0.5]])
  t = physics.contact_time(state)
  np.testing.assert_allclose(t, (5.0 - 1.5) / 3.0, rtol=1e-6)
  # Equal masses moving head-on swap velocities.
  twin = sims.balls([[[2.0, 5.0], [7.0, 5.0]]], [[[2.0, 0.0], [-1.0, 0.0]]], [[1.0, 1.0]])
  traj = sims.make("collision").rollout(twin)
  np.testing.assert_allclose(traj.velocity[0, -1, :, 0], [-1.0, 2.0], atol=1e-6)
  gap = jnp.linalg.norm(traj.position[0, :, 1] - traj.position[0, :, 0], axis=-1)
  assert float(gap.min()) >= 2.0 - 1e-5  # the discs never overlap


def test_oblique_contact_conserves_momentum_in_2d():
  state = sims.balls([[[2.0, 5.0], [6.0, 5.6]]], [[[3.0, 0.0], [-1.0, 0.0]]], [[0.8, 0.7]])
  traj = sims.make("collision").rollout(state)
  mass = np.asarray(state.mass)[0, :, None]
  before, after = np.asarray(traj.velocity[0, 0]), np.asarray(traj.velocity[0, -1])
  np.testing.assert_allclose((mass * after).sum(0), (mass * before).sum(0), atol=1e-5)
  np.testing.assert_allclose((mass * after**2).sum(), (mass * before**2).sum(), rtol=1e-5)
  assert abs(after[1, 1]) > 0.1  # a glancing contact deflects ball 2 off the line


def test_receding_or_missing_balls_never_collide():
  state = sims.balls(
    [[[2.0, 5.0], [7.0, 5.0]], [[2.0, 2.0], [7.0, 8.0]]],
    [[[-1.0, 0.0], [1.0, 0.0]], [[1.0, 0.0], [-1.0, 0.0]]],
    [[0.5, 0.5], [0.5, 0.5]],
  )
  np.testing.assert_array_equal(physics.contact_time(state), physics.NO_CONTACT)
  traj = sims.make("collision").rollout(state)
  np.testing.assert_allclose(traj.velocity[:, -1], state.velocity, atol=1e-6)


@pytest.mark.parametrize("name", ["uniform_motion", "parabola", "collision"])
def test_ood_splits_are_outside_the_training_range_and_others_inside(name):
  scene = sims.make(name)
  train = scene.space.bands
  for split in scene.space.splits:  # band splits; the region splits: regions_test
    params = np.asarray(scene.sample_params(KEY, 512, split))
    modes = scene.space.splits[split]
    for column, bands in enumerate(train):
      inside = bands.contains_id(params[:, column])
      if np.all(modes[:, column] == 0):
        assert inside.all(), (split, scene.param_names[column])
      else:
        assert not inside.any(), (split, scene.param_names[column])


def test_named_ood_levels_match_the_study():
  assert {"ood_r", "ood_v", "ood_rv", "ood_rv_cross", "ood_v_low"} <= set(
    sims.make("uniform_motion").splits
  )
  collision = set(sims.make("collision").splits)
  for level in ("r1", "v1", "r1r2", "v1v2", "r1v1", "all"):
    assert {f"ood_{level}", f"ood_{level}_low", f"ood_{level}_high"} <= collision
  cross = np.asarray(sims.make("collision").sample_params(KEY, 256, "ood_r1r2_cross"))
  assert np.all((cross[:, 0] < 0.5) != (cross[:, 1] < 0.5))  # one small ball, one large


def test_train_and_id_draws_differ_for_the_same_key():
  scene = sims.make("uniform_motion")
  assert not np.allclose(scene.sample_params(KEY, 8, "train"), scene.sample_params(KEY, 8, "id"))


def test_bad_names_raise_one_line_errors_listing_valid_values():
  with pytest.raises(ValueError, match=r"unknown scene 'pendulum'; valid: uniform_motion"):
    sims.make("pendulum")
  with pytest.raises(ValueError, match=r"unknown split .*'ood_x'.*valid: train, id, ood_r"):
    sims.make("uniform_motion").sample(KEY, 2, "ood_x")
  with pytest.raises(ValueError, match=r"unknown dataset_size .*'1M'.*valid: 30K, 300K, 3M"):
    sims.make("collision").pool("1M")
  with pytest.raises(ValueError, match=r"unknown direction .*'up'.*valid: right, left"):
    sims.make("parabola", direction="up")
  # Options follow each scene's constructor; the gravity its subclass sets is not one of them.
  with pytest.raises(ValueError, match=r"unknown option 'gravity_y' for scene 'parabola'; valid: "):
    sims.make("parabola", gravity_y=1.0)
  with pytest.raises(ValueError, match=r"option 'speed' for scene 'movi'; valid: restitution, fri"):
    sims.make("movi", speed=2.0)
  assert sims.scene_options(sims.Collision) == ("colors", "shapes", "num_frames", "train_holes")


@pytest.mark.parametrize(
  "name, size, count",
  [
    ("uniform_motion", "30K", 30_000),
    ("uniform_motion", "3M", 3_000_000),
    ("parabola", "300K", 300_000),
    ("collision", "30K", 28_224),
    ("collision", "300K", 329_476),
    ("collision", "3M", 3_407_716),
  ],
)
def test_pools_have_the_study_sizes_inside_the_training_range(name, size, count):
  scene = sims.make(name)
  pool = scene.pool(size)
  assert pool.size == count
  params = np.asarray(pool.params)
  for column, bands in enumerate(scene.space.bands):
    assert bands.contains_id(params[:, column]).all()
  assert len(np.unique(params, axis=0)) == count


def test_pool_entries_are_fixed_examples():
  scene = sims.make("uniform_motion")
  pool = scene.pool("30K", seed=3)
  a = scene.sample(jax.random.key(1), 4096, pool)
  b = scene.sample(jax.random.key(2), 4096, pool)
  params_a, params_b = np.asarray(scene.params_of(a)), np.asarray(scene.params_of(b))
  # Entries drawn by both calls must have identical placements.
  rows_a = {tuple(p.round(5)): tuple(np.asarray(a.position[i, 0])) for i, p in enumerate(params_a)}
  shared = [
    (rows_a[tuple(p.round(5))], tuple(np.asarray(b.position[i, 0])))
    for i, p in enumerate(params_b)
    if tuple(p.round(5)) in rows_a
  ]
  assert len(shared) > 100
  for pos_a, pos_b in shared:
    np.testing.assert_allclose(pos_a, pos_b)


def test_same_key_same_data():
  scene = sims.make("collision")
  first, second = scene.sample(KEY, 16, "ood_all"), scene.sample(KEY, 16, "ood_all")
  np.testing.assert_array_equal(first.position, second.position)
  np.testing.assert_array_equal(first.velocity, second.velocity)


def test_uniform_motion_placement_keeps_the_ball_in_view_for_24_frames():
  scene, state, traj = rollout("uniform_motion", n=512)
  x, r = np.asarray(traj.position[:, :, 0, 0]), np.asarray(state.radius[:, 0:1])
  speed = np.asarray(state.velocity[:, 0, 0:1])
  # The study's rule applies where 24 frames of travel fit in the world; faster balls start left.
  fits = (10 - (24 * DT * speed + r) >= r)[:, 0]
  assert 0.3 < fits.mean() < 1.0
  in_view = (x - r >= -1e-4) & (x + r <= 10 + 1e-4)
  assert in_view[fits, :25].all()
  assert np.all(x[~fits, 0] - r[~fits, 0] <= 0.5 + 1e-5)
  y = np.asarray(state.position[:, 0, 1])
  assert np.all((y >= r[:, 0] + 0.5 - 1e-5) & (y <= 9.5 - r[:, 0] + 1e-5))
  np.testing.assert_allclose(scene.params_of(state), scene.params_of(state))


@pytest.mark.parametrize(
  "direction, axis, sign", [("right", 0, 1), ("left", 0, -1), ("up", 1, 1), ("down", 1, -1)]
)
def test_directions_move_the_ball_that_way_and_keep_it_in_view(direction, axis, sign):
  _, state, traj = rollout("uniform_motion", n=128, direction=direction)
  velocity = np.asarray(state.velocity[:, 0])
  assert np.all(np.sign(velocity[:, axis]) == sign)
  np.testing.assert_array_equal(velocity[:, 1 - axis], 0.0)
  p, r = np.asarray(traj.position[:, :25, 0]), np.asarray(state.radius)[:, :, None]
  fits = 10 - (24 * DT * np.abs(velocity[:, axis]) + r[:, 0, 0]) >= r[:, 0, 0]
  in_view = (p - r >= -1e-4) & (p + r <= 10 + 1e-4)
  assert in_view[fits].all()


def test_parabola_starts_in_the_top_band():
  _, state, _ = rollout("parabola", n=256)
  y, r = np.asarray(state.position[:, 0, 1]), np.asarray(state.radius[:, 0])
  assert np.all((y >= 8.5 - r - 1e-5) & (y <= 9.5 - r + 1e-5))


def test_collision_placement_contact_window_and_start_in_view():
  scene = sims.make("collision")
  state = scene.sample(KEY, 1024, "train")
  t = np.asarray(physics.contact_time(state))
  assert np.all((t >= 0.8 - 1e-4) & (t <= 2.3 + 1e-4))
  x, r = np.asarray(state.position[..., 0]), np.asarray(state.radius)
  # Both balls start in view wherever they can meet 8 frames later; the others meet then.
  speed = np.abs(np.asarray(state.velocity[:, :, 0])).sum(1)
  fits = (10 - 2 * r.sum(1)) / speed >= 0.8
  assert 0.9 < fits.mean() < 1.0
  assert np.all(x[fits] - r[fits] >= -1e-4) and np.all(x[fits] + r[fits] <= 10 + 1e-4)
  np.testing.assert_allclose(t[~fits], 0.8, atol=1e-4)
  np.testing.assert_allclose(state.position[:, 0, 1], state.position[:, 1, 1])
  params = np.asarray(scene.params_of(state))
  assert np.all(params[:, 2:] >= 1.0) and np.all(params[:, 2:] <= 4.0)


def test_collision_ood_placements_still_collide_after_frame_4():
  state = sims.make("collision").sample(KEY, 1024, "ood_all_high")
  t = np.asarray(physics.contact_time(state))
  assert np.all((t >= 0.4 - 1e-4) & (t <= 2.3 + 1e-4))


def test_hand_built_state_and_attributes():
  state = sims.balls(
    jnp.array([[[1.5, 5.0]]]),
    jnp.array([[[2.0, 0.0]]]),
    jnp.array([[1.0]]),
    color=[sims.BLUE],
    shape=jnp.array([[1]]),
  )
  traj = sims.make("uniform_motion").rollout(state, num_frames=11)
  np.testing.assert_allclose(traj.position[0, -1, 0], [3.5, 5.0], atol=1e-6)
  np.testing.assert_array_equal(traj.color[0, 0], [0.0, 0.0, 1.0])
  square = sims.make("uniform_motion", shape="square", color=(0.0, 1.0, 0.0))
  placed = square.sample(KEY, 2)
  np.testing.assert_array_equal(placed.shape, 1)
  np.testing.assert_array_equal(placed.color[..., 1], 1.0)


@pytest.mark.slow
def test_rollout_jits_and_vmaps():
  scene = sims.make("collision")
  state = scene.sample(KEY, 8)
  eager = scene.rollout(state)
  jitted = jax.jit(scene.rollout, static_argnums=1)(state, 32)
  np.testing.assert_allclose(eager.position, jitted.position, atol=1e-5)
  keys = jax.random.split(KEY, 3)
  batched = jax.vmap(lambda k: scene.rollout(scene.sample(k, 2)).position)(keys)
  assert batched.shape == (3, 2, 32, 2, 2)


@pytest.mark.parametrize("name", ["uniform_motion", "parabola", "collision"])
def test_eval_grids_are_deterministic_held_out_and_inside_their_bands(name):
  scene = sims.make(name)
  grid = scene.eval_params("id", points=5)
  assert grid.shape == (5 ** len(scene.param_names), len(scene.param_names))
  np.testing.assert_array_equal(grid, scene.eval_params("id", points=5))
  pool = np.asarray(scene.pool("30K").params)
  distance = np.abs(grid[:, None, :] - pool[None, :2000, :]).max(-1)
  assert distance.min() > 1e-4  # no ID evaluation point is a training point
  for split in scene.space.splits:
    params = scene.eval_params(split, points=3)
    modes = scene.space.splits[split]
    assert len(params) == len(modes) * 3 ** len(scene.param_names)
    for column, bands in enumerate(scene.space.bands):
      inside = bands.contains_id(params[:, column])
      assert inside.all() if np.all(modes[:, column] == 0) else not inside.any()


def test_register_adds_a_scene_once():
  class LeftMotion(sims.single_ball.UniformMotion):
    name = "left_motion"

    def __init__(self, **options):
      super().__init__(direction="left", **options)

  sims.register("left_motion", LeftMotion)
  try:
    assert "left_motion" in sims.names()
    state = sims.make("left_motion").sample(KEY, 4)
    assert np.all(np.asarray(state.velocity[:, 0, 0]) < 0)
    with pytest.raises(ValueError, match="'left_motion' is already registered"):
      sims.register("left_motion", LeftMotion)
  finally:
    sims._SCENES.pop("left_motion")


def approaching(traj):
  """[n, T] whether the two balls of each frame close in on each other (False once they bounced)."""
  velocity = np.asarray(traj.velocity[:, :, 1, 0] - traj.velocity[:, :, 0, 0])
  return velocity < 0


@pytest.mark.parametrize(
  "num_frames, train_pre, eval_pre, post", [(8, 2, 1, 2), (16, 4, 2, 4), (32, 8, 4, 8)]
)
def test_collisions_happen_inside_the_clip_by_the_studys_scaled_rule(
  num_frames, train_pre, eval_pre, post
):
  scene = sims.make("collision", num_frames=num_frames)
  for split, pre in [("train", train_pre), ("ood_all", eval_pre), ("id", eval_pre)]:
    closing = approaching(scene.rollout(scene.sample(KEY, 512, split), num_frames))
    assert closing[:, :pre].all(), split  # at least `pre` frames before the contact
    assert not closing[:, num_frames - post :].any(), split  # and `post` frames after it
  pool = scene.sample(KEY, 512, scene.pool("30K"))
  closing = approaching(scene.rollout(pool, num_frames))
  assert closing[:, :train_pre].all() and not closing[:, num_frames - post :].any()
  with pytest.raises(ValueError, match="num_frames=2 is too short for a collision; valid: >= 3"):
    sims.make("collision", num_frames=2)


@pytest.mark.parametrize("name", ["uniform_motion", "parabola"])
def test_single_balls_stay_in_view_for_the_studys_share_of_a_short_clip(name):
  scene = sims.make(name, num_frames=8)
  assert scene.min_visible_frames == 6  # 24 of 32 frames
  state = scene.sample(KEY, 1024)
  x, r = np.asarray(scene.rollout(state, 8).position[:, :, 0, 0]), np.asarray(state.radius)
  speed = np.abs(np.asarray(state.velocity[:, 0, 0]))
  fits = 10 - (6 * DT * speed + r[:, 0]) >= r[:, 0]
  assert fits.mean() > 0.95
  in_view = (x - r >= -1e-4) & (x + r <= 10 + 1e-4)
  assert in_view[fits, :7].all()
  # Starts spread over the whole stretch the rule allows, not only where 24 frames would fit.
  beyond_24 = x[:, 0] > 10 - (24 * DT * speed + r[:, 0])
  assert beyond_24.mean() > 0.3


def test_scenes_take_the_clip_length_where_they_time_events():
  assert sims.make("uniform_motion", num_frames=16).min_visible_frames == 12
  assert sims.make("collision", num_frames=16).contact_window == pytest.approx((0.4, 1.1))
  assert sims.make("phyre", num_frames=8).name == "phyre"  # PHYRE's tasks run as they run
  assert [sims.scaled_frames(8, n) for n in (3, 6, 8, 32, 64)] == [1, 2, 2, 8, 16]
  with pytest.raises(ValueError, match="num_frames must be >= 1, got 0"):
    sims.make("parabola", num_frames=0)
