"""Static elastic walls (`sims.walls`) and the composition scene (`sims.composition`)."""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import sims
from sims import composition, walls

KEY = jax.random.key(0)
DT = sims.FRAME_DT
KINDS = composition.KINDS
WALL_FACE = composition.WALL_FACE


def wall_state(position, velocity, radius, shape=None, wall_x=9.0, half_width=0.25):
  """One example of discs (or squares) and one wall, from plain lists."""
  position = jnp.asarray([position], jnp.float32)
  k = position.shape[1]
  return walls.WallState(
    position=position,
    velocity=jnp.asarray([velocity], jnp.float32),
    radius=jnp.asarray([radius], jnp.float32),
    color=jnp.broadcast_to(jnp.asarray(sims.RED), (1, k, 3)),
    shape=jnp.asarray([shape or [0] * k], jnp.int32),
    active=jnp.ones((1, k), bool),
    wall_x=jnp.asarray([[wall_x]], jnp.float32),
    wall_half_width=jnp.asarray([[half_width]], jnp.float32),
    wall_active=jnp.ones((1, 1), bool),
  )


# A red disc hits a resting blue disc off-centre; the blue disc bounces off the wall (face at
# 8.75) and meets the red disc again, and both leave the wall for good.
CHAIN = dict(
  position=[[2.0, 5.0], [6.0, 5.3]], velocity=[[3.0, 0.0], [0.0, 0.0]], radius=[1.0, 0.8]
)


def fine_step_reference(position, velocity, radius, wall_x, half_width, num_frames, dt=1e-4):
  """Positions [T, K, 2] from small explicit steps; contacts are resolved when objects overlap."""
  pos, vel = [list(p) for p in position], [list(v) for v in velocity]
  mass = [r * r for r in radius]
  frames, per_frame = [], round(DT / dt)
  for step in range((num_frames - 1) * per_frame + 1):
    if step % per_frame == 0:
      frames.append([list(p) for p in pos])
    for p, v in zip(pos, vel, strict=True):
      p[0] += v[0] * dt
      p[1] += v[1] * dt
    for p, v, r in zip(pos, vel, radius, strict=True):
      if abs(p[0] - wall_x) < r + half_width and (p[0] - wall_x) * v[0] < 0:
        v[0] = -v[0]
    dx, dy = pos[1][0] - pos[0][0], pos[1][1] - pos[0][1]
    dist = math.hypot(dx, dy)
    approach = ((vel[0][0] - vel[1][0]) * dx + (vel[0][1] - vel[1][1]) * dy) / dist
    if dist < radius[0] + radius[1] and approach > 0:
      total = mass[0] + mass[1]
      for i, sign in ((0, -1.0), (1, 1.0)):
        share = 2.0 * mass[1 - i] / total * approach * sign
        vel[i][0] += share * dx / dist
        vel[i][1] += share * dy / dist
  return np.asarray(frames)


def test_wall_bounce_flips_the_normal_velocity_at_the_exact_contact_time():
  # A disc moving up-right into the wall, a square moving left into it from the other side.
  state = wall_state(
    [[3.0, 2.0], [9.9, 5.0]],
    [[2.5, 1.5], [-0.5, 0.0]],
    [0.7, 0.3],
    shape=[0, sims.SHAPES.index("square")],
  )
  log = walls.events(state, max_events=3)
  time, between = np.asarray(log.time[0]), np.asarray(log.between[0])
  # Square: x - 0.3 = 9.25 at t = 0.35 / 0.5; disc: x + 0.7 = 8.75 at t = 5.05 / 2.5.
  np.testing.assert_allclose(time[1:3], [0.7, 2.02], atol=2e-6)
  np.testing.assert_array_equal(between[:2], [[1, 2], [0, 2]])
  np.testing.assert_array_equal(between[2], [-1, -1])
  np.testing.assert_allclose(log.position[0, 1, 1, 0], 9.25 + 0.3, atol=1e-6)
  np.testing.assert_allclose(log.position[0, 2, 0, 0], 8.75 - 0.7, atol=1e-6)
  velocity = np.asarray(log.velocity[0])
  np.testing.assert_array_equal(velocity[-1], [[-2.5, 1.5], [0.5, 0.0]])  # exact flips
  speed = np.linalg.norm(velocity, axis=-1)
  np.testing.assert_array_equal(speed[-1], speed[0])
  # Frames between events follow the straight lines exactly.
  position, _ = walls.rollout(state, num_frames=32)
  t = np.arange(32) * DT
  x_disc = np.where(t < 2.02, 3.0 + 2.5 * t, 8.05 - 2.5 * (t - 2.02))
  np.testing.assert_allclose(position[0, :, 0, 0], x_disc, atol=2e-6)
  np.testing.assert_allclose(position[0, :, 0, 1], 2.0 + 1.5 * t, atol=2e-6)


