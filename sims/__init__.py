"""Differentiable simulators of the study's physical-law scenes, as a plain JAX library.

import sims
scene = sims.make("collision")
state0 = scene.sample(jax.random.key(0), 8, split="id")
traj = scene.rollout(state0, num_frames=32)
frames = sims.render(traj, resolution=128)   # [8, 32, 128, 128, 3] in [0, 1]
"""

from __future__ import annotations

import inspect

from sims import laws, pairings, parsing, phyre_ambiguity
from sims.collision import Collision
from sims.composition import Composition
from sims.core import (
  BLUE,
  CIRCLE,
  FRAME_DT,
  GRAVITY,
  NUM_FRAMES,
  RED,
  RING,
  RING_INNER,
  SHAPES,
  SQUARE,
  WORLD_SIZE,
  BallState,
  BodyTrajectory,
  Pool,
  Scene,
  Trajectory,
  balls,
  check_choice,
  scaled_frames,
)
from sims.fitting import fit_initial_state, physics_score
from sims.optical_flow import flow
from sims.phyre import Phyre
from sims.rendering import render
from sims.single_ball import Parabola, UniformMotion
from sims.world3d import Bodies3D, Bounce3D, Collision3D, Movi, Rolling3D, Trajectory3D

_SCENES: dict[str, type[Scene]] = {
  "uniform_motion": UniformMotion,
  "parabola": Parabola,
  "collision": Collision,
  "composition": Composition,
  "phyre": Phyre,
  "bounce3d": Bounce3D,
  "rolling3d": Rolling3D,
  "collision3d": Collision3D,
  "movi": Movi,
}


def names() -> tuple[str, ...]:
  """Every registered scene name."""
  return tuple(_SCENES)


def make(name: str, *, num_frames: int | None = None, **options) -> Scene:
  """The scene called `name`, built with its keyword options (e.g. direction="left").

  `num_frames` is the clip length the scene's videos will have: scenes that time their events
  (`Scene.fits_clip`: the ball scenes) place them within it; the others run as they run.
  """
  scene_class = _SCENES[check_choice("scene", name, names())]
  allowed = scene_options(scene_class)
  for option in options:
    if option not in allowed:
      valid = ", ".join(allowed) or "none"
      raise ValueError(f"unknown option {option!r} for scene {name!r}; valid: {valid}")
  if num_frames is not None and scene_class.fits_clip:
    options["num_frames"] = num_frames
  return scene_class(**options)


def scene_options(scene_class: type[Scene]) -> tuple[str, ...]:
  """The keyword options a scene class takes: the parameters with defaults of its `__init__`
  and, where that passes `**options` on, of its bases' (those without a default are set by the
  subclass, e.g. a scene's gravity)."""
  found = []
  for klass in scene_class.__mro__:
    if "__init__" not in vars(klass) or klass is object:
      continue
    parameters = inspect.signature(vars(klass)["__init__"]).parameters.values()
    found += [p.name for p in parameters if p.default is not p.empty and p.name not in found]
    if not any(p.kind is p.VAR_KEYWORD for p in parameters):
      break
  return tuple(found)


def register(name: str, scene_class: type[Scene]) -> None:
  """Adds a scene class under `name` (replacing none: names are unique)."""
  if name in _SCENES:
    raise ValueError(f"scene {name!r} is already registered")
  _SCENES[name] = scene_class


__all__ = [
  "BLUE",
  "CIRCLE",
  "FRAME_DT",
  "GRAVITY",
  "NUM_FRAMES",
  "RED",
  "RING",
  "RING_INNER",
  "SHAPES",
  "SQUARE",
  "WORLD_SIZE",
  "BallState",
  "Bodies3D",
  "BodyTrajectory",
  "Pool",
  "Scene",
  "Trajectory",
  "Trajectory3D",
  "balls",
  "fit_initial_state",
  "flow",
  "laws",
  "make",
  "names",
  "pairings",
  "parsing",
  "phyre_ambiguity",
  "physics_score",
  "register",
  "render",
  "scaled_frames",
  "scene_options",
]
