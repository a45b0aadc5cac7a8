"""MOVi-like scenes: 3 to 10 spheres and cubes of random size, colour and mass thrown onto a floor.

In the spirit of Kubric's MOVi datasets (the field's anchor for synthetic 3-D video): each video
activates 3-10 of MOVI_SLOTS body slots (5 spheres and 5 cubes, the compiled model's fixed
shapes), so the count and the mix of shapes vary per video. Active bodies start in distinct cells
of a 4 x 3 grid, 1.2 m apart, at 0.8 or 1.8 m above the floor like a checkerboard's colours (so
no two overlap), randomly turned, and are thrown horizontally toward the scene's vertical axis
within 30 degrees, all at the video's `speed`. They fall, bounce, collide and tumble. Inactive
slots are parked far above the scene, where they fall freely and touch nothing, and are not drawn.

Per-video parameters (the splits' axes): `speed` (m/s), `size` (the mean radius / half edge of
the video's bodies; each body's size is that times a factor drawn in [0.8, 1.2], normalised to
mean 1 over the active bodies) and `restitution` (the shared material). Densities are drawn in
[500, 2000] kg/m^3 per body, so masses vary with both size and density; hues are uniform.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from sims.params import Bands, make_space
from sims.world3d.bodies import CUBE, SPHERE, Bodies3D
from sims.world3d.scenes import RESTITUTION_BANDS, Scene3D

MOVI_SLOTS = (SPHERE,) * 5 + (CUBE,) * 5
MIN_OBJECTS, MAX_OBJECTS = 3, len(MOVI_SLOTS)
DENSITY_RANGE = (500.0, 2000.0)  # kg / m^3
SIZE_SPREAD = 0.2  # each body's size factor before normalisation is in [1 - SPREAD, 1 + SPREAD]
HEADING_SPREAD = 30.0  # degrees between a throw and the direction to the vertical axis
# Start cells (x, y, z) in metres: every pair is at least 1.56 m apart, more than twice the largest
# bounding radius (a cube of half edge 0.3 * 1.29 has sqrt(3) * 0.39 = 0.67) plus the jitter.
CELLS = np.array(
  [
    (x, y, 0.8 + (i + j) % 2)
    for i, x in enumerate((-1.8, -0.6, 0.6, 1.8))
    for j, y in enumerate((-1.2, 0.0, 1.2))
  ],
  np.float32,
)
JITTER = 0.05  # m, uniform per axis around a cell's centre
PARKED = np.array([30.0, 30.0, 1000.0], np.float32)  # where inactive slots start, 3 m apart in x


def hue_to_rgb(hue: jax.Array, saturation: float = 0.8, value: float = 0.9) -> jax.Array:
  """RGB [..., 3] in [0, 1] of hues in [0, 1) at a fixed saturation and value (HSV)."""
  k = (jnp.asarray([5.0, 3.0, 1.0]) + 6.0 * hue[..., None]) % 6.0
  return value - value * saturation * jnp.clip(jnp.minimum(k, 4.0 - k), 0.0, 1.0)


def random_rotation(key: jax.Array, shape: tuple[int, ...]) -> jax.Array:
  """Uniformly random unit quaternions (w, x, y, z) [*shape, 4]."""
  q = jax.random.normal(key, (*shape, 4))
  return q / jnp.linalg.norm(q, axis=-1, keepdims=True)


def body_volume(shape: jax.Array, size: jax.Array) -> jax.Array:
  """Volume (m^3) of spheres of radius `size` and cubes of half edge `size`."""
  return jnp.where(shape == CUBE, 8.0, 4.0 / 3.0 * jnp.pi) * size**3


class Movi(Scene3D):
  """3-10 spheres and cubes thrown onto a floor (module docstring); restitution and friction
  apply to every contact."""

  name = "movi"
  num_objects = MAX_OBJECTS
  space = make_space(
    ("speed", "size", "restitution"),
    (
      Bands(id=(0.5, 2.0), low=(0.05, 0.3), high=(2.6, 3.5)),
      Bands(id=(0.12, 0.22), low=(0.05, 0.09), high=(0.25, 0.3)),
      RESTITUTION_BANDS,
    ),
    {"speed": ("speed",), "size": ("size",), "restitution": ("restitution",)},
  )

  @property
  def slot_shapes(self) -> tuple[int, ...]:
    return MOVI_SLOTS

  def place(self, keys: jax.Array, params: jax.Array) -> Bodies3D:
    return self.with_materials(_throw_batch(keys, params))

  def params_of(self, state: Bodies3D) -> jax.Array:
    count = state.active.sum(-1)
    speed = jnp.linalg.norm(state.velocity[..., :2], axis=-1)
    size = jnp.where(state.active, state.size, 0.0).sum(-1) / count
    mean_speed = jnp.where(state.active, speed, 0.0).sum(-1) / count
    return jnp.stack([mean_speed, size, state.restitution], -1)


def _throw(key: jax.Array, params: jax.Array) -> Bodies3D:
  """One video's bodies (unbatched: fields [K, ...]) from its [speed, size, restitution]."""
  speed, size, restitution = params[0], params[1], params[2]
  keys = jax.random.split(key, 8)
  k = MAX_OBJECTS
  count = jax.random.randint(keys[0], (), MIN_OBJECTS, MAX_OBJECTS + 1)
  active = jax.random.permutation(keys[1], k) < count
  cell = jnp.asarray(CELLS)[jax.random.permutation(keys[2], len(CELLS))[:k]]
  position = cell + jax.random.uniform(keys[3], (k, 3), minval=-JITTER, maxval=JITTER)
  factor = jax.random.uniform(keys[4], (k,), minval=1 - SIZE_SPREAD, maxval=1 + SIZE_SPREAD)
  factor = factor / (jnp.where(active, factor, 0.0).sum() / count)
  to_axis = jnp.arctan2(-position[:, 1], -position[:, 0])
  spread = jnp.deg2rad(HEADING_SPREAD)
  heading = to_axis + jax.random.uniform(keys[5], (k,), minval=-spread, maxval=spread)
  zero = jnp.zeros_like(heading)
  velocity = speed * jnp.stack([jnp.cos(heading), jnp.sin(heading), zero], -1)
  parked = jnp.asarray(PARKED) + 3.0 * jnp.arange(k)[:, None] * jnp.array([1.0, 0.0, 0.0])
  shape = jnp.asarray(MOVI_SLOTS, jnp.int32)
  body_size = size * factor
  density = jax.random.uniform(keys[6], (k,), minval=DENSITY_RANGE[0], maxval=DENSITY_RANGE[1])
  color_key, turn_key = jax.random.split(keys[7])
  return Bodies3D(
    position=jnp.where(active[:, None], position, parked),
    orientation=random_rotation(turn_key, (k,)),
    velocity=jnp.where(active[:, None], velocity, 0.0),
    angular_velocity=jnp.zeros((k, 3)),
    shape=shape,
    size=body_size,
    mass=density * body_volume(shape, body_size),
    color=hue_to_rgb(jax.random.uniform(color_key, (k,))),
    active=active,
    restitution=restitution,
  )


_throw_batch = jax.jit(jax.vmap(_throw))
