"""The 3-D ray caster: projection, silhouettes, floor, shadows, gradients and bad input."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import sims
from sims.world3d import render as world3d_render
from sims.world3d.bodies import CUBE, SPHERE, Trajectory3D
from sims.world3d.render import (
  AMBIENT,
  DEFAULT_CAMERA,
  DEFAULT_LIGHT,
  DIFFUSE,
  FLOOR_GREYS,
  Camera,
  render3d,
)

RES = 48
_render = jax.jit(render3d, static_argnames="resolution")


def render(traj, resolution=RES, camera=DEFAULT_CAMERA, light=DEFAULT_LIGHT) -> jax.Array:
  """`render3d`, jitted; the camera and light are always arguments, so calls share compilations."""
  light = tuple(float(v) for v in light)
  return _render(traj, resolution=resolution, camera=camera, light_direction=light)


def bodies(position, shape, size, color=None, orientation=None, active=None) -> Trajectory3D:
  """One frame of n videos of K bodies: position [n, K, 3], shape and size [n, K]."""
  position = jnp.asarray(position, jnp.float32)[:, None]
  n, _, num, _ = position.shape
  if orientation is None:
    orientation = jnp.broadcast_to(jnp.array([1.0, 0.0, 0.0, 0.0]), (n, 1, num, 4))
  else:
    orientation = jnp.asarray(orientation, jnp.float32)[:, None]
  if color is None:
    color = jnp.broadcast_to(jnp.array([0.9, 0.2, 0.2]), (n, num, 3))
  if active is None:
    active = jnp.ones((n, num), bool)
  zeros = jnp.zeros_like(position)
  return Trajectory3D(
    position=position,
    orientation=orientation,
    velocity=zeros,
    angular_velocity=zeros,
    shape=jnp.asarray(shape, jnp.int32),
    size=jnp.asarray(size, jnp.float32),
    mass=jnp.ones((n, num)),
    color=jnp.asarray(color, jnp.float32),
    active=jnp.asarray(active, bool),
  )


def camera_basis(camera: Camera):
  eye, look_at, up = (
    np.asarray(v, np.float64) for v in (camera.position, camera.look_at, camera.up)
  )
  forward = (look_at - eye) / np.linalg.norm(look_at - eye)
  right = np.cross(forward, up)
  right /= np.linalg.norm(right)
  return eye, forward, right, np.cross(right, forward)


def project(point, camera: Camera = DEFAULT_CAMERA, resolution: int = RES):
  """Pinhole projection of world points [..., 3] to (row, column) pixel coordinates (pixel i's
  centre at i)."""
  eye, forward, right, up = camera_basis(camera)
  offset = np.asarray(point, np.float64) - eye
  half = np.tan(np.deg2rad(camera.fov) / 2)
  u, v = offset @ right / (offset @ forward), offset @ up / (offset @ forward)
  scale = resolution / (2 * half)
  return np.stack([(half - v) * scale - 0.5, (u + half) * scale - 0.5], -1)


def coverage(traj: Trajectory3D, camera: Camera = DEFAULT_CAMERA, resolution: int = RES):
  """Per-pixel coverage [n, H, W] of the bodies of one-frame videos, each lit from behind.

  With the light behind a video's first body as seen from the eye, its visible surface gets only
  the ambient light, so painting it white instead of black changes each pixel by AMBIENT times
  its coverage.
  """
  eye = np.asarray(camera.position, np.float32)
  num = traj.shape.shape[1]

  def one(video):
    light = tuple(np.asarray(traj.position[video, 0, 0]) - eye)
    frames = [
      render(
        jax.tree.map(lambda x: x[video : video + 1], traj).replace(color=jnp.full((1, num, 3), c)),
        resolution=resolution,
        camera=camera,
        light=light,
      )[0, 0]
      for c in (1.0, 0.0)
    ]
    return np.asarray(frames[0] - frames[1]).mean(-1) / AMBIENT

  return np.stack([one(video) for video in range(traj.shape.shape[0])])


def centroid(weight):
  rows, cols = np.indices(weight.shape[-2:])
  total = weight.sum((-2, -1))
  return (
    np.stack([(weight * rows).sum((-2, -1)), (weight * cols).sum((-2, -1))], -1) / total[..., None]
  )


SPHERES = np.array([[0.0, 0.0, 0.6], [-1.2, 0.5, 0.6], [1.0, -1.0, 1.2], [0.6, 1.5, 0.5]])
RADII = np.array([0.5, 0.4, 0.3, 0.45])


def test_frames_have_the_right_shape_dtype_and_range():
  traj = bodies(SPHERES[None, :3], [[SPHERE, CUBE, SPHERE]], [[0.5, 0.3, 0.3]])
  traj = traj.replace(
    position=jnp.repeat(traj.position, 3, axis=1), orientation=jnp.repeat(traj.orientation, 3, 1)
  )
  frames = render(traj, resolution=32)
  assert frames.shape == (1, 3, 32, 32, 3) and frames.dtype == jnp.float32
  assert float(frames.min()) >= 0.0 and float(frames.max()) <= 1.0
  np.testing.assert_array_equal(frames[:, 0], frames[:, 2])


def test_sphere_projects_where_the_pinhole_model_says_with_the_analytic_area():
  traj = bodies(SPHERES[:, None], [[SPHERE]] * 4, RADII[:, None])
  weight = coverage(traj)
  assert weight.min() > -1e-5 and weight.max() < 1 + 1e-5
  # The projected outline of a sphere is an ellipse whose centre sits a few hundredths of a
  # pixel off the projected centre here, so a tenth of a pixel is the float32 + ramp budget.
  np.testing.assert_allclose(centroid(weight), project(SPHERES), atol=0.1)
  eye, forward, _, _ = camera_basis(DEFAULT_CAMERA)
  offset = SPHERES - eye
  distance = np.linalg.norm(offset, axis=-1)
  cos_axis = offset @ forward / distance
  sin_a = RADII / distance
  # The cone of rays tangent to the sphere cut by the image plane at focal length 1.
  denominator = cos_axis**2 - sin_a**2
  area = np.pi * sin_a * np.sqrt(1 - sin_a**2) / denominator * sin_a / np.sqrt(denominator)
  pixels = RES / (2 * np.tan(np.deg2rad(DEFAULT_CAMERA.fov) / 2))
  np.testing.assert_allclose(weight.sum((-2, -1)), area * pixels**2, rtol=0.02)


def test_library_projection_matches_the_pinhole_model_and_back_projection_inverts_it():
  camera = Camera(position=(1.0, -5.0, 2.5), look_at=(0.2, 0.3, 0.4), fov=35.0)
  pixels, depth = world3d_render.project(SPHERES, 48, camera)
  np.testing.assert_allclose(pixels[:, ::-1], project(SPHERES, camera, 48), atol=1e-4)
  eye, forward, _, _ = camera_basis(camera)
  np.testing.assert_allclose(depth, (SPHERES - eye) @ forward, rtol=1e-5)
  on_floor = world3d_render.back_project(
    pixels, np.array([0.0, 0.0, 1.0]), SPHERES[:, 2], 48, camera
  )
  np.testing.assert_allclose(on_floor, SPHERES, atol=1e-4)
  facing = np.array([[0.0, 1.0, 0.0]] * 4)
  upright = world3d_render.back_project(pixels, facing, SPHERES[:, 1], 48, camera)
  np.testing.assert_allclose(upright, SPHERES, atol=1e-4)


def test_cube_silhouette_lies_between_its_inner_and_outer_spheres():
  angle = np.pi / 5
  tilt = [np.cos(angle / 2), 0.3 * np.sin(angle / 2), 0.0, np.sqrt(0.91) * np.sin(angle / 2)]
  traj = bodies([[[0.3, 0.2, 0.8]]], [[CUBE]], [[0.4]], orientation=[[tilt]])
  weight = coverage(traj)[0]
  inner, outer = (
    coverage(bodies([[[0.3, 0.2, 0.8]]], [[SPHERE]], [[r]]))[0] for r in (0.4, 0.4 * np.sqrt(3))
  )
  assert inner.sum() < weight.sum() < outer.sum()
  assert np.all(weight > inner - 1e-3) and np.all(weight < outer + 1e-3)
  np.testing.assert_allclose(centroid(weight), project([0.3, 0.2, 0.8]), atol=1.0)


EMPTY = bodies([[[0.0, 0.0, 0.5]]], [[SPHERE]], [[0.3]], active=[[False]])
LIT = AMBIENT + DIFFUSE * np.asarray(DEFAULT_LIGHT)[2] / np.linalg.norm(DEFAULT_LIGHT)
DARK, LIGHT = FLOOR_GREYS[0] * LIT, FLOOR_GREYS[1] * LIT  # sunlit floor tiles


def test_checker_floor_alternates():
  # Straight down from 4 m onto a 2 m wide patch: four tiles across, 12 pixels each.
  top = Camera(position=(0.0, 0.0, 4.0), look_at=(0.0, 0.0, 0.0), up=(0.0, 1.0, 0.0), fov=28.0725)
  floor = np.asarray(render(EMPTY, resolution=RES, camera=top))[0, 0, :, :, 0]
  tiles = floor[6::12, 6::12]  # the pixel nearest each tile's centre
  checker = (np.add.outer(np.arange(4), np.arange(4)) % 2).astype(bool)
  np.testing.assert_allclose(tiles, np.where(checker, LIGHT, DARK), atol=0.01)


@pytest.mark.slow
def test_checker_floor_does_not_alias():
  # The default view at 64 px against the same view supersampled 8 x 8. A point-sampled checker
  # is off by 0.2 of the contrast on average and by 0.77 at worst; the filtered one by 0.02 and 0.3.
  coarse = np.asarray(render(EMPTY, resolution=64))[0, 0, :, :, 0]
  fine = np.asarray(render(EMPTY, resolution=512))[0, 0, :, :, 0]
  error = np.abs(coarse - fine.reshape(64, 8, 64, 8).mean((1, 3))) / (LIGHT - DARK)
  assert error.max() < 0.35 and error.mean() < 0.04


def light_unit():
  return np.asarray(DEFAULT_LIGHT) / np.linalg.norm(DEFAULT_LIGHT)


def test_sphere_shadows_the_floor_where_the_light_says():
  centre = np.array([0.0, 0.0, 1.0])
  shadow = centre - centre[2] / light_unit()[2] * light_unit()  # on the floor, straight away
  beside = shadow + np.array([1.0, 0.0, 0.0])
  with_sphere, without = (
    np.asarray(render(bodies([[centre]], [[SPHERE]], [[0.3]], active=[[on]]), resolution=RES))[0, 0]
    for on in (True, False)
  )
  (row, col), (row2, col2) = np.round(project([shadow, beside])).astype(int)
  lit = AMBIENT + DIFFUSE * light_unit()[2]
  np.testing.assert_allclose(with_sphere[row, col], without[row, col] * AMBIENT / lit, rtol=0.02)
  np.testing.assert_allclose(with_sphere[row2, col2], without[row2, col2], atol=1e-6)


def test_a_cube_shadows_a_sphere_below_it():
  cube = np.array([0.0, 0.0, 1.6])
  sphere = cube - 1.2 * light_unit()
  shaded, unshaded = (
    np.asarray(
      render(
        bodies(
          [[sphere, cube, cube]], [[SPHERE, CUBE, CUBE]], [[0.2, 0.25, 0.1]], active=[[1, on, 0]]
        ),
        resolution=RES,
      )
    )[0, 0]
    for on in (True, False)
  )
  row, col = np.round(project(sphere)).astype(int)
  assert shaded[row, col, 0] < 0.6 * unshaded[row, col, 0]


def test_inactive_slots_are_not_drawn():
  one = bodies([[[0.0, 0.0, 0.5]]], [[SPHERE]], [[0.5]])
  three = bodies(
    [[[0.0, 0.0, 0.5], [0.5, 0.5, 0.5], [1.0, 0.0, 1.0]]],
    [[SPHERE, CUBE, SPHERE]],
    [[0.5, 0.0, 0.4]],
    orientation=[[[1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0]]],
    active=[[True, False, False]],
  )
  np.testing.assert_allclose(render(three, resolution=RES), render(one, resolution=RES), atol=1e-6)


def test_sims_render_draws_3d_trajectories():
  traj = bodies([[[0.0, 0.0, 0.5]]], [[SPHERE]], [[0.5]])
  drawn = jax.jit(sims.render, static_argnums=1)(traj, RES)
  np.testing.assert_allclose(drawn, render(traj), atol=1e-5)


SCENE = bodies(
  [[[-0.3, 0.2, 0.5], [0.7, 0.6, 0.45], [0.0, 1.4, 1.0]]],
  [[SPHERE, CUBE, SPHERE]],
  [[0.4, 0.3, 0.35]],
  color=[[[0.9, 0.2, 0.2], [0.2, 0.4, 0.9], [0.2, 0.8, 0.3]]],
  orientation=[[[1.0, 0.0, 0.0, 0.0], [np.cos(0.3), 0.0, 0.0, np.sin(0.3)], [1.0, 0.0, 0.0, 0.0]]],
)


def weighted_sum(position, size, resolution=32):
  weights = jax.random.uniform(jax.random.key(0), (1, 1, resolution, resolution, 3))
  return jnp.sum(render3d(SCENE.replace(position=position, size=size), resolution) * weights)


def test_gradients_agree_with_finite_differences():
  """Gradients of a weighted frame w.r.t. the position and size of a sphere (slot 0) and a cube
  (slot 1) are finite and within 5% (of the gradient's norm) of central differences with a step of
  about 1/80 of a pixel: small against the one-pixel ramps, large against float32 rounding."""
  position, size = SCENE.position, SCENE.size
  value_and_grad = jax.jit(jax.value_and_grad(weighted_sum, argnums=(0, 1)))
  _, grads = value_and_grad(position, size)
  eps = 2e-3
  for slot in (0, 1):
    grad = np.append(grads[0][0, 0, slot], grads[1][0, slot])
    assert np.all(np.isfinite(grad)) and np.linalg.norm(grad) > 1.0
    numeric = []
    for axis in range(4):
      step = np.zeros(4, np.float32)
      step[axis] = eps
      ends = [
        float(value_and_grad(position.at[0, 0, slot].add(s[:3]), size.at[0, slot].add(s[3]))[0])
        for s in (step, -step)
      ]
      numeric.append((ends[0] - ends[1]) / (2 * eps))
    np.testing.assert_allclose(grad, numeric, atol=0.05 * np.linalg.norm(numeric))


def test_bad_input_is_rejected_with_one_line():
  traj = bodies([[[0.0, 0.0, 0.5]]], [[SPHERE]], [[0.5]])
  for resolution in (4, 64.0, True):
    with pytest.raises(ValueError, match=r"resolution must be an integer >= 8, got"):
      render3d(traj, resolution)
  for fov in (0.0, 180.0, -10.0):
    with pytest.raises(ValueError, match=r"fov must be a number in \(0, 180\)"):
      render3d(traj, 16, camera=Camera(fov=fov))
  with pytest.raises(ValueError, match="must differ from position"):
    render3d(traj, 16, camera=Camera(look_at=DEFAULT_CAMERA.position))
  with pytest.raises(ValueError, match="light_direction must be a non-zero"):
    render3d(traj, 16, light_direction=(0.0, 0.0, 0.0))
  inside_sphere = Camera(position=(0.1, 0.0, 0.6))
  with pytest.raises(ValueError, match=r"inside active body 0 of video 0 \(a sphere"):
    render3d(traj, 16, camera=inside_sphere)
  # (0.45, 0.45, 0.5) is outside the axis-aligned cube of half edge 0.5 centred at (0, 0, 0.5)
  # only once it is turned 45 degrees about z.
  corner = Camera(position=(0.45, 0.45, 0.5))
  turned = [np.cos(np.pi / 8), 0.0, 0.0, np.sin(np.pi / 8)]
  cube = bodies([[[0.0, 0.0, 0.5]]], [[CUBE]], [[0.5]], orientation=[[turned]])
  square = cube.replace(orientation=jnp.array([[[[1.0, 0.0, 0.0, 0.0]]]]))
  with pytest.raises(ValueError, match=r"\(a cube"):
    jax.eval_shape(lambda: render3d(square, 8, camera=corner))
  # Concrete arrays are checked while tracing, so tracing alone shows that these pass.
  jax.eval_shape(lambda: render3d(cube, 8, camera=corner))
  hidden = traj.replace(active=jnp.array([[False]]))
  jax.eval_shape(lambda: render3d(hidden, 8, camera=inside_sphere))
  jax.eval_shape(lambda traj: render3d(traj, 8, camera=inside_sphere), traj)  # traced: not checked


def test_the_benchmarks_numpy_reference_draws_what_the_ray_caster_draws():
  """benchmarks/world3d_throughput.py's hard-edged numpy renderer, same camera and light: the
  frames differ only along edges (anti-aliasing, soft shadows, the filtered checker), which in
  the near half of a 48-pixel frame (measured: 13 % of its pixels by over 0.1) are the tile
  edges and silhouettes; the median pixel agrees to 0.002."""
  from benchmarks.world3d_throughput import numpy_render

  centres = [[[-0.6, 0.0, 0.3], [0.5, 0.4, 0.2], [0.0, -1.0, 0.25], [0.0, 0.0, 1.0]]]
  turn = [np.cos(0.3), 0.0, 0.0, np.sin(0.3)]
  orientation = [[[1.0, 0, 0, 0], [1.0, 0, 0, 0], turn, [1.0, 0, 0, 0]]]
  shapes = np.array([SPHERE, SPHERE, CUBE, CUBE])
  sizes = np.array([0.3, 0.2, 0.25, 5.0])
  colors = np.array([[0.9, 0.2, 0.2], [0.2, 0.3, 0.9], [0.2, 0.8, 0.2], [1.0, 1.0, 1.0]])
  active = np.array([True, True, True, False])
  traj = bodies(
    centres, [shapes], [sizes], color=[colors], orientation=orientation, active=[active]
  )
  ours = np.asarray(render(traj))[0, 0]
  reference = (
    numpy_render(np.asarray(centres), np.asarray(orientation), shapes, sizes, colors, active, RES)[
      0
    ]
    / 255.0
  )
  near = np.abs(ours - reference).max(-1)[RES // 2 :]
  assert (near > 0.1).mean() < 0.2 and np.median(near) < 0.01, ((near > 0.1).mean(), near)
  red = (reference[..., 0] > 0.5) & (reference[..., 2] < 0.3)
  blue = (reference[..., 2] > 0.5) & (reference[..., 0] < 0.3)
  green = (reference[..., 1] > 0.5) & (reference[..., 0] < 0.3)
  assert red.sum() > 10 and blue.sum() > 5 and green.sum() > 10  # all three are in view
