"""Exact forward optical flow (`sims.flow`): warping, exact values, background, statics and jit."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import sims
from sims.core import BOX, CIRCLE
from sims.rendering import body_coverage, coverage

RES = 64
FRAMES = 12
MARGIN_PX = 2.0  # the warping test skips pixels this close to an object's outline
# Deep inside an object bilinear sampling reads pure colour: the measured error is 0 everywhere.
WARP_TOLERANCE = 1e-5


def pixel_world(resolution):
  """World x [W] and y [H] of pixel centres, written out here rather than taken from sims."""
  step = sims.WORLD_SIZE / resolution
  centres = (np.arange(resolution) + 0.5) * step
  return centres, sims.WORLD_SIZE - centres


def sampled(scene_name, key, split="train", **options):
  scene = sims.make(scene_name, num_frames=FRAMES, **options)
  return scene.rollout(scene.sample(jax.random.key(key), 4, split), num_frames=FRAMES)


def rigid_bodies(num_frames=FRAMES, static_moves=False):
  """Two examples of bodies in constant rigid motion: a dynamic box spinning while it drifts
  (counter-clockwise in one example, clockwise in the other), a rolling disc, a static bar and
  an inactive slot lying over the box (invisible, its motion must not show). With
  `static_moves`, the static bar's pose changes over time (which a static body never does)."""
  t = np.arange(num_frames, dtype=np.float32)[None, :, None]
  # Per example and slot: start x, y, angle; per-frame dx, dy, dangle.
  start = np.array(
    [
      [[3.0, 6.5, 0.0], [8.0, 3.5, 0.0], [5.0, 1.2, 0.05], [3.0, 6.5, 0.0]],
      [[3.5, 6.0, 0.4], [7.8, 4.0, 1.0], [5.0, 1.0, -0.1], [3.5, 6.0, 0.0]],
    ],
    np.float32,
  )
  per_frame = np.array(
    [
      [[0.15, -0.1, 0.25], [0.0, 0.25, 0.5], [0.0, 0.0, 0.0], [-0.3, 0.3, 0.4]],
      [[0.1, 0.08, -0.3], [-0.05, 0.2, -0.4], [0.0, 0.0, 0.0], [0.3, -0.2, -0.4]],
    ],
    np.float32,
  )
  if static_moves:
    per_frame[:, 2] = [0.2, 0.1, 0.1]
  pose = start[:, None] + per_frame[:, None] * t[..., None]  # [n, T, K, 3]
  n, k = start.shape[:2]
  return sims.BodyTrajectory(
    position=jnp.asarray(pose[..., :2]),
    angle=jnp.asarray(pose[..., 2]),
    velocity=jnp.asarray(np.broadcast_to(per_frame[:, None, :, :2], pose[..., :2].shape) * 10.0),
    angular_velocity=jnp.asarray(np.broadcast_to(per_frame[:, None, :, 2], pose[..., 2].shape)),
    shape=jnp.asarray(np.broadcast_to([BOX, CIRCLE, BOX, BOX], (n, k)), jnp.int32),
    size=jnp.asarray(np.broadcast_to([[2.0, 0.4], [1.2, 1.2], [4.0, 0.3], [1.0, 1.0]], (n, k, 2))),
    color=jnp.asarray(
      np.broadcast_to([[0.7, 0.8, 0.8], sims.RED, [0, 0, 0], sims.BLUE], (n, k, 3))
    ),
    dynamic=jnp.asarray(np.broadcast_to([True, True, False, True], (n, k))),
    active=jnp.asarray(np.broadcast_to([True, True, True, False], (n, k))),
  )


def big_rings():
  """Falling rings thick enough (0.4 of 2-2.5 world units, 5-6 px) to have a deep interior."""
  state = sims.balls(
    [[[2.5, 7.0]], [[7.0, 6.5]]],
    [[[3.0, 0.0]], [[-2.0, 1.0]]],
    [[2.5], [2.0]],
    color=[sims.BLUE],
    shape=jnp.full((2, 1), sims.RING),
  )
  return sims.make("parabola").rollout(state, FRAMES)


