"""3-D scenes of bodies on a floor, simulated by brax (MJX pipeline, see `sims.world3d.engine`).

Units: metres, seconds, kilograms; z up, the floor is z = 0, gravity 9.81 m/s^2. Frame k of a
video is the state at t = k * FRAME_DT_3D (1/24 s: a 32-frame clip lasts 1.33 s, long enough for
a ball dropped from 1.5 m to bounce twice). Spheres have density DENSITY, so mass = DENSITY *
4/3 pi r^3. The motion runs along +x, centred on x = 0 over a 32-frame clip.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from physworld import require_extra
from sims.core import BLUE, NUM_FRAMES, RED, Scene, scaled_frames
from sims.params import Bands, make_space
from sims.world3d.bodies import SPHERE, Bodies3D, Trajectory3D

FRAME_DT_3D = 1.0 / 24.0
# MJX steps per frame: 0.52 ms steps, about 19 per contact (restitution within 1 % of its target).
SUBSTEPS = 80
DENSITY = 1000.0  # kg / m^3
MIN_FRICTION = 0.01
# Dataset-size level -> number of parameter draws in a pool.
POOL_SIZES = {"30K": 30_000, "300K": 300_000, "3M": 3_000_000}

_SPEED = Bands(id=(1.0, 3.0), low=(0.2, 0.6), high=(3.5, 5.0))  # m / s
_RADIUS = Bands(id=(0.1, 0.2), low=(0.04, 0.07), high=(0.25, 0.35))  # m
RESTITUTION_BANDS = Bands(id=(0.5, 0.9), low=(0.1, 0.35), high=(0.93, 1.0))


def check_range(name: str, value: jax.Array | float | None, low: float, high: float) -> None:
  """Raises a one-line ValueError if a concrete `value` leaves [low, high] (tracers pass)."""
  if value is None or isinstance(value, jax.core.Tracer):
    return
  value = np.asarray(value)
  if value.size and not ((value >= low) & (value <= high)).all():
    bad = value[(value < low) | (value > high)].ravel()[0]
    raise ValueError(f"{name} {float(bad):g} is outside the allowed range [{low:g}, {high:g}]")


def sphere_mass(radius: jax.Array) -> jax.Array:
  return DENSITY * 4.0 / 3.0 * jnp.pi * radius**3


def rolling_spin(velocity: jax.Array, radius: jax.Array) -> jax.Array:
  """World angular velocity [..., 3] of a sphere rolling on the floor without slipping."""
  z = jnp.zeros_like(velocity).at[..., 2].set(1.0)
  return jnp.cross(z, velocity) / radius[..., None]


def spheres(
  position: jax.Array,
  velocity: jax.Array,
  radius: jax.Array,
  angular_velocity: jax.Array | None = None,
  restitution: jax.Array | None = None,
  friction: jax.Array | None = None,
  rolling_friction: jax.Array | None = None,
) -> Bodies3D:
  """Bodies3D of K spheres from [n, K, 3] positions and velocities and [n, K] radii (red,
  upright, not spinning unless given, mass from DENSITY). Materials are [n] or None."""
  position = jnp.asarray(position, jnp.float32)
  n, k = position.shape[:2]
  radius = jnp.asarray(radius, jnp.float32)
  spin = jnp.zeros((n, k, 3)) if angular_velocity is None else angular_velocity

  def as_array(x: jax.Array | None) -> jax.Array | None:
    return None if x is None else jnp.broadcast_to(jnp.asarray(x, jnp.float32), (n,))

  return Bodies3D(
    position=position,
    orientation=jnp.zeros((n, k, 4)).at[..., 0].set(1.0),
    velocity=jnp.asarray(velocity, jnp.float32),
    angular_velocity=jnp.asarray(spin, jnp.float32),
    shape=jnp.full((n, k), SPHERE, jnp.int32),
    size=radius,
    mass=sphere_mass(radius),
    color=jnp.broadcast_to(jnp.asarray(RED, jnp.float32), (n, k, 3)),
    active=jnp.ones((n, k), bool),
    restitution=as_array(restitution),
    friction=as_array(friction),
    rolling_friction=as_array(rolling_friction),
  )


class Scene3D(Scene):
  """Shared parts of the sphere scenes: materials, validation, rollout, pools.

  Options: `restitution`, `friction` (sliding) and `rolling_friction` are the defaults for
  states whose materials are None (and for parameters a scene does not draw). friction=0 makes
  every contact frictionless (condim 1); otherwise friction must be at least MIN_FRICTION (MJX's
  pyramidal friction cone degenerates and the contact explodes as friction goes to 0).
  """

  dataset_sizes = tuple(POOL_SIZES)
  frame_dt = FRAME_DT_3D
  condim = 3

  @property
  def slot_shapes(self) -> tuple[int, ...]:
    """The shape (SPHERE / CUBE) of each body slot, fixed by the compiled model."""
    return (SPHERE,) * self.num_objects

  def __init__(
    self, *, restitution: float = 0.7, friction: float = 0.5, rolling_friction: float = 0.0
  ):
    check_range("restitution", restitution, 0.0, 1.0)
    check_range("friction", friction, 0.0, 10.0)
    check_range("rolling_friction", rolling_friction, 0.0, 1.0)
    self.restitution, self.friction = float(restitution), float(friction)
    self.rolling_friction = float(rolling_friction)
    require_extra(f"sims.make({self.name!r})", "world3d")
    from sims.world3d import mjcf  # lazily: brax and mujoco load with the first 3-D scene

    condim = 1 if self.friction == 0.0 else self.condim
    self.layout = mjcf.Layout(self.slot_shapes, FRAME_DT_3D, SUBSTEPS, condim=condim)
    mjcf.system(self.layout)  # built here, once, outside any trace

  def with_materials(self, state: Bodies3D) -> Bodies3D:
    """`state` with missing materials set to the scene's defaults, after checking the values."""
    n = state.position.shape[0]
    filled = {
      name: jnp.full((n,), getattr(self, name), jnp.float32)
      if getattr(state, name) is None
      else getattr(state, name)
      for name in ("restitution", "friction", "rolling_friction")
    }
    check_range("restitution", filled["restitution"], 0.0, 1.0)
    low = 0.0 if self.layout.condim == 1 else MIN_FRICTION
    check_range("friction", filled["friction"], low, 10.0)
    check_range("rolling_friction", filled["rolling_friction"], 0.0, 1.0)
    check_range("size", state.size, 1e-3, 10.0)
    check_range("mass", state.mass, 1e-6, 1e6)
    return state.replace(**filled)

  def rollout(self, state0: Bodies3D, num_frames: int = NUM_FRAMES) -> Trajectory3D:
    """Simulates `num_frames` frames FRAME_DT_3D apart, the whole batch in one vmapped run."""
    if num_frames < 1:
      raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    from sims.world3d import engine

    return engine.simulate(self.layout, self.with_materials(state0), int(num_frames))

  def pool_params(self, dataset_size: str, seed: int = 0) -> np.ndarray:
    """Uniform draws from the training range, [N, P]."""
    lo, hi = self.space.id_box
    rng = np.random.default_rng(seed)
    size = (POOL_SIZES[dataset_size], len(lo))
    return rng.uniform(lo, hi, size).astype(np.float32)


