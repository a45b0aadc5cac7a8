"""MJCF text of the 3-D scenes, the brax System built from it, and per-example model fields.

One MJCF describes a layout: a floor plane (z = 0) and K free bodies, one geom each, whose shape
per slot is fixed. Sizes, masses and contact materials are placeholders in the text; the engine
sets them per example on the System (`model_fields`), and `mj_model` does the same on a MuJoCo
model for the C simulator, so both run the same model.
"""

from __future__ import annotations

import dataclasses
import functools
import warnings

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
from brax.base import System
from brax.io import mjcf

from sims.world3d.bodies import CUBE, GRAVITY_3D, SPHERE

Array = jax.Array | np.ndarray

# Contact stiffness in 1/s^2 (MuJoCo's direct solref): the normal contact is a damped spring of
# natural frequency sqrt(STIFFNESS) = 316 rad/s, so a contact lasts about 10 ms and a 5 m/s impact
# penetrates about 1.6 cm.
STIFFNESS = 1.0e5
# Constant constraint impedance (solimp dmin = dmax): the contact is this stiff from first touch.
IMPEDANCE = 0.99


@dataclasses.dataclass(frozen=True)
class Layout:
  """What fixes a compiled model: slot shapes (SPHERE / CUBE), time step, contact dimension.

  condim 3 is sliding friction; 6 adds torsional and rolling friction. `iterations` caps the
  Newton solver's iterations (it stops earlier at tolerance 1e-6); frictional contacts need 3 or
  4 to converge (with 1, MJX and MuJoCo disagree by 15 % on the speed after a bounce).
  """

  shapes: tuple[int, ...]
  frame_dt: float
  substeps: int
  condim: int = 3
  iterations: int = 10

  @property
  def dt(self) -> float:
    return self.frame_dt / self.substeps


def scene_xml(layout: Layout) -> str:
  """The MJCF text of a layout (slot k is body `b{k}` with geom `g{k}`, started 1 m apart)."""
  geom = {SPHERE: 'type="sphere" size="0.1"', CUBE: 'type="box" size="0.1 0.1 0.1"'}
  contact = (
    f'condim="{layout.condim}" solref="{-STIFFNESS} 0" solimp="{IMPEDANCE} {IMPEDANCE} 0.001 0.5 2"'
  )
  bodies = "\n".join(
    f'    <body name="b{k}" pos="{k} 0 1"><freejoint/>'
    f'<geom name="g{k}" {geom[shape]} mass="1" {contact}/></body>'
    for k, shape in enumerate(layout.shapes)
  )
  return f"""<mujoco model="sims_world3d">
  <option timestep="{layout.dt!r}" gravity="0 0 {-GRAVITY_3D}" integrator="Euler"
          cone="pyramidal" solver="Newton" iterations="{layout.iterations}" tolerance="1e-6"
          ls_iterations="8"/>
  <worldbody>
    <geom name="floor" type="plane" size="0 0 1" {contact}/>
{bodies}
  </worldbody>
</mujoco>
"""


@functools.cache
def system(layout: Layout) -> System:
  """The brax System of a layout, built once per layout."""
  with warnings.catch_warnings():
    warnings.filterwarnings("ignore", "Brax System", UserWarning)
    return mjcf.loads(scene_xml(layout))


def model_fields(
  shapes: np.ndarray,
  size: Array,
  mass: Array,
  damping: Array,
  friction: Array,
  rolling_friction: Array,
  xp=jnp,
) -> dict[str, Array]:
  """Model fields of one example: size, mass [K] per slot; damping (1/s), friction and
  rolling_friction (dimensionless) of every contact. `xp` is jnp or np."""
  is_cube = xp.asarray(shapes == CUBE)
  one = xp.ones((1,), size.dtype)
  inertia = mass * size**2 * xp.where(is_cube, 2.0 / 3.0, 2.0 / 5.0)
  geom_size = xp.concatenate([xp.ones((1, 3), size.dtype), xp.stack([size] * 3, -1)])
  rbound = xp.concatenate([0.0 * one, size * xp.where(is_cube, np.sqrt(3.0), 1.0)])
  # Pairs take the larger friction of their geoms: the floor has none of its own rolling.
  slide = xp.full((len(shapes) + 1,), friction)
  roll = xp.concatenate([0.0 * one, rolling_friction * size])
  solref = xp.stack([xp.full_like(slide, -STIFFNESS), xp.full_like(slide, -damping)], -1)
  world = xp.zeros((1,), size.dtype)
  return {
    "geom_size": geom_size,
    "geom_rbound": rbound,
    "geom_friction": xp.stack([slide, xp.zeros_like(slide), roll], -1),
    "geom_solref": solref,
    "body_mass": xp.concatenate([world, mass]),
    "body_subtreemass": xp.concatenate([xp.sum(mass, keepdims=True), mass]),
    "body_inertia": xp.concatenate([xp.zeros((1, 3), size.dtype), xp.stack([inertia] * 3, -1)]),
    "body_invweight0": xp.concatenate(
      [xp.zeros((1, 2), size.dtype), xp.stack([1.0 / mass, 1.0 / inertia], -1)]
    ),
  }


def mj_model(layout: Layout, fields: dict[str, np.ndarray]) -> mujoco.MjModel:
  """The MuJoCo (C) model of a layout with one example's `model_fields` (numpy) set."""
  model = mujoco.MjModel.from_xml_string(scene_xml(layout))
  for name, value in fields.items():
    getattr(model, name)[:] = value
  # The C engine also keeps bounding boxes and quantities derived from masses (e.g. dof_M0).
  half = fields["geom_size"][1:]
  model.geom_aabb[1:] = np.concatenate([np.zeros_like(half), half], -1)
  mujoco.mj_setConst(model, mujoco.MjData(model))
  return model
