"""Differentiable, anti-aliased ray caster of spheres and cubes on a checkered floor (z = 0).

Pixel (i, j) of an H x H frame casts one ray from the camera's eye through its centre (row 0 at
the top). Rays meet spheres in closed form, cubes by a slab test in the body frame and the floor
plane z = 0, whose checker (two greys, `TILE` metres) is box-filtered over each pixel's footprint
so that it does not alias. An object's coverage of a pixel is a smoothstep of the ray's signed
distance to its outline in pixels, over `edge_px` pixels as in `sims.render`: a sphere uses the
first-order distance (r^2 - m^2) / 2r of the ray passing at distance m from its centre, a cube the
Chebyshev distance between the ray and the box (the smallest, over points of the ray, of the
largest body-frame coordinate minus the half edge). Silhouettes are therefore soft and frames are
differentiable w.r.t. positions, orientations and sizes.

Shading is Lambertian with one directional light plus an ambient term. A shadow ray from every
surface point (floor and objects) toward the light is tested against every other object in the
same way, its penumbra widening with the distance along the shadow ray, so shadows are soft and
differentiable too. The floor and the objects are composited front to back per pixel: each layer
is seen through 1 - coverage of every layer in front of it, the depth order being a smoothstep of
the depth difference over a pixel's width, so contacts and interpenetrations do not alias either.
Every call has fixed shapes and is vectorised over frames, pixels and objects.
"""

from __future__ import annotations

from types import ModuleType

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from sims.world3d.bodies import CUBE, SHAPES_3D, SPHERE, Trajectory3D

Vec = tuple[jax.Array, jax.Array, jax.Array]

AMBIENT = 0.3  # light reaching surfaces in shadow or facing away from the light
DIFFUSE = 0.7  # Lambertian gain of the directional light (AMBIENT + DIFFUSE = 1)
LIGHT_ANGLE = 0.03  # penumbra width per metre of shadow ray (the light's angular size, rad)
TILE = 0.5  # edge of a floor tile, m
FLOOR_GREYS = (0.5, 0.8)  # albedo of the two kinds of floor tile
SKY = (0.8, 0.87, 0.95)  # colour of rays that miss everything
DEFAULT_LIGHT = (-0.5, -0.4, 1.0)  # direction toward the light (any length): front left, above
MIN_RESOLUTION = 8
_NEAR = 1e-3  # nearest depth that is drawn, m
_FAR = 1e3  # depth given to rays that miss the floor, m


@struct.dataclass
class Camera:
  """A pinhole camera: eye `position`, `look_at` target and `up` (world frame, m), and the
  vertical field of view `fov` in degrees. Frames are square, so the horizontal field is the same.
  """

  position: jax.Array | tuple[float, float, float] = (0.0, -6.0, 3.5)
  look_at: jax.Array | tuple[float, float, float] = (0.0, 0.0, 0.3)
  up: jax.Array | tuple[float, float, float] = (0.0, 0.0, 1.0)
  fov: jax.Array | float = 40.0


# Eye 6 m in front of the origin (-y) and 3.5 m up, looking 28 degrees down at (0, 0, 0.3) with a
# 40 degree field: the floor shows from y = -2.9 m at the bottom edge of the frame to far behind
# the origin, about 5 m wide (x from -2.5 to 2.5 m) at the origin.
DEFAULT_CAMERA = Camera()


