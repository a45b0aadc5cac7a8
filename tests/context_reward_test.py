"""Tests for the context reward: the centre-of-mass velocity of the generated frames against the
one fitted on the context frames (`sims.laws.context_velocity_gap`, `physics.context_score`)."""

import jax
import numpy as np
import pytest

import sims
from worldmodel import physics

RESOLUTION, FRAMES, CONTEXT = 32, 8, 3


def _videos(name: str, split: str = "id", n: int = 8):
  scene = sims.make(name, num_frames=FRAMES)
  state0 = scene.place_eval(jax.random.split(jax.random.key(0), n), scene.eval_params(split, 4)[:n])
  return scene, state0, np.asarray(sims.render(scene.rollout(state0, FRAMES), RESOLUTION))


@pytest.mark.parametrize("name", ["uniform_motion", "parabola", "collision"])
def test_true_videos_continue_their_context(name):
  scene, _, frames = _videos(name)
  gap, measured = sims.laws.context_velocity_gap(scene, frames, CONTEXT)
  assert measured.mean() >= 0.75
  # The parser's jitter at 32 px over 3 context frames; a collision's contact does not change
  # the centre of mass's velocity.
  assert float(np.asarray(gap)[np.asarray(measured)].max()) < 0.35


def test_a_future_at_another_speed_is_measured_by_the_speed_change():
  scene, state0, frames = _videos("uniform_motion")
  faster = state0.replace(velocity=state0.velocity * 1.5)
  other = np.asarray(sims.render(scene.rollout(faster, FRAMES), RESOLUTION))
  spliced = np.concatenate([frames[:, :CONTEXT], other[:, CONTEXT:]], axis=1)
  gap, measured = sims.laws.context_velocity_gap(scene, spliced, CONTEXT)
  expected = 0.5 * np.linalg.norm(np.asarray(state0.velocity)[:, 0], axis=-1)
  kept = np.asarray(measured)
  assert kept.mean() >= 0.75
  np.testing.assert_allclose(np.asarray(gap)[kept], expected[kept], atol=0.3)
  assert np.all(np.asarray(gap)[kept] > 0.3)


def test_a_collision_that_stops_both_balls_is_penalised():
  scene, state0, frames = _videos("collision", n=16)
  frozen = np.concatenate(
    [frames[:, :CONTEXT], np.repeat(frames[:, CONTEXT - 1 : CONTEXT], FRAMES - CONTEXT, 1)], 1
  )
  gap, measured = sims.laws.context_velocity_gap(scene, frozen, CONTEXT)
  truth_gap, _ = sims.laws.context_velocity_gap(scene, frames, CONTEXT)
  mass = np.asarray(state0.radius) ** 2
  centre_speed = np.linalg.norm(
    (mass[..., None] * np.asarray(state0.velocity)).sum(1) / mass.sum(1)[:, None], axis=-1
  )
  kept = np.asarray(measured) & (centre_speed > 0.5)
  assert kept.sum() >= 4
  assert np.all(np.asarray(gap)[kept] > np.asarray(truth_gap)[kept] + 0.3)


def test_scores_by_name():
  scene, _, frames = _videos("uniform_motion")
  law = physics.make_score(scene, "law", CONTEXT)(frames)
  context = physics.make_score(scene, "context", CONTEXT)(frames)
  finite = np.isfinite(context)
  assert np.all(np.asarray(context)[finite] >= np.asarray(law)[finite])
  with pytest.raises(ValueError, match=r"unknown reward\.kind 'truth'; valid: law, context"):
    physics.make_score(scene, "truth", CONTEXT)
