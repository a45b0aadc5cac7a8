"""3-D worlds: spheres and cubes on a floor simulated by brax (z up, metres, seconds)."""

from sims.world3d.bodies import CUBE, GRAVITY_3D, SHAPES_3D, SPHERE, Bodies3D, Trajectory3D
from sims.world3d.movi import Movi
from sims.world3d.scenes import (
  FRAME_DT_3D,
  Bounce3D,
  Collision3D,
  Rolling3D,
  Scene3D,
  spheres,
)

__all__ = [
  "CUBE",
  "FRAME_DT_3D",
  "GRAVITY_3D",
  "SHAPES_3D",
  "SPHERE",
  "Bodies3D",
  "Bounce3D",
  "Collision3D",
  "Movi",
  "Rolling3D",
  "Scene3D",
  "Trajectory3D",
  "spheres",
]
