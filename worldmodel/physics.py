"""Physics consistency in training and sampling: law losses, scores and best-of-N rollouts.

The scene's physical-law residuals (`sims.laws.LOSS_TERMS`: for free flight the RMS distance of
the soft-parsed ball from the best-fitting free flight, for a collision the change of momentum
and kinetic energy across it) are measured on whole videos, context frames included, so a
generated trajectory must also continue the context's.

- `law_regularizer(scene, weight)`: a `diffusion.Regularizer` on the model's clean-frame
  estimate during training. Each video's residual counts with weight 1 - t (t = 1 is pure noise):
  the estimate from a nearly clean input is sharp enough to parse, the one from pure noise is a
  blur whose residual carries no signal.
- `law_score(scene, frames)`: per-video sums of those residuals, +inf where nothing was measured
  (lower is more physical); the reward of `best_of_n` and of reward fine-tuning.
- `context_score(scene, frames, context_frames)`: the law score plus how far the generated
  frames' centre-of-mass velocity strays from the one fitted on the context frames
  (`sims.laws.context_velocity_gap`): a reward that anchors a rollout on its own context, no
  label needed. `make_score` picks one by name (REWARDS).
- `best_of_n(sample, score, key, n)`: n rollouts per case, the best-scoring one kept.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp

import sims
from worldmodel.diffusion import Regularizer

REWARDS = ("law", "context")


def check_law_scene(scene: sims.Scene) -> None:
  """A one-line ValueError unless the scene has law residuals (a ball scene of `sims.laws`)."""
  sims.check_choice("scene for a physics loss or score", scene.name, tuple(sims.laws.LAWS))


def law_regularizer(scene: sims.Scene, weight: float) -> Regularizer:
  """`weight` x the time-weighted mean law residual of the videos where it can be measured."""
  if weight < 0:
    raise ValueError(f"physics weight must be >= 0, got {weight}")
  check_law_scene(scene)

  def regularize(frames: jax.Array, time: jax.Array) -> jax.Array:
    per_video, measured = sims.laws.loss_per_video(scene, frames)
    weights = jnp.where(measured, 1.0 - time, 0.0)
    return weight * jnp.sum(weights * per_video) / jnp.maximum(jnp.sum(measured), 1)

  return regularize


def law_score(scene: sims.Scene, frames: jax.Array) -> jax.Array:
  """Per-video sum of the law residuals [B] of frames [B, T, H, W, 3]; +inf if unmeasured."""
  check_law_scene(scene)
  per_video, measured = sims.laws.loss_per_video(scene, frames)
  return jnp.where(measured, per_video, jnp.inf)


def context_score(scene: sims.Scene, frames: jax.Array, context_frames: int) -> jax.Array:
  """Per-video law score plus the context velocity gap [B]; +inf where either is unmeasured."""
  gap, measured = sims.laws.context_velocity_gap(scene, frames, context_frames)
  return jnp.where(measured, law_score(scene, frames) + gap, jnp.inf)


def make_score(
  scene: sims.Scene, kind: str, context_frames: int
) -> Callable[[jax.Array], jax.Array]:
  """The per-video score `frames -> [B]` (lower is better) of reward kind `kind` (REWARDS)."""
  sims.check_choice("reward.kind", kind, REWARDS)
  check_law_scene(scene)
  if kind == "law":
    return functools.partial(law_score, scene)
  return functools.partial(context_score, scene, context_frames=context_frames)


def best_of_n(
  sample: Callable[[jax.Array], jax.Array],
  score: Callable[[jax.Array], jax.Array],
  key: jax.Array,
  n: int,
) -> tuple[jax.Array, jax.Array, jax.Array]:
  """The best of n rollouts of every case: frames [B, ...], its score [B], all scores [n, B].

  `sample(key)` draws one rollout of every case, [B, ...]; `score(frames)` scores them [B],
  lower being better. The n draws run one after another (memory of one batch of rollouts).
  """
  if n < 1:
    raise ValueError(f"best-of-n needs n >= 1, got {n}")

  def draw(carry, draw_key):
    best, best_score = carry
    frames = sample(draw_key)
    scores = score(frames)
    better = scores < best_score
    chosen = jnp.where(better.reshape(-1, *([1] * (frames.ndim - 1))), frames, best)
    return (chosen, jnp.where(better, scores, best_score)), scores

  first_key, rest = jax.random.split(key)
  first = sample(first_key)
  first_scores = score(first)
  (best, best_score), scores = jax.lax.scan(
    draw, (first, first_scores), jax.random.split(rest, n - 1)
  )
  return best, best_score, jnp.concatenate([first_scores[None], scores])