def test_contact_then_bounce_then_contact_conserves_and_matches_a_fine_step_reference():
  state = wall_state(**CHAIN)
  log = walls.events(state)
  between = np.asarray(log.between[0])
  np.testing.assert_array_equal(between[:4], [[0, 1], [1, 2], [0, 1], [-1, -1]])
  mass = np.asarray(state.mass[0])[:, None]
  velocity = np.asarray(log.velocity[0], np.float64)
  for event in (0, 2):  # the ball-ball contacts conserve momentum and energy
    before, after = velocity[event], velocity[event + 1]
    np.testing.assert_allclose((mass * after).sum(0), (mass * before).sum(0), atol=1e-5)
    np.testing.assert_allclose((mass * after**2).sum(), (mass * before**2).sum(), rtol=1e-6)
  gap = np.linalg.norm(np.diff(np.asarray(log.position[0, [1, 3]]), axis=1), axis=-1)
  np.testing.assert_allclose(gap[:, 0], 1.8, rtol=1e-6)  # they touch at the contacts
  position, _ = walls.rollout(state, num_frames=32)
  reference = fine_step_reference(**CHAIN, wall_x=9.0, half_width=0.25, num_frames=32)
  np.testing.assert_allclose(position[0], reference, atol=5e-3)


def positions(state, flat):
  """Positions [T, K, 2] of a one-example state started from flat = (position, velocity)."""
  moved = state.replace(position=flat[:4].reshape(1, 2, 2), velocity=flat[4:].reshape(1, 2, 2))
  return walls.rollout(moved, num_frames=32)[0][0]


@pytest.mark.slow
def test_gradients_are_finite_and_match_finite_differences():
  jacobian_of = jax.jit(jax.jacfwd(positions, argnums=1))
  state = wall_state(**CHAIN)
  flat = jnp.concatenate([state.position.ravel(), state.velocity.ravel()])
  jacobian = np.asarray(jacobian_of(state, flat))
  assert np.isfinite(jacobian).all()
  eps = 1e-3
  for i in range(flat.shape[0]):
    step = jnp.zeros_like(flat).at[i].set(eps)
    numeric = (positions(state, flat + step) - positions(state, flat - step)) / (2 * eps)
    np.testing.assert_allclose(jacobian[..., i], numeric, atol=1e-2)
  # Without any event (receding discs, no wall) gradients are finite and exact: d x(t) / d v = t.
  apart = wall_state([[3.0, 5.0], [6.0, 5.0]], [[-1.0, 0.0], [1.0, 0.0]], [0.7, 0.7])
  apart = apart.replace(wall_active=jnp.zeros((1, 1), bool))
  flat = jnp.concatenate([apart.position.ravel(), apart.velocity.ravel()])
  jacobian = np.asarray(jacobian_of(apart, flat)).reshape(32, 4, 8)
  t = np.arange(32)[:, None, None] * DT
  np.testing.assert_allclose(jacobian[..., :4], np.broadcast_to(np.eye(4), (32, 4, 4)), atol=1e-6)
  np.testing.assert_allclose(jacobian[..., 4:], t * np.eye(4), atol=1e-6)
  # Rendered frames have finite derivatives too, also with an absent object (inactive, radius 0).
  absent = state.replace(active=jnp.array([[False, True]]), radius=jnp.array([[0.0, 0.8]]))

  def frames(velocity):
    moved = absent.replace(velocity=velocity)
    return sims.render(walls.to_body_trajectory(moved, *walls.rollout(moved, 8)), 16)

  tangent = jax.jit(lambda v: jax.jvp(frames, (v,), (jnp.ones_like(v),))[1])(absent.velocity)
  assert np.isfinite(tangent).all() and np.abs(tangent).max() > 0


@functools.cache
def sampler(kind, num_frames):
  """The scene and a jitted key -> {split: 64 examples} (one compilation per scene)."""
  scene = sims.make("composition", kind=kind, num_frames=num_frames)
  return scene, jax.jit(lambda key: {split: scene.sample(key, 64, split) for split in scene.splits})


def scene_sample(kind, split, num_frames=32, key=KEY):
  scene, sample = sampler(kind, num_frames)
  state = sample(key)[split]
  return scene, state, np.asarray(state.event)


