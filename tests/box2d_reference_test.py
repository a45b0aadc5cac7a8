"""Tests of the stock Box2D + numpy reference pipeline against closed-form physics."""

import numpy as np
import pytest

pytest.importorskip("Box2D")

from benchmarks import box2d_reference as ref

NUM_STEPS = (ref.NUM_FRAMES - 1) * ref.STEPS_PER_FRAME
TIMES = np.arange(ref.NUM_FRAMES) * ref.FRAME_DT
# Box2D keeps positions in float32 and adds h * v once per step: each addition rounds by at most
# half a float32 ulp, and |x| < 16 inside the world plus 3.1 s of travel at these speeds.
FLOAT32_DRIFT = NUM_STEPS * 0.5 * float(np.spacing(np.float32(16.0)))


def _single_balls(rng, n):
  position = rng.uniform(1.0, 9.0, (n, 1, 2))
  velocity = rng.uniform(-2.0, 2.0, (n, 1, 2))
  radius = rng.uniform(0.5, 1.5, (n, 1))
  return position, velocity, radius


def _float32_euler(position, velocity, gravity):
  """Box2D's integrator replayed in float32: v += h g, then x += h v, every step."""
  step, gravity = np.float32(ref.TIME_STEP), np.asarray(gravity, np.float32)
  x, v = position.astype(np.float32), velocity.astype(np.float32)
  frames = [x]
  for _ in range(ref.NUM_FRAMES - 1):
    for _ in range(ref.STEPS_PER_FRAME):
      v = v + step * gravity
      x = x + step * v
    frames.append(x)
  return np.stack(frames, 1)


def _head_on(r1, r2, v1, v2, gap=1.0):
  """One video of two balls on y = 5 closing head-on with `gap` between their surfaces."""
  position = np.array([[[3.0, 5.0], [3.0 + r1 + r2 + gap, 5.0]]])
  velocity = np.array([[[v1, 0.0], [v2, 0.0]]])
  return position, velocity, np.array([[r1, r2]])


def test_free_flight_is_uniform_motion():
  position, velocity, radius = _single_balls(np.random.default_rng(0), 8)
  positions, velocities = ref.simulate(position, velocity, radius)
  np.testing.assert_allclose(positions, _float32_euler(position, velocity, (0, 0)), atol=1e-6)
  exact = position[:, None] + velocity[:, None] * TIMES[:, None, None]
  np.testing.assert_allclose(positions, exact, rtol=0, atol=FLOAT32_DRIFT)
  np.testing.assert_allclose(
    velocities, np.broadcast_to(velocity[:, None], velocities.shape), atol=1e-6
  )


def test_parabola_has_semi_implicit_euler_bias():
  position, velocity, radius = _single_balls(np.random.default_rng(1), 8)
  gravity = np.array(ref.PARABOLA_GRAVITY)
  positions, velocities = ref.simulate(position, velocity, radius, ref.PARABOLA_GRAVITY)
  np.testing.assert_allclose(positions, _float32_euler(position, velocity, gravity), atol=1e-6)
  t = TIMES[:, None, None]
  exact = position[:, None] + velocity[:, None] * t + 0.5 * gravity * t**2
  # Semi-implicit Euler lands at x0 + v t + g dt^2 N (N + 1) / 2: the closed form plus g t dt / 2.
  bias = 0.5 * gravity * ref.TIME_STEP * t
  np.testing.assert_allclose(positions - exact, np.broadcast_to(bias, exact.shape), atol=1e-4)
  assert np.abs(positions - exact).max() == pytest.approx(0.5 * 2.5 * 0.01 * 3.1, abs=1e-4)
  np.testing.assert_allclose(velocities, velocity[:, None] + gravity * t, atol=1e-4)


@pytest.mark.parametrize(
  ("r1", "r2", "v1", "v2"), [(1.0, 1.0, 2.0, -2.0), (0.6, 1.4, 3.5, -1.5), (1.3, 0.7, 1.2, -2.8)]
)
def test_fast_head_on_collision_is_elastic(r1, r2, v1, v2):
  positions, velocities = ref.simulate(*_head_on(r1, r2, v1, v2))
  mass = np.pi * np.array([r1, r2]) ** 2
  momentum = (mass * velocities[0, :, :, 0]).sum(-1)
  energy = (0.5 * mass * (velocities[0] ** 2).sum(-1)).sum(-1)
  momentum_scale = np.abs(mass * [v1, v2]).sum()
  np.testing.assert_allclose(momentum, momentum[0], rtol=0, atol=1e-2 * momentum_scale)
  np.testing.assert_allclose(energy, energy[0], rtol=1e-2)
  total = mass.sum()
  elastic = [
    ((mass[0] - mass[1]) * v1 + 2 * mass[1] * v2) / total,
    ((mass[1] - mass[0]) * v2 + 2 * mass[0] * v1) / total,
  ]
  np.testing.assert_allclose(velocities[0, -1, :, 0], elastic, rtol=1e-2)
  # Contacts are found one step late, so discs overlap by at most one step of closing motion.
  max_overlap = (v1 - v2) * ref.TIME_STEP
  assert np.all(np.diff(positions[0, :, :, 0], axis=-1) >= r1 + r2 - max_overlap)