CASES = {
  "uniform_motion": lambda: sampled("uniform_motion", 0, direction="both"),
  "uniform_motion_down": lambda: sampled(
    "uniform_motion", 1, direction="down", color=(0.2, 0.6, 0.3)
  ),
  "parabola": lambda: sampled("parabola", 2, direction="both"),
  "collision": lambda: sampled("collision", 3),
  "composition": lambda: sampled("composition", 4, split="test", kind="temporal"),
  "ring": lambda: big_rings(),
  "square": lambda: sampled("uniform_motion", 6, shape="square", direction="up"),
  "rigid_bodies": rigid_bodies,
}


@functools.cache
def case(name):
  return CASES[name]()


def object_coverage(traj, resolution, edge_px=1.0):
  """Coverage [n, T, K, H, W] of each object alone, by the renderer's own helpers."""
  if isinstance(traj, sims.BodyTrajectory):
    alpha = body_coverage(
      traj.position, traj.angle, traj.shape[:, None], traj.size[:, None], resolution, edge_px
    )
    return np.asarray(jnp.where(traj.active[:, None, :, None, None], alpha, 0.0))
  return np.asarray(
    coverage(traj.position, traj.radius[:, None], traj.shape[:, None], resolution, edge_px)
  )


def bilinear(frames, x, y):
  """frames [n, T, H, W, C] sampled at pixel coordinates x, y [n, T, H, W] (column, row), and
  whether each point lies within the frame."""
  height, width = frames.shape[2:4]
  in_view = (x >= 0) & (x <= width - 1) & (y >= 0) & (y <= height - 1)
  x0 = np.clip(np.floor(x), 0, width - 2).astype(int)
  y0 = np.clip(np.floor(y), 0, height - 2).astype(int)
  fx, fy = (x - x0)[..., None], (y - y0)[..., None]
  n, t = np.indices(x.shape[:2])
  n, t = n[..., None, None], t[..., None, None]

  def at(rows, cols):
    return frames[n, t, rows, cols]

  top = (1 - fx) * at(y0, x0) + fx * at(y0, x0 + 1)
  bottom = (1 - fx) * at(y0 + 1, x0) + fx * at(y0 + 1, x0 + 1)
  return (1 - fy) * top + fy * bottom, in_view


def warp_check(traj, resolution=RES):
  """Backward warp: for each pixel p of frame t, frame t + 1 sampled at p + flow(p) should be
  frame t. Checked on pixels deep inside exactly one object at t (at least MARGIN_PX from every
  outline, clear of all other objects: a rigid motion keeps them that deep at t + 1), whose
  target is in view, and on background pixels at least MARGIN_PX from every object at both t
  and t + 1. Returns the largest error on each and the fraction of deep object pixels checked."""
  frames = np.asarray(sims.render(traj, resolution))
  flow = np.asarray(sims.flow(traj, resolution))
  wide = object_coverage(traj, resolution, edge_px=2 * MARGIN_PX)  # 0 / 1 beyond MARGIN_PX
  inside = ((wide == 1).sum(2) == 1) & ((wide > 0).sum(2) == 1)
  outside = (wide > 0).sum(2) == 0
  rows, cols = np.indices((resolution, resolution))
  predicted, in_view = bilinear(frames[:, 1:], cols + flow[..., 0], rows + flow[..., 1])
  error = np.abs(predicted - frames[:, :-1]).max(-1)
  on_object = inside[:, :-1] & in_view
  on_background = outside[:, :-1] & outside[:, 1:]
  assert on_object.any() and on_background.any()
  return error[on_object].max(), error[on_background].max(), on_object.sum() / inside[:, :-1].sum()


@pytest.mark.parametrize("name", list(CASES))
def test_backward_warping_reproduces_frame_t(name):
  object_error, background_error, checked = warp_check(case(name))
  assert checked > 0.7  # most deep object pixels have their target in view
  assert object_error < WARP_TOLERANCE, object_error
  assert background_error < WARP_TOLERANCE, background_error