def render3d(
  traj: Trajectory3D,
  resolution: int = 64,
  camera: Camera = DEFAULT_CAMERA,
  light_direction: jax.Array | tuple[float, float, float] = DEFAULT_LIGHT,
  edge_px: float = 1.0,
) -> jax.Array:
  """Frames [n, T, H, W, 3] float32 in [0, 1] of a 3-D trajectory, differentiable in its state.

  `light_direction` points from the scene toward the light; inactive slots are not drawn. Raises
  ValueError for a resolution that is not an integer >= MIN_RESOLUTION, a field of view outside
  (0, 180) degrees, a degenerate camera frame or light, or (when the arrays are concrete) a camera
  inside an active body in frame 0.
  """
  _check_camera(camera, light_direction, resolution)
  _check_eye_outside_bodies(camera.position, traj)
  view = _View.of(camera, resolution)
  light = _normalize(tuple(jnp.asarray(light_direction, jnp.float32)))
  active = jnp.asarray(traj.active, bool)
  # Inactive slots get a harmless pose and size so that no branch of theirs produces NaNs.
  orientation = jnp.where(active[:, None, :, None], traj.orientation, jnp.array([1.0, 0, 0, 0]))
  size = jnp.where(active, traj.size, 1.0).astype(jnp.float32)

  def frame(position, rotation, shape, size, color, active):
    return _frame(view, light, edge_px, position, rotation, shape == CUBE, size, color, active)

  per_video = jax.vmap(frame, in_axes=(0, 0, None, None, None, None))
  return jax.vmap(per_video)(
    jnp.asarray(traj.position, jnp.float32),
    rotation_matrix(orientation.astype(jnp.float32)),
    jnp.asarray(traj.shape),
    size,
    jnp.asarray(traj.color, jnp.float32),
    active,
  )


@struct.dataclass
class _View:
  """Per-pixel quantities of one camera, shared by every frame: [H, W] arrays."""

  eye: Vec  # scalars
  direction: Vec  # unit ray directions
  pixel: jax.Array  # width of the pixel per metre of depth along its ray
  floor_depth: jax.Array  # distance to z = 0 along the ray, _FAR where the floor is missed
  floor_hit: jax.Array  # 1 where the ray meets the floor, else 0
  floor_albedo: jax.Array  # box-filtered checker
  floor_footprint: jax.Array  # size of the pixel on the floor, m

  @classmethod
  def of(cls, camera: Camera, resolution: int) -> _View:
    eye, forward, right, true_up, half = camera_basis(camera)
    centres = (jnp.arange(resolution, dtype=jnp.float32) + 0.5) / resolution * 2 - 1
    across, down = centres[None, :, None] * half, centres[:, None, None] * half
    ray = forward + across * right - down * true_up  # [H, W, 3], forward component 1
    length = jnp.linalg.norm(ray, axis=-1)
    direction = tuple(ray[..., i] / length for i in range(3))
    # A pixel subtends 2 half / H radians on the axis; off axis, cos^2 radially and cos
    # tangentially: cos = 1 / length is the middle ground.
    pixel = 2 * half / resolution / length
    down_z = jnp.where(direction[2] < 0, direction[2], -1.0)
    depth = -eye[2] / down_z
    hit = (direction[2] < 0) & (eye[2] > 0)
    depth = jnp.where(hit, jnp.minimum(depth, _FAR), _FAR)
    x, y = (eye[i] + depth * direction[i] for i in range(2))
    (x_i, x_j), (y_i, y_j) = jnp.gradient(x), jnp.gradient(y)
    x_width, y_width = jnp.abs(x_i) + jnp.abs(x_j), jnp.abs(y_i) + jnp.abs(y_j)
    checker = 0.5 + 0.5 * _filtered_square(x / TILE, x_width / TILE) * _filtered_square(
      y / TILE, y_width / TILE
    )
    albedo = FLOOR_GREYS[0] + (FLOOR_GREYS[1] - FLOOR_GREYS[0]) * checker
    footprint = jnp.maximum(jnp.hypot(x_i, y_i), jnp.hypot(x_j, y_j))
    return cls(
      eye=tuple(eye),
      direction=direction,
      pixel=pixel,
      floor_depth=depth,
      floor_hit=hit.astype(jnp.float32),
      floor_albedo=albedo,
      floor_footprint=jnp.where(hit, jnp.minimum(footprint, _FAR), _FAR),
    )


