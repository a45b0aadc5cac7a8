"""Tests for simulator-grounded guides: built from context frames only, exact on true videos,
warped noise that stays Gaussian and moves with the objects, and guided training steps."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import sims
from experiments import train
from experiments.configs import grounded
from tests import runs
from worldmodel import dit, guides

RESOLUTION, FRAMES, CONTEXT = 32, 8, 3


@pytest.fixture(scope="module")
def truth():
  """Four ID uniform-motion videos [4, 8, 32, 32, 3] and their true initial states."""
  scene = sims.make("uniform_motion")
  state0 = scene.sample(jax.random.key(0), 4, split="id")
  frames = sims.render(scene.rollout(state0, FRAMES), RESOLUTION)
  return scene, state0, np.asarray(frames)


@pytest.mark.parametrize("kind", ["render", "flow_noise", "state"])
def test_the_guide_reads_only_the_context_frames(truth, kind):
  scene, _, frames = truth
  guide = guides.Guide(kind, scene, CONTEXT)
  changed = frames.copy()
  changed[:, CONTEXT:] = np.random.default_rng(0).uniform(size=changed[:, CONTEXT:].shape)
  key = jax.random.key(1)
  built, built_changed = guide.build(frames, key), guide.build(changed, key)
  for field in ("channels", "state", "noise"):
    a, b = getattr(built, field), getattr(built_changed, field)
    assert (a is None) == (b is None) == (field != guides_field(kind))
    if a is not None:
      np.testing.assert_array_equal(a, b)
  # ...and the context frames do matter.
  other = guide.build(frames[::-1], key)
  assert not np.array_equal(getattr(other, guides_field(kind)), getattr(built, guides_field(kind)))


def guides_field(kind: str) -> str:
  return {"render": "channels", "flow_noise": "noise", "state": "state"}[kind]


def test_a_guide_from_true_context_frames_is_the_true_future(truth):
  scene, state0, frames = truth
  full = guides.Guide("render", scene, CONTEXT, render="full").build(frames, jax.random.key(0))
  # The fit recovers the state to ~1e-4 world units, so the rendering is the truth's.
  assert float(np.abs(np.asarray(full.channels) - frames).max()) < 0.02
  masks = np.asarray(guides.Guide("render", scene, CONTEXT).build(frames, None).channels)
  assert masks.shape == (*frames.shape[:4], 1)
  coverage = 1.0 - frames.min(axis=-1)  # a red ball on white: (1, 1 - c, 1 - c)
  assert float(np.abs(masks[..., 0] - coverage).max()) < 0.02
  state = np.asarray(guides.Guide("state", scene, CONTEXT).build(frames, None).state)
  np.testing.assert_allclose(state, guides.state_features(state0), atol=1e-3)
  assert state.shape == (4, guides.FEATURES_PER_BALL)


def test_a_training_guide_from_the_true_state_carries_the_measured_fit_error(truth):
  scene, state0, frames = truth
  guide = guides.Guide("state", scene, CONTEXT)
  error = guides.measure_fit_error(guide, jax.random.key(2), FRAMES, RESOLUTION, num_videos=32)
  # The fit on 3 clean 32 px frames: far below a pixel (0.31 world units) and its speed.
  assert 0 < error.position < 0.05 and 0 < error.velocity < 0.3 and 0 < error.radius < 0.05
  exact = dataclasses.replace(guide, fit_error=guides.FitError(0.0, 0.0, 0.0))
  built = exact.build(frames, jax.random.key(0), true_state=state0)
  np.testing.assert_allclose(built.state, guides.state_features(state0), atol=1e-6)
  noisy = dataclasses.replace(guide, fit_error=guides.FitError(0.0, 1.0, 0.0))
  features = np.asarray(noisy.build(frames, jax.random.key(0), true_state=state0).state)
  off = (features - np.asarray(guides.state_features(state0))) * guides.SPEED_SCALE
  np.testing.assert_allclose(off[:, [0, 1, 4]], 0.0, atol=1e-6)  # only the velocity moves
  assert 0.3 < np.abs(off[:, 2:4]).mean() < 1.5  # E|N(0, 1)| = 0.8
  with pytest.raises(ValueError, match=r"needs the fit's error"):
    guide.build(frames, jax.random.key(0), true_state=state0)


@pytest.mark.slow
def test_training_guides_from_truth_are_checked_and_follow_the_training_states():
  config = grounded.get_config("guide=render,train_from=truth")
  config.data.cache = 64
  with pytest.raises(ValueError, match=r"guide.train_from='truth' needs the simulator's own"):
    train.make_experiment(config)
  config.data.cache = 0
  config.guide.train_from = "oracle"
  with pytest.raises(ValueError, match=r"unknown guide.train_from 'oracle'; valid: fit, truth"):
    train.make_experiment(config)
  config.guide.train_from = "truth"
  experiment = train.make_experiment(config)
  assert experiment.guide.fit_error.position < 0.05
  key = jax.random.key(4)
  frames = experiment.video_batch("train", key)
  guide = experiment.training_guide("train", None, frames, key, jax.random.key(5))
  coverage = 1.0 - np.asarray(frames).min(axis=-1)  # the true videos' balls, drawn in black
  assert np.abs(np.asarray(guide.channels)[..., 0] - coverage).mean() < 0.01


def test_warped_noise_is_standard_normal_per_pixel():
  flow = np.zeros((2000, 3, 6, 6, 2), np.float32)
  flow[:, :, 1:4, 1:4] = (1.0, 0.0)  # a 3 x 3 block moving right one pixel per frame
  noise = np.asarray(guides.warp_noise(jax.random.key(0), jnp.asarray(flow), 1))[..., 0]
  assert noise.shape == (2000, 4, 6, 6)
  per_pixel_mean, per_pixel_std = noise.mean(axis=0), noise.std(axis=0)
  assert np.abs(per_pixel_mean).max() < 0.12  # 4.5 standard errors of 2000 draws
  assert np.abs(per_pixel_std - 1.0).max() < 0.1


def test_warped_noise_moves_with_the_objects_and_keeps_the_background():
  flow = np.zeros((1, 2, 8, 8, 2), np.float32)
  flow[:, 0, 2:4, 2:4] = (2.0, 1.0)  # a 2 x 2 object moves 2 right and 1 down
  noise = np.asarray(guides.warp_noise(jax.random.key(3), jnp.asarray(flow), 3))[0]
  np.testing.assert_array_equal(noise[1, 3:5, 4:6], noise[0, 2:4, 2:4])  # carried along
  background = np.ones((8, 8), bool)
  background[2:4, 2:4] = background[3:5, 4:6] = False
  np.testing.assert_array_equal(noise[1][background], noise[0][background])  # kept
  uncovered = noise[1, 2, 2:4]  # pixels the object left: fresh noise
  assert not np.any(np.isin(uncovered, noise[0]))
  np.testing.assert_array_equal(noise[2], noise[1])  # nothing moves in the second step


def test_bad_guide_settings_are_one_line_errors(truth):
  scene = truth[0]
  with pytest.raises(ValueError, match=r"unknown guide\.kind 'sketch'; valid: none, render"):
    guides.Guide("sketch", scene, CONTEXT)
  with pytest.raises(ValueError, match=r"unknown guide\.render 'depth'; valid: masks, full"):
    guides.Guide("render", scene, CONTEXT, render="depth")
  with pytest.raises(ValueError, match="scene for a guide 'phyre'"):
    guides.Guide("render", sims.make("phyre", templates="6"), CONTEXT)
  guides.Guide("none", sims.make("phyre", templates="6"), CONTEXT)  # no guide: any scene


def test_a_dit_with_a_guide_needs_it_and_starts_unaffected_by_the_state():
  shape = (2, 4, 8, 8, 3)
  inputs = (jnp.zeros(shape), jnp.full((2,), 0.5), jnp.ones(shape), jnp.ones((2, 4)))
  model = dit.VideoDiT(
    **dit.SIZES["micro"], num_frames=4, resolution=8, guide_channels=1, rngs=nnx.Rngs(0)
  )
  with pytest.raises(ValueError, match="needs a guide of 1 channels"):
    model(*inputs)
  assert model(*inputs, guide=jnp.ones((*shape[:4], 1))).shape == shape
  stateful = dit.VideoDiT(
    **dit.SIZES["micro"], num_frames=4, resolution=8, state_features=5, rngs=nnx.Rngs(0)
  )
  with pytest.raises(ValueError, match="needs a state of 5 features"):
    stateful(*inputs)
  embedded = stateful.state_embed(jnp.ones((2, 5)))
  np.testing.assert_array_equal(embedded, 0.0)  # zero-initialised: a fresh model ignores it


@pytest.mark.parametrize(
  "flags",
  [  # ~15-20 s each on 2 cores: one by default, the others with the slow tests
    ("render", "masks", 1, 0),
    pytest.param(("render", "full", 3, 0), marks=pytest.mark.slow),
    pytest.param(("flow_noise", "masks", 0, 0), marks=pytest.mark.slow),
    pytest.param(("state", "masks", 0, guides.FEATURES_PER_BALL), marks=pytest.mark.slow),
  ],
)
def test_guided_training_steps_run_and_learn(flags):
  kind, render, channels, features = flags
  config = runs.micro_config(warmup_steps=5)
  config.guide.update(kind=kind, render=render, fit_steps=2)
  experiment = train.make_experiment(config)
  model = train.build_model(config, 0, experiment.scene)
  assert (model.config.guide_channels, model.config.state_features) == (channels, features)
  losses = runs.losses_on_mesh(config, experiment.mesh, steps=8)
  assert all(np.isfinite(losses))
  assert np.mean(losses[-3:]) < losses[0]


@pytest.mark.parametrize(
  "arg, kind, render, task",
  [
    ("guide=render,render=full,task=collision", "render", "full", "collision"),
    ("guide=state,size=study", "state", "masks", "uniform_motion"),
  ],
)
def test_the_grounded_config_sets_the_guide(arg, kind, render, task):
  config = grounded.get_config(arg)
  assert (config.guide.kind, config.guide.render, config.task) == (kind, render, task)
  assert config.eval.probes == ("physics_iq",)
  with pytest.raises(ValueError, match="unknown guide 'sketch'; valid: none, render"):
    grounded.get_config("guide=sketch")


def test_the_grounded_config_fine_tunes_on_ood_speed_contexts_by_the_chosen_reward():
  config = grounded.get_config("reward_from=/tmp/base,reward=law,task=collision")
  assert (config.reward.init_from, config.reward.kind) == ("/tmp/base", "law")
  assert (config.reward.split, config.num_steps) == ("ood_v1", 150)
  assert grounded.get_config("").reward.init_from == ""
  with pytest.raises(ValueError, match="unknown reward 'pixels'; valid: law, context"):
    grounded.get_config("reward=pixels")
