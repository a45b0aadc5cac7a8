"""Physics consistency in training: the law loss, the score, best-of-n and reward fine-tuning."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import runs

import sims
from experiments import physics_probe, train
from experiments.configs import combinatorial
from worldmodel import diffusion, physics

RES, FRAMES = 32, 8


@pytest.fixture(scope="module")
def uniform():
  scene = sims.make("uniform_motion")
  state = scene.sample(jax.random.key(0), 4, "id")
  return scene, state, sims.render(scene.rollout(state, FRAMES), RES)


def accelerating_video(scene, state, acceleration):
  """The scene's video with a constant acceleration added to every ball."""
  traj = scene.rollout(state, FRAMES)
  t = jnp.arange(FRAMES) * sims.FRAME_DT
  shift = 0.5 * jnp.asarray(acceleration) * t[:, None, None] ** 2
  return sims.render(traj.replace(position=traj.position + shift), RES)


def test_law_score_is_low_on_the_simulator_and_high_on_accelerating_balls(uniform):
  scene, state, frames = uniform
  truth = np.asarray(physics.law_score(scene, frames))
  wrong = np.asarray(physics.law_score(scene, accelerating_video(scene, state, [0.0, -8.0])))
  assert np.all(np.isfinite(truth)) and np.all(np.isfinite(wrong))
  # World units off the best-fitting straight line: the parser's jitter against a bent path.
  assert truth.max() < 0.02 and np.all(wrong > truth + 0.03), (truth, wrong)
  blank = np.asarray(physics.law_score(scene, jnp.ones_like(frames)))
  np.testing.assert_array_equal(blank, np.inf)  # no ball: nothing measured
  with pytest.raises(ValueError, match=r"scene for a physics loss or score.*'phyre'"):
    physics.law_score(sims.make("phyre"), frames)


def test_regularizer_weights_videos_by_time_and_has_gradients(uniform):
  scene, state, _ = uniform
  wrong = accelerating_video(scene, state, [6.0, 0.0])
  regularize = physics.law_regularizer(scene, 0.5)
  score = np.asarray(physics.law_score(scene, wrong))
  clean = float(regularize(wrong, jnp.zeros(4)))
  np.testing.assert_allclose(clean, 0.5 * score.mean(), rtol=1e-5)
  half = float(regularize(wrong, jnp.asarray([0.0, 1.0, 0.0, 1.0])))
  np.testing.assert_allclose(half, 0.5 * (score[0] + score[2]) / 4, rtol=1e-5)
  gradient = jax.grad(lambda f: regularize(f, jnp.zeros(4)))(wrong)
  assert np.all(np.isfinite(gradient)) and float(jnp.abs(gradient).max()) > 0
  with pytest.raises(ValueError, match="physics weight must be >= 0"):
    physics.law_regularizer(scene, -1.0)


def test_objective_adds_the_regularizer_of_its_clean_frame_estimate(uniform):
  _, _, frames = uniform
  mask = jnp.zeros((4, FRAMES)).at[:, :3].set(1.0)
  seen = {}

  def regularizer(estimate, time):
    seen["estimate"], seen["time"] = estimate, time
    return jnp.asarray(0.25)

  def oracle(noisy, time, context, context_mask):  # predicts the clean frames exactly
    return 2.0 * frames - 1.0

  objective = diffusion.make_objective("flow", prediction="x")
  base, metrics = objective.loss(oracle, jax.random.key(0), frames, mask)
  total, regularized = objective.loss(oracle, jax.random.key(0), frames, mask, regularizer)
  np.testing.assert_allclose(total, base + 0.25, rtol=1e-6)
  assert float(regularized["regularizer"]) == 0.25 and "regularizer" not in metrics
  np.testing.assert_allclose(seen["estimate"], frames, atol=1e-6)  # context exact, rest exact
  assert seen["time"].shape == (4,)


def test_best_of_n_keeps_the_lowest_score_per_case():
  def sample(key):
    return jax.random.uniform(key, (5, 3))

  def score(frames):
    return jnp.where(frames[:, 0] > 0.9, jnp.inf, frames.sum(-1))

  best, best_score, scores = physics.best_of_n(sample, score, jax.random.key(1), 6)
  assert scores.shape == (6, 5)
  np.testing.assert_allclose(best_score, np.min(scores, axis=0))
  first, rest = jax.random.split(jax.random.key(1))
  draws = jnp.concatenate([sample(first)[None], jax.vmap(sample)(jax.random.split(rest, 5))])
  picked = np.argmin(np.asarray(scores), axis=0)
  np.testing.assert_allclose(best, draws[picked, np.arange(5)])
  with pytest.raises(ValueError, match="n >= 1"):
    physics.best_of_n(sample, score, jax.random.key(1), 0)


