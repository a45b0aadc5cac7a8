"""Differentiable simulators of the study's physical-law scenes, as a plain JAX library.

import sims
scene = sims.make("collision")
state0 = scene.sample(jax.random.key(0), 8, split="id")
traj = scene.rollout(state0, num_frames=32)
frames = sims.render(traj, resolution=128)   # [8, 32, 128, 128, 3] in [0, 1]
"""

from __future__ import annotations

from sims import parsing
from sims.collision import Collision
from sims.core import (
  BLUE,
  FRAME_DT,
  GRAVITY,
  NUM_FRAMES,
  RED,
  SHAPES,
  WORLD_SIZE,
  BallState,
  Pool,
  Scene,
  Trajectory,
  balls,
  check_choice,
)
from sims.rendering import render
from sims.single_ball import Parabola, UniformMotion

_SCENES: dict[str, type[Scene]] = {
  "uniform_motion": UniformMotion,
  "parabola": Parabola,
  "collision": Collision,
}


def names() -> tuple[str, ...]:
  """Every registered scene name."""
  return tuple(_SCENES)


def make(name: str, **options) -> Scene:
  """The scene called `name`, built with its keyword options (e.g. direction="left")."""
  return _SCENES[check_choice("scene", name, names())](**options)


def register(name: str, scene_class: type[Scene]) -> None:
  """Adds a scene class under `name` (replacing none: names are unique)."""
  if name in _SCENES:
    raise ValueError(f"scene {name!r} is already registered")
  _SCENES[name] = scene_class


__all__ = [
  "BLUE",
  "FRAME_DT",
  "GRAVITY",
  "NUM_FRAMES",
  "RED",
  "SHAPES",
  "WORLD_SIZE",
  "BallState",
  "Pool",
  "Scene",
  "Trajectory",
  "balls",
  "make",
  "names",
  "parsing",
  "register",
  "render",
]