def camera_basis(camera: Camera, xp: ModuleType = jnp) -> tuple:
  """The camera's eye, unit forward, right and up vectors [3] and tan(fov / 2) (`xp`: jnp or np).

  A pixel row runs along `right`, a column down along -up; the image plane is 1 m ahead."""
  eye, look_at, up = (
    xp.asarray(v, xp.float32) for v in (camera.position, camera.look_at, camera.up)
  )
  forward = look_at - eye
  forward = forward / xp.linalg.norm(forward)
  right = xp.cross(forward, up)
  right = right / xp.linalg.norm(right)
  true_up = xp.cross(right, forward)
  half = xp.tan(xp.deg2rad(xp.asarray(camera.fov, xp.float32)) / 2)
  return eye, forward, right, true_up, half


def project(
  points: np.ndarray, resolution: int, camera: Camera = DEFAULT_CAMERA
) -> tuple[np.ndarray, np.ndarray]:
  """Pixel coordinates [..., 2] (column, row; pixel (i, j)'s centre is (j, i)) of world points
  [..., 3] in an H x H frame, and their depth along the view axis [...] (m)."""
  eye, forward, right, true_up, half = camera_basis(camera, np)
  offset = np.asarray(points, np.float32) - eye
  depth = offset @ forward
  across, down = offset @ right / depth, -(offset @ true_up) / depth
  pixels = (np.stack([across, down], -1) / half + 1.0) * resolution / 2 - 0.5
  return pixels, depth


def back_project(
  pixels: np.ndarray,
  normal: np.ndarray,
  offset: np.ndarray,
  resolution: int,
  camera: Camera = DEFAULT_CAMERA,
) -> np.ndarray:
  """World points [..., 3] where the rays through `pixels` [..., 2] (as `project` gives them)
  meet the planes normal . x = offset (normal [3] or [..., 3], offset [...])."""
  eye, forward, right, true_up, half = camera_basis(camera, np)
  across, down = np.moveaxis((np.asarray(pixels) + 0.5) * 2 / resolution - 1.0, -1, 0) * half
  ray = forward + across[..., None] * right - down[..., None] * true_up
  normal = np.asarray(normal, np.float32)
  distance = (np.asarray(offset) - np.sum(eye * normal, -1)) / np.sum(ray * normal, -1)
  return eye + distance[..., None] * ray


def _filtered_square(p: jax.Array, width: jax.Array) -> jax.Array:
  """The square wave +1 on [0, 1), -1 on [1, 2) (period 2) averaged over [p - w/2, p + w/2]: the
  difference quotient of its integral, the triangle wave."""
  width = jnp.maximum(width, 1e-4)

  def triangle(u):
    return jnp.abs(u / 2 - jnp.floor(u / 2) - 0.5)

  return 2 * (triangle(p - width / 2) - triangle(p + width / 2)) / width