@pytest.mark.parametrize(
  "kind", ["temporal", *(pytest.param(k, marks=pytest.mark.slow) for k in KINDS if k != "temporal")]
)
def test_train_holds_both_training_events_half_and_half(kind):
  _, state, event = scene_sample(kind, "train")
  np.testing.assert_array_equal(np.bincount(event), [32, 32])
  between = np.asarray(walls.events(state).between)
  moving = np.abs(np.asarray(state.velocity[..., 0])) > 0
  red, wall = np.asarray(state.active[:, 0]), np.asarray(state.wall_active[:, 0])
  first, second = event == 0, event == 1
  if kind == "spatial":  # the square moves left alone, or the ball bounces alone
    np.testing.assert_array_equal(moving[first], [[False, True]] * 32)
    np.testing.assert_array_equal(moving[second], [[True, False]] * 32)
    assert (between[first] == -1).all()
    np.testing.assert_array_equal(between[second, 0], [[0, 2]] * 32)
    assert wall.all() and red.all()
    return
  # Collisions: red hits blue at rest, no wall; bounces: one ball into the wall.
  np.testing.assert_array_equal(moving[first], [[True, False]] * 32)
  np.testing.assert_array_equal(between[first, 0], [[0, 1]] * 32)
  assert not wall[first].any() and wall[second].all()
  bouncer = 0 if kind == "temporal" else 1
  np.testing.assert_array_equal(between[second, 0], [[bouncer, 2]] * 32)
  assert (between[second, 1] == -1).all()
  np.testing.assert_array_equal(red[second], kind == "temporal")


# The 8-frame clip checks the temporal test, the one with two timed events (the other events are
# placed by the same rules).
@pytest.mark.parametrize(
  "num_frames, window, cases",
  [
    (32, (0.8, 2.3), [(kind, split) for kind in KINDS for split in composition.SPLITS]),
    (8, (0.2, 0.5), [("temporal", "test")]),
  ],
)
def test_events_fall_inside_the_clip_by_the_studys_scaled_rule(num_frames, window, cases):
  earliest, latest = window
  for kind, split in cases:
    _, state, _ = scene_sample(kind, split, num_frames=num_frames)
    log = walls.events(state)
    time, between = np.asarray(log.time), np.asarray(log.between)
    timed = between[:, 0, 0] >= 0
    assert timed.all() or split == "train"  # every test video has its events
    assert np.all((time[timed, 1] >= earliest - 1e-4) & (time[timed, 1] <= latest + 1e-4))
    if split == "test" and kind != "spatial":  # then the blue ball reaches the wall
      np.testing.assert_array_equal(between[:, 1], [[1, 2]] * 64)
      assert np.all(time[:, 2] >= time[:, 1] + DT - 1e-4) and np.all(time[:, 2] <= latest + 1e-4)
    x, r = np.asarray(state.position[..., 0]), np.asarray(state.radius)
    right = np.where(np.asarray(state.wall_active), WALL_FACE, sims.WORLD_SIZE)
    in_view = (x - r >= -1e-4) & (x + r <= right + 1e-4) | ~np.asarray(state.active)
    assert in_view.all(1).mean() > 0.95


@pytest.mark.parametrize("kind", ["temporal", "temporal_no_red"])
def test_temporal_test_blue_ball_is_hit_then_rebounds_off_the_wall(kind):
  scene, state, event = scene_sample(kind, "test")
  assert (event == 2).all()
  traj = scene.rollout(state)
  blue_vx = np.asarray(traj.velocity[:, :, 1, 0])
  assert (blue_vx[:, 0] == 0).all()
  hit = np.argmax(blue_vx > 0, axis=1)
  rebound = np.argmax(blue_vx < 0, axis=1)
  assert np.all((hit > 0) & (rebound > hit))  # at rest, then right, then left in the clip
  assert np.asarray(traj.active[:, :2]).all()  # the red ball is there throughout
  mass = np.asarray(state.mass)
  meets_again = mass[:, 1] < 3 * mass[:, 0]
  assert meets_again.mean() > 0.5
  between = np.asarray(walls.events(state).between)
  np.testing.assert_array_equal(between[meets_again, 2], [[0, 1]] * meets_again.sum())


def test_spatial_test_square_moves_on_while_the_ball_bounces():
  scene, state, _ = scene_sample("spatial", "test")
  traj = scene.rollout(state)
  vx = np.asarray(traj.velocity[..., 0])
  np.testing.assert_array_equal(vx[:, :, 1], np.repeat(vx[:, :1, 1], 32, 1))
  assert (vx[:, :, 1] < 0).all()
  # The square stays in view for 24 frames wherever that fits left of the wall.
  x, r, speed = (np.asarray(a[:, 1]) for a in (state.position[..., 0], state.radius, -vx[:, 0]))
  fits = r + 24 * DT * speed <= WALL_FACE - r
  assert 0.2 < fits.mean() < 1.0
  assert np.all(x[fits] - r[fits] - 24 * DT * speed[fits] >= -1e-4)
  assert (vx[:, 0, 0] > 0).all() and (vx[:, -1, 0] < 0).all()
  y, r = np.asarray(state.position[..., 1]), np.asarray(state.radius)
  assert np.all(np.abs(y[:, 0] - y[:, 1]) >= r.sum(1) + composition.LANE_GAP - 1e-5)
  assert (np.asarray(traj.shape[:, :2]) == [sims.core.CIRCLE, sims.core.BOX]).all()