def test_slow_collision_is_inelastic_in_stock_box2d():
  r1, r2, v1, v2 = 1.0, 0.8, 0.3, -0.2  # closing speed 0.5 < b2_velocityThreshold = 1
  _, velocities = ref.simulate(*_head_on(r1, r2, v1, v2, gap=0.5))
  mass = np.pi * np.array([r1, r2]) ** 2
  common = (mass[0] * v1 + mass[1] * v2) / mass.sum()
  np.testing.assert_allclose(velocities[0, -1, :, 0], [common, common], atol=1e-4)
  energy = (0.5 * mass * (velocities[0] ** 2).sum(-1)).sum(-1)
  assert energy[-1] / energy[0] == pytest.approx(
    mass.sum() * common**2 / (mass * [v1, v2]).dot([v1, v2]), abs=1e-3
  )
  assert energy[-1] < 0.5 * energy[0]


def _centroid(mask, resolution):
  rows, cols = np.nonzero(mask)
  scale = ref.WORLD_SIZE / (resolution - 1)
  return np.array([cols.mean() * scale, ref.WORLD_SIZE - rows.mean() * scale])


def test_render_centroids_follow_balls():
  resolution = 96
  positions = np.array([[[2.5, 7.0], [7.2, 3.1]], [[3.3, 2.2], [6.0, 8.4]]])
  radius = np.array([1.2, 0.8])
  frames = ref.render(positions, radius, [ref.RED, ref.BLUE], resolution)
  assert frames.shape == (2, resolution, resolution, 3) and frames.dtype == np.uint8
  pixel = ref.WORLD_SIZE / (resolution - 1)
  for frame, centres in zip(frames, positions, strict=True):
    channels = frame.astype(int)
    red = (channels[..., 0] > 127) & (channels[..., 2] < 128)
    blue = (channels[..., 2] > 127) & (channels[..., 0] < 128)
    np.testing.assert_allclose(_centroid(red, resolution), centres[0], atol=0.2 * pixel)
    np.testing.assert_allclose(_centroid(blue, resolution), centres[1], atol=0.2 * pixel)
    area = np.pi * (radius / pixel) ** 2
    np.testing.assert_allclose([red.sum(), blue.sum()], area, rtol=0.05)
    assert np.all(frame[~(red | blue)].min(-1) > 0) and frame[0, 0].tolist() == [255, 255, 255]


def test_render_batched_matches_single_and_soft_edge():
  positions = np.array([[[[5.0, 5.0]]], [[[4.0, 6.0]]]])  # [n=2, T=1, K=1, 2]
  radius = np.array([[2.0], [1.0]])
  batched = ref.render(positions, radius, [ref.RED], 64)
  assert batched.shape == (2, 1, 64, 64, 3)
  np.testing.assert_array_equal(batched[1], ref.render(positions[1], radius[1], [ref.RED], 64))
  # On the grid point nearest the centre alpha = 1; at distance r * sqrt(1 - 0.03 / 2), alpha = 1/2.
  coords = np.linspace(0.0, 1.0, 64) * ref.WORLD_SIZE
  dist = np.hypot(coords[None, :] - 5.0, coords[::-1, None] - 5.0)
  alpha = np.clip((4.0 - dist**2) / (4.0 * ref.EDGE_WIDTH), 0, 1)
  np.testing.assert_array_equal(batched[0, 0, ..., 1], (255 * (1 - alpha)).astype(np.uint8))
  assert 0 < np.count_nonzero((alpha > 0) & (alpha < 1)) < 0.1 * np.count_nonzero(alpha)


@pytest.mark.parametrize("scene", ref.SCENES)
def test_sample_initial_state_ranges(scene):
  n = 200
  position, velocity, radius, colors, gravity = ref.sample_initial_state(
    np.random.default_rng(2), scene, n
  )
  num_balls = 2 if scene == "collision" else 1
  assert position.shape == velocity.shape == (n, num_balls, 2) and radius.shape == (n, num_balls)
  assert colors.shape == (num_balls, 3)
  assert gravity == (ref.PARABOLA_GRAVITY if scene == "parabola" else (0.0, 0.0))
  np.testing.assert_array_equal(velocity[..., 1], 0.0)
  assert np.all(position[..., 0] >= radius)
  assert np.all(position[..., 1] + radius <= ref.WORLD_SIZE - ref.MARGIN)
  if scene == "collision":
    assert np.all((radius >= 0.5) & (radius <= 1.5))
    assert np.all(velocity[:, 0, 0] >= 1.0) and np.all(-velocity[:, 1, 0] <= 4.0)
    assert np.all(position[:, 1, 0] + radius[:, 1] <= ref.WORLD_SIZE)
    gap = position[:, 1, 0] - position[:, 0, 0] - radius.sum(-1)
    contact_time = gap / (velocity[:, 0, 0] - velocity[:, 1, 0])
    assert contact_time.min() >= 0.4 and contact_time.max() <= 2.3
    assert np.ptp(contact_time) > 1.0
  else:
    assert np.all((radius >= 0.7) & (radius <= 1.4))
    assert np.all((velocity[..., 0] >= 1.0) & (velocity[..., 0] <= 4.0))
    if scene == "parabola":
      assert np.all(position[..., 1] + radius >= ref.WORLD_SIZE - ref.MARGIN - 1.0)
    else:
      assert np.all(position[..., 1] - radius >= ref.MARGIN)


def test_generate_videos_and_unknown_scene():
  videos = ref.generate_videos(np.random.default_rng(3), "collision", 2, resolution=32)
  assert videos.shape == (2, ref.NUM_FRAMES, 32, 32, 3) and videos.dtype == np.uint8
  red = (videos[..., 0] > 127) & (videos[..., 2] < 128)
  blue = (videos[..., 2] > 127) & (videos[..., 0] < 128)
  assert red[:, 0].any() and blue[:, 0].any()
  with pytest.raises(ValueError, match=r"unknown scene 'pendulum'; valid: uniform_motion"):
    ref.sample_initial_state(np.random.default_rng(0), "pendulum", 1)