def _frame(
  view: _View,
  light: Vec,
  edge_px: float,
  centre: jax.Array,
  rotation: jax.Array,
  is_cube: jax.Array,
  size: jax.Array,
  color: jax.Array,
  active: jax.Array,
) -> jax.Array:
  """One frame [H, W, 3] of K bodies: centre [K, 3], rotation [K, 3, 3] (body -> world), is_cube,
  size, active [K] and color [K, 3]."""
  num = centre.shape[0]
  direction = tuple(c[..., None] for c in view.direction)  # [H, W, 1]
  pixel = view.pixel[..., None]
  to_centre = tuple(centre[:, i] - view.eye[i] for i in range(3))  # [K]

  # Spheres: the ray passes at `miss` from the centre, t_mid along the ray.
  t_mid = _dot(direction, to_centre)  # [H, W, K]
  near = jnp.maximum(t_mid, _NEAR)
  miss = tuple(t_mid * d - q for d, q in zip(direction, to_centre, strict=True))
  inside = size**2 - _dot(miss, miss)
  sphere_px = inside / (2 * size * pixel * near)
  # Half chord, smoothed over half a pixel so that the limb's depth and normal stay smooth.
  half_chord = jnp.sqrt(jnp.maximum(inside, 0.0) + (0.5 * pixel * near) ** 2)
  sphere_depth = t_mid - half_chord
  sphere_normal = _normalize(
    tuple(m - half_chord * d for m, d in zip(miss, direction, strict=True))
  )

  # Cubes, in the body frame.
  eye_body = _to_body(rotation, tuple(-q for q in to_centre))  # [K]
  dir_body = _to_body(rotation, direction)  # [H, W, K]
  gap, t_gap = _box_gap(eye_body, dir_body, size, _NEAR)
  entry = _slab_entry(eye_body, dir_body, size)
  cube_depth = jnp.where(gap < 0, entry, t_gap)
  cube_px = -gap / (pixel * jnp.maximum(cube_depth, _NEAR))
  hit_body = tuple(o + cube_depth * d for o, d in zip(eye_body, dir_body, strict=True))
  cube_normal = _from_body(rotation, _face_normal(hit_body, 0.5 * pixel * cube_depth))

  depth = jnp.where(is_cube, cube_depth, sphere_depth)
  normal = tuple(jnp.where(is_cube, c, s) for c, s in zip(cube_normal, sphere_normal, strict=True))
  shown = active & (depth > _NEAR)
  alpha = jnp.where(shown, _ramp(jnp.where(is_cube, cube_px, sphere_px) / edge_px), 0.0)

  # Shadow rays from the floor (receiver 0) and every object's surface toward the light.
  surface = tuple(
    jnp.concatenate([(e + view.floor_depth * d)[..., None], e + depth * d[..., None]], -1)
    for e, d in zip(view.eye, view.direction, strict=True)
  )  # [H, W, K + 1]
  width = jnp.concatenate([view.floor_footprint[..., None], pixel * depth], -1)
  occluded = _occlusion(
    tuple(s[..., None] for s in surface),
    width[..., None],
    light,
    centre,
    rotation,
    is_cube,
    size,
  )  # [H, W, K + 1, K]
  is_self = jnp.arange(num + 1)[:, None] == jnp.arange(num)[None, :] + 1
  occluded = jnp.where(is_self | ~active, 0.0, occluded)
  lit = jnp.prod(1.0 - occluded, axis=-1)  # [H, W, K + 1]
  lambert = jnp.concatenate(
    [
      jnp.broadcast_to(jnp.maximum(light[2], 0.0), view.pixel.shape)[..., None],
      jnp.maximum(_dot(normal, light), 0.0),
    ],
    -1,
  )
  shade = AMBIENT + DIFFUSE * lambert * lit  # [H, W, K + 1]

  # Front-to-back compositing of the floor and the objects.
  alpha = jnp.concatenate([view.floor_hit[..., None], alpha], -1)
  depth = jnp.concatenate([view.floor_depth[..., None], depth], -1)
  layer_pixel = pixel[..., None] * jnp.maximum(depth[..., :, None], depth[..., None, :]) * edge_px
  in_front = _ramp((depth[..., None, :] - depth[..., :, None]) / layer_pixel)  # [.., j, k]
  in_front = jnp.where(jnp.eye(num + 1, dtype=bool), 0.0, in_front)
  weight = alpha * jnp.prod(1.0 - alpha[..., :, None] * in_front, axis=-2)  # [H, W, K + 1]
  sky = jnp.prod(1.0 - alpha, axis=-1)
  radiance = weight * shade
  rgb = (
    (radiance[..., 0] * view.floor_albedo)[..., None]
    + radiance[..., 1:] @ color
    + sky[..., None] * jnp.array(SKY)
  )
  return jnp.clip(rgb, 0.0, 1.0)