@pytest.mark.slow
def test_backward_warping_on_a_phyre_rollout():
  """jax2d's compile alone takes ~30 s on 2 cores. Templates with bars that tip and fall."""
  scene = sims.make("phyre")
  state = scene.sample(jax.random.key(0), 4, "train", templates=[10003, 10005, 10016, 10023])
  traj = scene.rollout(state, num_frames=8)
  turn = np.abs(np.diff(np.asarray(traj.angle), axis=1))
  assert turn[np.broadcast_to(np.asarray(traj.active)[:, None], turn.shape)].max() > 0.05
  object_error, background_error, checked = warp_check(traj)
  assert checked > 0.7
  assert object_error < WARP_TOLERANCE and background_error < WARP_TOLERANCE
  flow = np.asarray(sims.flow(traj, RES))
  static = only_static(traj, object_coverage(traj, RES)[:, :-1])
  assert static.sum() > 100
  np.testing.assert_array_equal(flow[static], 0.0)


def test_uniform_motion_flow_is_the_velocity_in_pixels_and_zero_outside():
  velocity = np.array([3.0, -2.0])  # world units / s: right and down
  radius = 1.5
  state = sims.balls([[[4.0, 6.0]]], [[velocity]], [[radius]])
  resolution, num_frames = 32, 4
  traj = sims.make("uniform_motion").rollout(state, num_frames)
  flow = np.asarray(sims.flow(traj, resolution))[0]
  pixels_per_frame = sims.FRAME_DT * resolution / sims.WORLD_SIZE
  expected = np.array([velocity[0], -velocity[1]]) * pixels_per_frame  # image y points down
  np.testing.assert_allclose(expected, [0.96, 0.64])
  xs, ys = pixel_world(resolution)
  for t in range(num_frames - 1):
    cx, cy = np.asarray(traj.position[0, t, 0])
    inside = (xs[None, :] - cx) ** 2 + (ys[:, None] - cy) ** 2 < radius**2
    assert inside.sum() > 50
    np.testing.assert_allclose(
      flow[t][inside], np.broadcast_to(expected, (inside.sum(), 2)), atol=1e-5
    )
    np.testing.assert_array_equal(flow[t][~inside], 0.0)


def test_parabola_flows_down_the_image_by_the_exact_fall():
  state = sims.balls([[[2.0, 8.0]]], [[[2.0, 0.0]]], [[1.0]])
  resolution, num_frames = 32, 8
  traj = sims.make("parabola").rollout(state, num_frames)
  flow = np.asarray(sims.flow(traj, resolution))[0]
  mask = object_coverage(traj, resolution)[0, :-1, 0] > 0.5
  # Fall from frame t to t + 1: -GRAVITY * FRAME_DT**2 * (t + 1/2) world units, down the image.
  t = np.arange(num_frames - 1)
  fall = -sims.GRAVITY * sims.FRAME_DT**2 * (t + 0.5) * resolution / sims.WORLD_SIZE
  for frame in t:
    down = flow[frame, ..., 1][mask[frame]]
    assert down.size > 20 and (down > 0).all()
    np.testing.assert_allclose(down, fall[frame], atol=1e-4)
    np.testing.assert_allclose(flow[frame, ..., 0][mask[frame]], 0.64, atol=1e-4)


def test_rotating_body_flow_follows_the_rigid_motion_formula():
  traj = rigid_bodies()
  resolution = 48
  flow = np.asarray(sims.flow(traj, resolution))
  xs, ys = pixel_world(resolution)
  position, angle = np.asarray(traj.position, np.float64), np.asarray(traj.angle, np.float64)
  half = np.asarray(traj.size[0, 0], np.float64)
  for example, frame in ((0, 0), (0, 5), (1, 3)):
    centre, next_centre = position[example, frame, 0], position[example, frame + 1, 0]
    turn = angle[example, frame + 1, 0] - angle[example, frame, 0]
    offset = np.stack(np.broadcast_arrays(xs[None, :], ys[:, None]), -1) - centre  # [H, W, 2]
    c, s = np.cos(angle[example, frame, 0]), np.sin(angle[example, frame, 0])
    local = np.stack(
      [c * offset[..., 0] + s * offset[..., 1], c * offset[..., 1] - s * offset[..., 0]], -1
    )
    inside = (np.abs(local) < half).all(-1)
    rotation = np.array([[np.cos(turn), -np.sin(turn)], [np.sin(turn), np.cos(turn)]])
    moved = next_centre + offset @ rotation.T - (centre + offset)  # world displacement
    expected = moved * [1.0, -1.0] * resolution / sims.WORLD_SIZE
    assert inside.sum() > 40
    np.testing.assert_allclose(flow[example, frame][inside], expected[inside], atol=1e-4)
  # Pure rotation, counter-clockwise in the world: the bar's right end moves up the image.
  spin = rigid_bodies(num_frames=2)
  spin = spin.replace(position=jnp.broadcast_to(spin.position[:, :1], spin.position.shape))
  flow = np.asarray(sims.flow(spin, resolution))[0, 0]
  centre = np.asarray(spin.position[0, 0, 0])
  right_end = (np.argmin(np.abs(ys - centre[1])), np.argmin(np.abs(xs - (centre[0] + 1.8))))
  assert flow[right_end][1] < -0.5 * 1.8 * 0.25 * resolution / sims.WORLD_SIZE