@pytest.mark.parametrize(
  "kind", ["spatial", *(pytest.param(k, marks=pytest.mark.slow) for k in KINDS if k != "spatial")]
)
def test_every_split_renders_at_32_px_with_the_wall_visible(kind):
  for split in composition.SPLITS:
    scene, state, _ = scene_sample(kind, split)
    frames = np.asarray(sims.render(scene.rollout(state, num_frames=8), resolution=32))
    assert frames.shape == (64, 8, 32, 32, 3)
    column = int(composition.WALL_X / sims.WORLD_SIZE * 32)
    dark = (frames[:, :, :, column].max(-1) < 0.1).all((1, 2))  # black, top to bottom
    np.testing.assert_array_equal(dark, np.asarray(state.wall_active[:, 0]))
    red = (frames[..., 0] > 0.9) & (frames[..., 1] < 0.1)
    np.testing.assert_array_equal(red.any((2, 3)).all(1), np.asarray(state.active[:, 0]))


def test_bad_kind_split_or_clip_raise_one_line_errors():
  with pytest.raises(ValueError, match=r"unknown kind .*'sideways'.*valid: spatial, temporal") as e:
    sims.make("composition", kind="sideways")
  assert "\n" not in str(e.value)
  scene = sims.make("composition")
  with pytest.raises(ValueError, match=r"unknown split .*'ood_v'.*valid: train, test") as e:
    scene.sample(KEY, 4, "ood_v")
  assert "\n" not in str(e.value)
  with pytest.raises(ValueError, match="valid: train, test"):
    scene.eval_params("id")
  with pytest.raises(ValueError, match="too short"):
    sims.make("composition", num_frames=3)


def assert_valid_params(kind, params):
  """Radii and speeds within the ranges where the event uses them and 0 elsewhere."""
  params = np.asarray(params)
  uses = np.asarray(composition.EVENT_USES[kind])[params[:, 0].astype(int)].astype(bool)
  lo, hi = np.array([0.7, 0.7, 1.0, 1.0]), np.array([1.4, 1.4, 4.0, 4.0])
  values = params[:, 1:]
  assert np.all(np.where(uses, (values >= lo - 1e-6) & (values <= hi + 1e-6), values == 0))


@pytest.mark.parametrize("kind", KINDS)
def test_same_key_same_data_and_valid_params(kind):
  scene, first, _ = scene_sample(kind, "train")
  _, second, _ = scene_sample(kind, "train")
  np.testing.assert_array_equal(first.position, second.position)
  np.testing.assert_array_equal(scene.params_of(first), scene.params_of(second))
  _, other, _ = scene_sample(kind, "train", key=jax.random.key(1))
  assert not np.array_equal(other.position, first.position)
  for split in scene.splits:
    assert_valid_params(kind, scene.params_of(scene_sample(kind, split)[1]))


@pytest.mark.parametrize(
  "kind", ["temporal", *(pytest.param(k, marks=pytest.mark.slow) for k in KINDS if k != "temporal")]
)
def test_pools_and_eval_grids_hold_each_events_columns(kind):
  scene = sims.make("composition", kind=kind)
  pool = scene.pool("30K")
  params = np.asarray(pool.params)
  assert pool.size == 30_000 and len(np.unique(params, axis=0)) == 30_000
  np.testing.assert_array_equal(np.bincount(params[:, 0].astype(int)), [15_000, 15_000])
  assert_valid_params(kind, params)
  if kind == "temporal_no_red":  # placing pool entries (one kind, to save compile time)
    drawn = jax.jit(scene.sample, static_argnums=1)(KEY, 64, pool)
    rows = {tuple(p) for p in params.round(4)}
    assert all(tuple(p) in rows for p in np.asarray(scene.params_of(drawn)).round(4))
  grid = scene.eval_params("test", points=3)
  np.testing.assert_array_equal(grid, scene.eval_params("test", points=3))
  assert (grid[:, 0] == 2).all() and len(np.unique(grid, axis=0)) == len(grid)
  assert set(scene.eval_params("train", points=3)[:, 0]) == {0, 1}
