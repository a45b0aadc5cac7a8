"""Baseline predictors: trivial rows and the law applied to the parsed context."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import sims
from experiments import baselines, velocity_probe

CONTEXT = 3


def law_case(name, n=16, resolution=64, num_frames=16):
  scene = sims.make(name)
  traj = scene.rollout(scene.sample(jax.random.key(3), n, "id"), num_frames)
  truth = jnp.round(sims.render(traj, resolution) * 255.0) / 255.0
  return scene, traj, truth


def test_trivial_baselines_keep_the_context_and_fill_the_future():
  scene, _, truth = law_case("uniform_motion", n=2, resolution=16, num_frames=6)
  copied = baselines.predict("copy_last", scene, truth, CONTEXT)
  blank = baselines.predict("blank", scene, truth, CONTEXT)
  for video in (copied, blank):
    np.testing.assert_array_equal(video[:, :CONTEXT], truth[:, :CONTEXT])
    assert video.shape == truth.shape
  for t in range(CONTEXT, 6):
    np.testing.assert_array_equal(copied[:, t], truth[:, CONTEXT - 1])
  assert float(jnp.min(blank[:, CONTEXT:])) == 1.0  # the white background only


@pytest.mark.parametrize("name", ["uniform_motion", "parabola", "collision"])
def test_extrapolating_the_law_from_true_context_is_within_twice_the_parser_floor(name):
  scene, traj, truth = law_case(name)
  extrapolated = baselines.predict("extrapolate", scene, truth, CONTEXT)
  copied = baselines.predict("copy_last", scene, truth, CONTEXT)
  summary = velocity_probe.summarize(
    scene, velocity_probe.case_errors(scene, traj, truth, extrapolated, CONTEXT, "id")
  )
  assert summary["count"] >= 14  # cases with scored (post-contact) frame pairs
  assert summary["velocity_error"] < 2.0 * summary["floor"], summary
  # a still frame is far off: the parser reads the true speed as its error
  frozen = velocity_probe.summarize(
    scene, velocity_probe.case_errors(scene, traj, truth, copied, CONTEXT, "id")
  )
  assert frozen["velocity_error"] > 0.9, frozen
  future = slice(CONTEXT, None)
  mse = float(jnp.mean((extrapolated[:, future] - truth[:, future]) ** 2))
  assert mse < 0.1 * float(jnp.mean((copied[:, future] - truth[:, future]) ** 2))


def test_extrapolate_needs_a_law_scene_and_names_are_checked():
  phyre = sims.make("phyre", templates="6")
  assert baselines.check(phyre, ["copy_last", "blank"]) == ("copy_last", "blank")
  with pytest.raises(
    ValueError, match=r"unknown baseline for scene 'phyre' 'extrapolate'; valid: copy_last, blank$"
  ):
    baselines.check(phyre, ["extrapolate"])
  with pytest.raises(ValueError, match=r"'copy_first'.*valid: copy_last, blank, extrapolate"):
    baselines.check(sims.make("collision"), ["copy_first"])