def _uniforms(keys: jax.Array, count: int) -> jax.Array:
  return jax.vmap(lambda k: jax.random.uniform(k, (count,)))(keys)


class Bounce3D(Scene3D):
  """A sphere thrown along +x at `speed` and `angle` (degrees above horizontal; negative: down)
  from 0.5-1.5 m above the floor, bouncing with restitution e: apexes fall by e^2."""

  name = "bounce3d"
  num_objects = 1
  space = make_space(
    ("speed", "angle", "radius", "restitution"),
    (
      _SPEED,
      Bands(id=(0.0, 45.0), low=(-40.0, -10.0), high=(55.0, 80.0)),
      _RADIUS,
      RESTITUTION_BANDS,
    ),
    {
      "speed": ("speed",),
      "angle": ("angle",),
      "size": ("radius",),
      "restitution": ("restitution",),
    },
  )

  def place(self, keys: jax.Array, params: jax.Array) -> Bodies3D:
    speed, angle, radius, restitution = (params[:, i] for i in range(4))
    u = _uniforms(keys, 2)
    theta = jnp.deg2rad(angle)
    vx, vz = speed * jnp.cos(theta), speed * jnp.sin(theta)
    x0 = -0.5 * vx * NUM_FRAMES * FRAME_DT_3D
    position = jnp.stack([x0, 0.5 * (u[:, 0] - 0.5), radius + 0.5 + u[:, 1]], -1)
    velocity = jnp.stack([vx, jnp.zeros_like(vx), vz], -1)
    state = spheres(position[:, None], velocity[:, None], radius[:, None], restitution=restitution)
    return self.with_materials(state)

  def params_of(self, state: Bodies3D) -> jax.Array:
    v = state.velocity[:, 0]
    speed = jnp.linalg.norm(v, axis=-1)
    angle = jnp.rad2deg(jnp.arctan2(v[:, 2], jnp.linalg.norm(v[:, :2], axis=-1)))
    return jnp.stack([speed, angle, state.size[:, 0], state.restitution], -1)


