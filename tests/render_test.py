"""The differentiable renderer: geometry, colours, compositing and gradients."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import sims
from sims.rendering import pixel_centres

RES = 128
PIXEL = sims.WORLD_SIZE / RES


def one_ball(position, radius, color=sims.RED, shape=0):
  state = sims.balls(
    jnp.asarray(position, jnp.float32).reshape(-1, 1, 2),
    jnp.zeros((len(position), 1, 2)),
    jnp.asarray(radius, jnp.float32).reshape(-1, 1),
    color=[color],
    shape=jnp.full((len(position), 1), shape),
  )
  return sims.make("uniform_motion").rollout(state, num_frames=1)


def centroids(mask):
  """World-unit centroids [n, 2] of [n, H, W] weights, y up."""
  xs, ys = pixel_centres(mask.shape[-1])
  total = mask.sum((1, 2))
  return np.stack(
    [(mask.sum(1) * np.asarray(xs)).sum(1) / total, (mask.sum(2) * np.asarray(ys)).sum(1) / total],
    -1,
  )


def test_soft_and_thresholded_centroids_recover_the_true_position():
  rng = np.random.default_rng(0)
  position = rng.uniform(2.5, 7.5, (64, 2))
  radius = rng.uniform(0.3, 2.0, 64)
  frames = np.asarray(sims.render(one_ball(position, radius), RES))[:, 0]
  coverage = 1.0 - frames[..., 1]  # a red ball removes green
  soft_error = np.abs(centroids(coverage) - position).max() / PIXEL
  assert soft_error < 0.05
  red = (frames[..., 0] > 0.5) & (frames[..., 1] < 0.5) & (frames[..., 2] < 0.5)
  hard_error = np.abs(centroids(red.astype(np.float64)) - position) / PIXEL
  assert hard_error.mean() < 0.05 and hard_error.max() < 0.25  # pixel quantisation of the mask
  area = coverage.sum((1, 2)) * PIXEL**2
  np.testing.assert_allclose(area, np.pi * radius**2, rtol=0.01)


def test_colours_are_pure_inside_and_background_is_white():
  frames = np.asarray(sims.render(one_ball([[5.0, 5.0]], [1.0], color=sims.BLUE), RES))[0, 0]
  np.testing.assert_array_equal(frames[64, 64], [0.0, 0.0, 1.0])
  np.testing.assert_array_equal(frames[5, 5], [1.0, 1.0, 1.0])
  soft = (frames.min(-1) > 0) & (frames.max(-1) - frames.min(-1) > 0)
  assert 0 < soft.sum() < 3 * 2 * np.pi * RES / 10  # only a thin rim is anti-aliased


def test_world_y_points_up_and_x_right():
  frames = np.asarray(sims.render(one_ball([[2.0, 8.0]], [0.5]), RES))[0, 0]
  row, col = np.argwhere(frames[..., 1] < 0.5).mean(0)
  assert row < RES / 2 and col < RES / 2  # top-left quadrant


def test_squares_cover_their_area():
  frames = np.asarray(sims.render(one_ball([[5.1, 4.9]], [1.2], shape=1), RES))[0, 0]
  area = (1.0 - frames[..., 1]).sum() * PIXEL**2
  np.testing.assert_allclose(area, 2.4**2, rtol=0.01)
  np.testing.assert_array_equal(frames[RES // 2 - 14, RES // 2 - 14], [1.0, 0.0, 0.0])  # corner


def test_later_objects_are_painted_on_top():
  state = sims.balls([[[5.0, 5.0], [5.5, 5.0]]], jnp.zeros((1, 2, 2)), [[1.0, 1.0]])
  frames = np.asarray(sims.render(sims.make("collision").rollout(state, num_frames=1), RES))
  np.testing.assert_array_equal(frames[0, 0, 64, 66], [0.0, 0.0, 1.0])  # blue over red
  np.testing.assert_array_equal(frames[0, 0, 64, 52], [1.0, 0.0, 0.0])


@pytest.mark.parametrize("resolution", [16, 64, 256])
def test_any_resolution(resolution):
  frames = sims.render(one_ball([[5.0, 5.0]], [1.0]), resolution)
  assert frames.shape == (1, 1, resolution, resolution, 3)
  assert frames.dtype == jnp.float32


def _render_fn(scene, resolution, num_frames):
  def frames(position, velocity, radius):
    state = sims.balls(position, velocity, radius)
    return sims.render(scene.rollout(state, num_frames=num_frames), resolution)

  return frames


@pytest.mark.parametrize(
  "name, position, velocity, radius",
  [
    ("uniform_motion", [[[3.0, 5.0]]], [[[2.0, 0.5]]], [[0.9]]),
    ("parabola", [[[2.0, 8.0]]], [[[2.5, 0.0]]], [[1.1]]),
    ("collision", [[[2.0, 5.0], [7.0, 5.0]]], [[[2.0, 0.0], [-1.5, 0.0]]], [[0.8, 1.2]]),
  ],
)
def test_gradients_through_rollout_and_render_match_finite_differences(
  name, position, velocity, radius
):
  resolution, num_frames = 48, 16
  weights = jax.random.normal(jax.random.key(1), (1, num_frames, resolution, resolution, 3))
  frames = jax.jit(_render_fn(sims.make(name), resolution, num_frames))
  args = [jnp.asarray(a, jnp.float32) for a in (position, velocity, radius)]
  grads = jax.jit(jax.grad(lambda *a: jnp.sum(frames(*a) * weights), argnums=(0, 1, 2)))(*args)
  weights64 = np.asarray(weights, np.float64)

  def loss64(*a):  # the finite-difference side sums in float64 to keep rounding out of it
    return float(np.sum(np.asarray(frames(*a), np.float64) * weights64))

  eps = 1e-3  # central differences converge to the analytic value as eps shrinks
  numeric, analytic = [], []
  for which, (arg, grad) in enumerate(zip(args, grads, strict=True)):
    assert np.all(np.isfinite(grad))
    for index in np.ndindex(arg.shape):
      bump = jnp.zeros_like(arg).at[index].set(eps)
      plus = [a + bump if j == which else a for j, a in enumerate(args)]
      minus = [a - bump if j == which else a for j, a in enumerate(args)]
      numeric.append((loss64(*plus) - loss64(*minus)) / (2 * eps))
      analytic.append(float(grad[index]))
  numeric, analytic = np.asarray(numeric), np.asarray(analytic)
  assert np.linalg.norm(analytic - numeric) <= 0.01 * np.linalg.norm(numeric)
  assert np.linalg.norm(numeric) > 10.0  # the loss does depend on the state