def _occlusion(
  point: Vec,
  width: jax.Array,
  light: Vec,
  centre: jax.Array,
  rotation: jax.Array,
  is_cube: jax.Array,
  size: jax.Array,
) -> jax.Array:
  """How much each body [K] blocks the shadow ray from each `point` toward the light: a ramp of
  the ray's signed distance to the body over a penumbra of `width` plus LIGHT_ANGLE per metre."""
  to_centre = tuple(centre[:, i] - p for i, p in enumerate(point))
  along = jnp.maximum(_dot(to_centre, light), 0.0)
  miss = tuple(q - along * u for q, u in zip(to_centre, light, strict=True))
  sphere = (size**2 - _dot(miss, miss)) / (2 * size) / (width + LIGHT_ANGLE * along)
  light_body = _to_body(rotation, light)
  gap, t_gap = _box_gap(_to_body(rotation, tuple(-q for q in to_centre)), light_body, size, 0.0)
  cube = -gap / (width + LIGHT_ANGLE * t_gap)
  return _ramp(jnp.where(is_cube, cube, sphere))


def _box_gap(origin: Vec, direction: Vec, half: jax.Array, t_min: float):
  """Chebyshev gap between the ray origin + t direction (t >= t_min) and the box |x_i| <= half:
  min over t of max_i |origin_i + t direction_i| - half (negative where the ray enters the box),
  and the t that attains it.

  The function of t is convex and piecewise linear, so its minimum lies at t_min or where two
  coordinates have equal magnitudes (a coordinate's own kink at zero is never the maximum alone).
  """
  best_gap = best_t = None
  for i in range(3):
    j = (i + 1) % 3
    for sign in (-1.0, 1.0):
      t = -(origin[i] + sign * origin[j]) * _reciprocal(direction[i] + sign * direction[j])
      t = jnp.maximum(t, t_min)
      gap = _chebyshev(origin, direction, t)
      if best_gap is None:
        best_gap, best_t = gap, t
      else:
        closer = gap < best_gap
        best_gap, best_t = jnp.where(closer, gap, best_gap), jnp.where(closer, t, best_t)
  gap = _chebyshev(origin, direction, t_min)
  closer = gap < best_gap
  best_gap, best_t = jnp.where(closer, gap, best_gap), jnp.where(closer, t_min, best_t)
  return best_gap - half, best_t


def _chebyshev(origin: Vec, direction: Vec, t: jax.Array | float) -> jax.Array:
  """max_i |origin_i + t direction_i|."""
  magnitudes = [jnp.abs(o + t * d) for o, d in zip(origin, direction, strict=True)]
  return jnp.maximum(jnp.maximum(magnitudes[0], magnitudes[1]), magnitudes[2])


def _slab_entry(origin: Vec, direction: Vec, half: jax.Array) -> jax.Array:
  """Where the ray enters the box |x_i| <= half: the largest of the three slab entries."""
  entries = []
  for o, d in zip(origin, direction, strict=True):
    inverse = _reciprocal(d)
    t1, t2 = (-half - o) * inverse, (half - o) * inverse
    entries.append(jnp.minimum(t1, t2))
  return jnp.maximum(jnp.maximum(entries[0], entries[1]), entries[2])


def _face_normal(point: Vec, softness: jax.Array) -> Vec:
  """Outward normal (body frame) of the cube face nearest a surface point, blended over
  `softness` metres across edges so that shading does not alias there."""
  magnitude = [jnp.abs(p) / softness for p in point]
  largest = jnp.maximum(jnp.maximum(magnitude[0], magnitude[1]), magnitude[2])
  weight = [jnp.exp(m - largest) for m in magnitude]
  return _normalize(tuple(jnp.sign(p) * w for p, w in zip(point, weight, strict=True)))


def rotation_matrix(q: jax.Array, xp: ModuleType = jnp) -> jax.Array:
  """Rotation matrices [..., 3, 3] (body -> world) of quaternions [..., 4] (w, x, y, z), computed
  with `xp` (jax.numpy, or numpy for concrete checks)."""
  w, x, y, z = xp.moveaxis(q / xp.linalg.norm(q, axis=-1, keepdims=True), -1, 0)
  return xp.stack(
    [
      xp.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)], -1),
      xp.stack([2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)], -1),
      xp.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], -1),
    ],
    -2,
  )


def _to_body(rotation: jax.Array, v: Vec) -> Vec:
  """R^T v for rotations [K, 3, 3] and vectors whose components broadcast against [K]."""
  return tuple(sum(rotation[:, j, i] * v[j] for j in range(3)) for i in range(3))