class Rolling3D(Scene3D):
  """A sphere rolling along +x on the floor without slipping, slowed by rolling resistance:
  `friction` is the dimensionless coefficient (resisting torque friction * r * m g), so the speed
  falls linearly at 5/7 * friction * g until the ball stops (the 3-D uniform motion)."""

  name = "rolling3d"
  num_objects = 1
  condim = 6
  space = make_space(
    ("speed", "radius", "friction"),
    (_SPEED, _RADIUS, Bands(id=(0.02, 0.1), low=(0.0, 0.01), high=(0.15, 0.25))),
    {"speed": ("speed",), "size": ("radius",), "friction": ("friction",)},
  )

  def __init__(self, *, friction: float = 1.0, **options):
    super().__init__(friction=friction, **options)

  def place(self, keys: jax.Array, params: jax.Array) -> Bodies3D:
    speed, radius, rolling = (params[:, i] for i in range(3))
    u = _uniforms(keys, 1)
    x0 = -0.5 * speed * NUM_FRAMES * FRAME_DT_3D
    position = jnp.stack([x0, 0.5 * (u[:, 0] - 0.5), radius], -1)[:, None]
    velocity = jnp.stack([speed, jnp.zeros_like(speed), jnp.zeros_like(speed)], -1)[:, None]
    spin = rolling_spin(velocity, radius[:, None])
    state = spheres(position, velocity, radius[:, None], spin, rolling_friction=rolling)
    return self.with_materials(state)

  def params_of(self, state: Bodies3D) -> jax.Array:
    speed = jnp.linalg.norm(state.velocity[:, 0], axis=-1)
    return jnp.stack([speed, state.size[:, 0], state.rolling_friction], -1)


# The contact happens this many frames into a 32-frame clip (at 0.5 s), proportionally later in
# a longer clip and earlier in a shorter one (`sims.scaled_frames`: frame 3 of 8).
CONTACT_FRAME = 12


class Collision3D(Scene3D):
  """Two spheres rolling on the floor touch near the origin at frame CONTACT_FRAME of a 32-frame
  clip (option `num_frames`: the clip the videos will have, scaled as the 2-D scenes do).

  Ball 1 rolls along +x at speed1; ball 2 rolls towards it at speed2 along a direction within
  30 degrees of -x; the line of centres at contact is within 35 degrees of +x (both drawn per
  example). Ball 1 is red, ball 2 blue; masses follow the radii at equal density. Unequal balls
  meet along a tilted line of centres, so the collision also kicks them vertically (they hop on
  the floor).
  """

  name = "collision3d"
  num_objects = 2
  space = make_space(
    ("radius1", "radius2", "speed1", "speed2", "restitution"),
    (_RADIUS, _RADIUS, _SPEED, _SPEED, RESTITUTION_BANDS),
    {
      "speed": ("speed1", "speed2"),
      "size": ("radius1", "radius2"),
      "restitution": ("restitution",),
    },
  )

  fits_clip = True

  def __init__(self, *, num_frames: int = NUM_FRAMES, **options):
    self.contact_frame = scaled_frames(CONTACT_FRAME, num_frames)
    super().__init__(**options)

  def place(self, keys: jax.Array, params: jax.Array) -> Bodies3D:
    radius = params[:, :2]
    speed1, speed2, restitution = params[:, 2], params[:, 3], params[:, 4]
    u = _uniforms(keys, 2)
    normal_angle = jnp.deg2rad(35.0 * (2.0 * u[:, 0] - 1.0))
    heading = jnp.deg2rad(30.0 * (2.0 * u[:, 1] - 1.0))
    normal = jnp.stack([jnp.cos(normal_angle), jnp.sin(normal_angle)], -1)
    zero = jnp.zeros_like(speed1)
    v1 = jnp.stack([speed1, zero, zero], -1)
    v2 = jnp.stack([-speed2 * jnp.cos(heading), speed2 * jnp.sin(heading), zero], -1)
    t_contact = self.contact_frame * FRAME_DT_3D
    # Balls of radii r1, r2 resting on the floor touch at a horizontal distance 2 sqrt(r1 r2).
    reach = 2.0 * jnp.sqrt(radius[:, :1] * radius[:, 1:]) / radius.sum(-1, keepdims=True)
    centres = jnp.stack([-normal * radius[:, :1], normal * radius[:, 1:]], 1) * reach[:, None]
    velocity = jnp.stack([v1, v2], 1)
    position = jnp.concatenate([centres, radius[..., None]], -1) - velocity * t_contact
    spin = rolling_spin(velocity, radius)
    state = spheres(position, velocity, radius, spin, restitution=restitution)
    color = jnp.broadcast_to(jnp.asarray([RED, BLUE], jnp.float32), state.color.shape)
    return self.with_materials(state.replace(color=color))

  def params_of(self, state: Bodies3D) -> jax.Array:
    speed = jnp.linalg.norm(state.velocity, axis=-1)
    return jnp.concatenate([state.size, speed, state.restitution[:, None]], -1)
