"""Trivial and law-based predictors, scored beside the model on the same cases by every probe.

Each turns the ground-truth video [n, T, H, W, 3] of a case into a "generated" one that keeps the
context frames (as the model's rollouts do) and replaces the frames after them:

- "copy_last": every generated frame is the last context frame (nothing moves);
- "blank": every generated frame is the empty background (every object vanishes);
- "extrapolate" (law tasks only): the study's hard parser on the context frames gives each
  ball's radius, position and velocity (`sims.fitting.parse_initial_state`), the scene's own law
  (constant velocity, gravity, the elastic collision rule) rolls that state out and
  `sims.render` draws it: what a model that had learned the law perfectly, and saw only the
  context, would generate. The distance between the model and this row is the study's question.

A model that does not beat "copy_last" on the generated frames has not learned to predict motion,
whatever its absolute scores; the reports mark such rows.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp

import sims

NAMES = ("copy_last", "blank", "extrapolate")
# Baselines that need a law-task (ball) scene.
LAW_ONLY = ("extrapolate",)
BACKGROUND = 1.0  # sims.render's white background


def available(scene: sims.Scene) -> tuple[str, ...]:
  """The baselines defined for a scene: all of them for the law tasks' ball scenes, the trivial
  ones otherwise (template, composition and ambiguity scenes, and attribute pairings, whose ball
  changes colour from case to case while `extrapolate` parses one colour per ball); only
  copy_last for the 3-D worlds, whose empty scene is a floor, not the white background."""
  if isinstance(scene, sims.world3d.Scene3D):
    return ("copy_last",)
  law_scene = isinstance(scene, sims.UniformMotion | sims.Parabola | sims.Collision)
  if not law_scene or getattr(scene, "pairing", None) is not None:
    return tuple(name for name in NAMES if name not in LAW_ONLY)
  return NAMES


def check(scene: sims.Scene, names: Sequence[str]) -> tuple[str, ...]:
  """The requested baselines, each known and defined for `scene` (else a one-line ValueError)."""
  allowed = available(scene)
  for name in names:
    sims.check_choice(f"baseline for scene {scene.name!r}", name, allowed)
  return tuple(names)


def predict(name: str, scene: sims.Scene, truth: jax.Array, context_frames: int) -> jax.Array:
  """The baseline's video [n, T, H, W, 3]: `truth`'s context frames, then its prediction."""
  context = truth[:, :context_frames]
  num_generated = truth.shape[1] - context_frames
  if name == "copy_last":
    future = jnp.repeat(context[:, -1:], num_generated, axis=1)
  elif name == "blank":
    future = jnp.full((truth.shape[0], num_generated, *truth.shape[2:]), BACKGROUND, truth.dtype)
  elif name == "extrapolate":
    future = extrapolate(scene, context, truth.shape[1])[:, context_frames:]
  else:
    raise ValueError(f"unknown baseline {name!r}; valid: {', '.join(NAMES)}")
  return jnp.concatenate([context, future], axis=1)


def extrapolate(scene: sims.Scene, context: jax.Array, num_frames: int) -> jax.Array:
  """The scene's law rolled out from the hard-parsed context [n, C, H, W, 3]: [n, T, H, W, 3]."""
  state0 = sims.fitting.parse_initial_state(scene, context)
  return sims.render(scene.rollout(state0, num_frames), context.shape[2])