def test_topmost_object_wins_and_inactive_slots_are_ignored():
  state = sims.balls([[[4.0, 5.0], [5.0, 5.0]]], [[[1.0, 0.0], [0.0, 3.0]]], [[1.5, 1.5]])
  flow = np.asarray(sims.flow(sims.make("uniform_motion").rollout(state, 2), 32))[0, 0]
  scale = sims.FRAME_DT * 32 / sims.WORLD_SIZE
  np.testing.assert_allclose(flow[16, 14], [0.0, -3.0 * scale], atol=1e-5)  # overlap: slot 1
  np.testing.assert_allclose(flow[16, 10], [1.0 * scale, 0.0], atol=1e-5)  # slot 0 alone
  bodies = rigid_bodies()
  with_ghost = np.asarray(sims.flow(bodies, 32))
  without = np.asarray(sims.flow(bodies.replace(size=bodies.size.at[:, 3].set(0.0)), 32))
  np.testing.assert_array_equal(with_ghost, without)


def only_static(traj, alpha):
  """Pixels [n, T, H, W] that static bodies cover (alpha [n, T, K, H, W] > 1/2, inactive slots
  already zero) and no dynamic body does."""
  covers = alpha > 0.5
  dynamic = np.asarray(traj.dynamic)[:, None, :, None, None]
  return (covers & ~dynamic).any(2) & ~(covers & dynamic).any(2)


@pytest.mark.parametrize("name", ["uniform_motion", "collision", "composition", "rigid_bodies"])
def test_background_and_static_bodies_are_exactly_zero(name):
  traj = case(name)
  flow = np.asarray(sims.flow(traj, RES))
  alpha = object_coverage(traj, RES)[:, :-1]
  np.testing.assert_array_equal(flow[(alpha == 0).all(2)], 0.0)
  if isinstance(traj, sims.BodyTrajectory):
    static = only_static(traj, alpha)
    assert static.sum() > 100
    np.testing.assert_array_equal(flow[static], 0.0)


def test_static_bodies_get_zero_flow_whatever_their_pose():
  traj = rigid_bodies(static_moves=True)
  flow = np.asarray(sims.flow(traj, RES))
  static = only_static(traj, object_coverage(traj, RES)[:, :-1])
  assert static.sum() > 100
  np.testing.assert_array_equal(flow[static], 0.0)


def test_jit_shapes_and_dtype():
  scene = sims.make("collision", num_frames=8)
  state = scene.sample(jax.random.key(7), 3, "train")

  @jax.jit
  def flow_of(state):
    return sims.flow(scene.rollout(state, num_frames=8), resolution=32)

  flow = flow_of(state)
  assert flow.shape == (3, 7, 32, 32, 2) and flow.dtype == jnp.float32
  # Fused inside jit, the rollout's float32 rounding differs by ~1e-6 world units.
  np.testing.assert_allclose(flow, sims.flow(scene.rollout(state, 8), 32), atol=1e-4)
  bodies = sims.flow(rigid_bodies(num_frames=5), 16)
  assert bodies.shape == (2, 4, 16, 16, 2) and bodies.dtype == jnp.float32
  assert sims.flow(scene.rollout(state, 1), 16).shape == (3, 0, 16, 16, 2)