@pytest.mark.slow
def test_reward_fine_tuning_starts_from_the_base_run_and_trains_on_its_best_rollouts(tmp_path):
  base_dir = str(tmp_path / "base")
  config = runs.micro_config(num_steps=2)
  config.checkpoint_every_steps = 2
  train.run(config, base_dir)
  _, base_params = train.restore_params(train.make_experiment(config), base_dir)

  tuned = runs.micro_config(num_steps=2)
  tuned.reward.update(init_from=base_dir, samples=2, sample_steps=2)
  experiment = train.make_experiment(tuned)
  tx, schedule = train.make_optimizer(tuned)
  state = train.init_state(experiment, tx, base_params)
  step = jax.jit(train.make_train_step(experiment, tx, schedule, "train"))
  new_state, metrics = step(state, None, jax.random.key(0))
  new_state, metrics = step(new_state, None, jax.random.key(0))  # the first step's rate is 0
  assert {"reward_best", "reward_mean", "reward_scored"} <= set(metrics)
  assert float(metrics["reward_best"]) >= float(metrics["reward_mean"])
  assert 0.0 <= float(metrics["reward_scored"]) <= 1.0
  changed = jax.tree.map(lambda a, b: float(jnp.abs(a - b).max()), new_state["params"], base_params)
  assert max(jax.tree.leaves(changed)) > 0

  tuned.num_steps = 0  # the run's starting point: the base run's EMA parameters, at step 0
  start = train.run(tuned, str(tmp_path / "tuned"))
  assert int(start["step"]) == 0
  jax.tree.map(np.testing.assert_array_equal, start["params"], base_params)
  bad = runs.micro_config()
  bad.reward.update(init_from=base_dir, samples=1)
  with pytest.raises(ValueError, match=r"reward.samples=1 must be >= 2"):
    train.make_experiment(bad)
  bad.reward.update(samples=2, simulator_fraction=1.0)
  with pytest.raises(ValueError, match=r"reward.simulator_fraction=1.0 must be in \[0, 1\)"):
    train.make_experiment(bad)
  bad.reward.update(simulator_fraction=0.5, split="ood_x")
  with pytest.raises(ValueError, match=r"unknown split .* 'ood_x'; valid: train, id"):
    train.make_experiment(bad)


def test_parabola_score_knows_gravity():
  scene = sims.make("parabola")
  state = scene.sample(jax.random.key(2), 4, "id")
  truth = np.asarray(physics.law_score(scene, sims.render(scene.rollout(state, FRAMES), RES)))
  weightless = np.asarray(physics.law_score(scene, accelerating_video(scene, state, [0.0, 2.5])))
  assert truth.max() < 0.02 and np.all(weightless > truth + 0.03), (truth, weightless)


def test_physics_probe_scores_the_truth_as_physical_and_a_frozen_ball_as_not(uniform):
  scene, state, frames = uniform
  traj = scene.rollout(state, FRAMES)
  truth = jnp.round(frames * 255) / 255
  exact = physics_probe.case_scores(scene, traj, truth, truth, 3)
  assert exact["fit_residual"].max() < 1e-3 and exact["fit_velocity_error"].max() < 0.02
  np.testing.assert_array_equal(exact["trajectory"], exact["trajectory_floor"])
  frozen = truth.at[:, 3:].set(truth[:, 2:3])  # the ball stops after the context
  stopped = physics_probe.case_scores(scene, traj, truth, frozen, 3)
  assert np.all(stopped["fit_residual"] > 10 * exact["fit_residual"].max())
  assert np.all(stopped["trajectory"] > stopped["trajectory_floor"] + 0.02)
  summary = physics_probe.summarize({"x": np.asarray([1.0, np.nan, 3.0]), "y": np.full(2, np.nan)})
  assert summary["x"] == 2.0 and np.isnan(summary["y"])
  assert np.isnan(exact["follows_guide"]).all()  # ID speeds: guide and training agree


def test_guide_following_tells_the_law_from_the_nearest_training_speed():
  scene = sims.make("uniform_motion")
  state = scene.sample(jax.random.key(3), 4, "ood_v")
  truth = jnp.round(sims.render(scene.rollout(state, FRAMES), RES) * 255) / 255
  assert physics_probe.guide_following(scene, truth, truth, 3).tolist() == [1.0] * 4
  # The same context, then the ball at its nearest training speed from the first generated
  # frame on: pulled to the training range, not following the guide.
  speed = jnp.linalg.norm(state.velocity, axis=-1, keepdims=True)
  pulled_velocity = state.velocity * jnp.clip(speed, 1.0, 4.0) / speed  # the training range
  start = state.position + 2 * sims.FRAME_DT * (state.velocity - pulled_velocity)
  pulled = scene.rollout(state.replace(position=start, velocity=pulled_velocity), FRAMES)
  rendered = jnp.round(sims.render(pulled, RES) * 255) / 255
  assert (
    physics_probe.guide_following(scene, truth, truth.at[:, 3:].set(rendered[:, 3:]), 3).tolist()
    == [0.0] * 4
  )


@pytest.mark.slow
def test_guide_following_counts_the_out_of_range_balls_of_a_collision():
  scene = sims.make("collision")
  state = scene.sample(jax.random.key(3), 4, "ood_v1")
  truth = jnp.round(sims.render(scene.rollout(state, FRAMES), RES) * 255) / 255
  follows = physics_probe.guide_following(scene, truth, truth, 3)
  speeds = np.linalg.norm(np.asarray(state.velocity), axis=-1)
  counted = np.any((speeds < 0.75) | (speeds > 4.25), axis=-1)  # the margin out of range
  np.testing.assert_array_equal(np.isnan(follows), ~counted)
  assert counted.sum() >= 2 and np.all(follows[counted] == 1.0), (speeds, follows)


def test_best_of_settings_are_checked_up_front():
  bad = runs.micro_config()
  bad.eval.best_of = 0
  with pytest.raises(ValueError, match=r"eval.best_of=0 must be >= 1"):
    train.make_experiment(bad)
  phyre_run = combinatorial.get_config("templates=6,size=micro,resolution=32,frames=4")
  phyre_run.eval.best_of = 2
  with pytest.raises(ValueError, match=r"scene for a physics loss or score.*'phyre'"):
    train.make_experiment(phyre_run)