def _from_body(rotation: jax.Array, v: Vec) -> Vec:
  return tuple(sum(rotation[:, i, j] * v[j] for j in range(3)) for i in range(3))


def _dot(a: Vec, b: Vec) -> jax.Array:
  return a[0] * b[0] + a[1] * b[1] + a[2] * b[2]


def _normalize(v: Vec) -> Vec:
  norm = jnp.sqrt(_dot(v, v) + 1e-20)
  return tuple(c / norm for c in v)


def _reciprocal(x: jax.Array) -> jax.Array:
  """1 / x, with |x| raised to at least 1e-9 so that it stays finite."""
  return 1.0 / jnp.where(jnp.abs(x) < 1e-9, jnp.where(x < 0, -1e-9, 1e-9), x)


def _ramp(distance_px: jax.Array) -> jax.Array:
  """Coverage of a signed distance (in ramp widths): a smoothstep from -1/2 to 1/2, C1 and exact
  zero or one outside."""
  ramp = jnp.clip(0.5 + distance_px, 0.0, 1.0)
  return ramp * ramp * (3.0 - 2.0 * ramp)


def _concrete(x: object) -> np.ndarray | None:
  """`x` as a numpy array, or None while it is traced."""
  if any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree.leaves(x)):
    return None
  return np.asarray(x)


def _check_camera(camera: Camera, light_direction: object, resolution: object) -> None:
  if isinstance(resolution, bool) or not isinstance(resolution, int | np.integer):
    raise ValueError(f"resolution must be an integer >= {MIN_RESOLUTION}, got {resolution!r}")
  if resolution < MIN_RESOLUTION:
    raise ValueError(f"resolution must be an integer >= {MIN_RESOLUTION}, got {resolution}")
  fov = _concrete(camera.fov)
  if fov is not None and not (fov.shape == () and 0.0 < float(fov) < 180.0):
    raise ValueError(f"camera fov must be a number in (0, 180) degrees, got {fov.tolist()}")
  eye, look_at, up, light = (
    _concrete(v) for v in (camera.position, camera.look_at, camera.up, light_direction)
  )
  if eye is not None and look_at is not None and up is not None:
    forward = look_at.astype(np.float64) - eye
    if np.linalg.norm(np.cross(forward, up)) < 1e-9 * max(np.linalg.norm(forward), 1.0):
      raise ValueError(
        f"camera look_at {look_at.tolist()} must differ from position {eye.tolist()} and the "
        f"view direction must not be parallel to up {up.tolist()}"
      )
  if light is not None and not np.linalg.norm(light) > 0:
    raise ValueError(f"light_direction must be a non-zero 3-vector, got {light.tolist()}")


def _check_eye_outside_bodies(eye: object, traj: Trajectory3D) -> None:
  """Raises if the eye is inside an active body in frame 0; skipped while anything is traced."""
  arrays = [
    _concrete(x) for x in (eye, traj.position, traj.orientation, traj.shape, traj.size, traj.active)
  ]
  if any(a is None for a in arrays):
    return
  eye, position, orientation, shape, size, active = arrays
  offset = eye.astype(np.float64) - position[:, 0]  # [n, K, 3]
  rotation = rotation_matrix(orientation[:, 0].astype(np.float64), np)
  body = np.einsum("nkji,nkj->nki", rotation, offset)
  inside = np.where(
    shape == SPHERE,
    np.linalg.norm(offset, axis=-1) < size,
    np.abs(body).max(-1) < size,
  ) & active.astype(bool)
  if inside.any():
    video, slot = np.argwhere(inside)[0]
    raise ValueError(
      f"camera position {eye.tolist()} is inside active body {slot} of video {video} (a "
      f"{SHAPES_3D[shape[video, slot]]} of size {size[video, slot]:.3g} at "
      f"{position[video, 0, slot].tolist()}) in frame 0; place the camera outside every body"
    )
