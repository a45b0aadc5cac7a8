"""State and trajectory containers of the 3-D worlds (z up, metres, seconds).

Bodies are spheres or cubes. Orientations are unit quaternions (w, x, y, z) rotating body axes
into the world. Frame k of a video is the state at time k * the scene's frame_dt.
"""

from __future__ import annotations

import jax
from flax import struct

GRAVITY_3D = 9.81  # m / s^2, along -z
SHAPES_3D = ("sphere", "cube")
SPHERE, CUBE = 0, 1


@struct.dataclass
class Bodies3D:
  """Batched initial state of K rigid bodies: every field has a leading batch axis n.

  position, velocity: [n, K, 3] (m, m / s); orientation: [n, K, 4] unit quaternions (w, x, y, z);
  angular_velocity: [n, K, 3] rad / s in the world frame; shape: [n, K] int32 index into SHAPES_3D;
  size: [n, K] radius (spheres) or half edge (cubes), m; mass: [n, K] kg; color: [n, K, 3] RGB in
  [0, 1]; active: [n, K] bool (inactive slots are absent: invisible, collide with nothing).
  Contact materials, one per example ([n]; None: the simulating scene's default): restitution in
  [0, 1] (normal speed out / in of every contact), friction (sliding, Coulomb) and
  rolling_friction (dimensionless rolling resistance: the resisting torque is rolling_friction *
  size * normal force).
  """

  position: jax.Array
  orientation: jax.Array
  velocity: jax.Array
  angular_velocity: jax.Array
  shape: jax.Array
  size: jax.Array
  mass: jax.Array
  color: jax.Array
  active: jax.Array
  restitution: jax.Array | None = None
  friction: jax.Array | None = None
  rolling_friction: jax.Array | None = None


@struct.dataclass
class Trajectory3D:
  """Batched video of K rigid bodies over T frames.

  position, velocity: [n, T, K, 3]; orientation: [n, T, K, 4]; angular_velocity: [n, T, K, 3];
  shape, size, mass, active: [n, K]; color: [n, K, 3] (as in Bodies3D).
  """

  position: jax.Array
  orientation: jax.Array
  velocity: jax.Array
  angular_velocity: jax.Array
  shape: jax.Array
  size: jax.Array
  mass: jax.Array
  color: jax.Array
  active: jax.Array

  @property
  def num_frames(self) -> int:
    return self.position.shape[1]
