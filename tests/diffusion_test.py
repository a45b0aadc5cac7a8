"""Tests for the diffusion objectives: schedules, oracle losses and samplers, and training."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
from absl.testing import absltest, parameterized
from flax import nnx

from worldmodel import diffusion, dit

OBJECTIVES = {
  "flow_velocity": dict(name="flow"),
  "flow_x_shifted": dict(name="flow", prediction="x", time_shift=3.0),
  "flow_logit_normal": dict(name="flow", time_sampling="logit_normal"),
  "flow_residual": dict(name="flow", prediction="residual"),
  "ddpm_v_linear": dict(name="ddpm_v"),
  "ddpm_v_cosine": dict(name="ddpm_v", beta_schedule="cosine", num_train_steps=500),
}
CONTEXT_MASK = np.array([[1, 1, 0, 0], [1, 0, 0, 0], [0, 0, 0, 0]], np.float32)


def _frames(seed: int = 0) -> np.ndarray:
  """[3, 4, 6, 6, 3] videos in [0, 1]."""
  return np.random.default_rng(seed).uniform(size=(3, 4, 6, 6, 3)).astype(np.float32)


def _per_example(values):
  return values[:, None, None, None, None]


def _oracle(objective: diffusion.Objective, frames):
  """apply_fn returning the exact target for the current noisy input, knowing the clean frames."""
  x = 2.0 * frames - 1.0

  def apply_fn(noisy, time, context, context_mask):
    if isinstance(objective, diffusion.RectifiedFlow):
      if objective.prediction == "x":
        return jnp.broadcast_to(x, noisy.shape)
      if objective.prediction == "residual":
        return x - diffusion.held_context(context, context_mask)
      return (noisy - x) / _per_example(time)  # noise - x, with noise = (noisy - (1 - t) x) / t
    steps = jnp.round(time * objective.num_train_steps).astype(jnp.int32)
    alpha_bar = _per_example(objective.alpha_bar[steps])
    eps = (noisy - jnp.sqrt(alpha_bar) * x) / jnp.sqrt(1.0 - alpha_bar)
    return jnp.sqrt(alpha_bar) * eps - jnp.sqrt(1.0 - alpha_bar) * x

  return apply_fn


class ScheduleTest(parameterized.TestCase):
  @parameterized.parameters(("linear", 1000, 1.0 - 1e-4), ("cosine", 200, None))
  def test_zero_terminal_snr(self, beta_schedule, num_steps, first_alpha):
    alpha_bar = diffusion.zero_terminal_snr_alpha_bar(num_steps, beta_schedule)
    self.assertEqual(alpha_bar.shape, (num_steps + 1,))
    self.assertEqual(alpha_bar[0], 1.0)
    self.assertEqual(alpha_bar[-1], 0.0)
    self.assertTrue(np.all(np.diff(alpha_bar) < 0))
    if first_alpha is not None:  # The first step keeps its original noise level.
      self.assertAlmostEqual(alpha_bar[1], first_alpha, places=12)
    objective = diffusion.make_objective(
      "ddpm_v", beta_schedule=beta_schedule, num_train_steps=num_steps
    )
    self.assertEqual(float(objective.alpha_bar[-1]), 0.0)

  def test_time_shift(self):
    objective = diffusion.make_objective("flow", time_shift=3.0)
    np.testing.assert_allclose(objective.shift(jnp.array([0.0, 0.5, 1.0])), [0.0, 0.75, 1.0])


class LossTest(parameterized.TestCase):
  @parameterized.named_parameters(*((name, options) for name, options in OBJECTIVES.items()))
  def test_oracle_loss_is_zero_and_errors_are_measured(self, options):
    objective = diffusion.make_objective(**options)
    frames, key = _frames(), jax.random.key(0)
    oracle = _oracle(objective, frames)
    loss, metrics = objective.loss(oracle, key, frames, CONTEXT_MASK)
    self.assertLess(float(loss), 1e-8)
    self.assertLess(float(metrics["x0_mse"]), 1e-8)

    # An error of 1 on every predicted element gives a loss of exactly 1, whatever the context.
    def off_by_one(*inputs):
      return oracle(*inputs) + 1.0

    self.assertAlmostEqual(float(objective.loss(off_by_one, key, frames, CONTEXT_MASK)[0]), 1.0, 4)
    zero_loss, _ = objective.loss(
      lambda noisy, *_: jnp.zeros_like(noisy), key, frames, CONTEXT_MASK
    )
    self.assertGreater(float(zero_loss), 0.1)

  @parameterized.named_parameters(("flow", "flow"), ("ddpm_v", "ddpm_v"))
  def test_context_frames_do_not_affect_loss(self, name):
    objective = diffusion.make_objective(name)
    frames, key = _frames(), jax.random.key(1)
    context = CONTEXT_MASK.astype(bool)[:, :, None, None, None]

    def model(noisy, *_):
      return 0.3 * noisy

    def model_wrong_on_context(noisy, *_):
      return jnp.where(context, 1e3, 0.3 * noisy)

    loss, _ = objective.loss(model, key, frames, CONTEXT_MASK)
    self.assertEqual(
      float(objective.loss(model_wrong_on_context, key, frames, CONTEXT_MASK)[0]), loss
    )

  @parameterized.named_parameters(("flow", "flow"), ("ddpm_v", "ddpm_v"))
  def test_model_inputs(self, name):
    objective = diffusion.make_objective(name)
    frames = _frames()
    seen = {}

    def recorder(noisy, time, context, context_mask):
      seen.update(noisy=noisy, time=time, context=context, context_mask=context_mask)
      return jnp.zeros_like(noisy)

    objective.loss(recorder, jax.random.key(0), frames, CONTEXT_MASK)
    x = 2.0 * frames - 1.0
    context = CONTEXT_MASK.astype(bool)
    np.testing.assert_array_equal(seen["context"], np.where(context[..., None, None, None], x, 0))
    noise = np.asarray(seen["noisy"]) - x
    np.testing.assert_array_equal(noise[context], 0.0)  # Context frames are clean.
    self.assertGreater(float(np.abs(noise[~context]).min()), 0.0)
    self.assertEqual(seen["time"].shape, (3,))
    self.assertTrue(np.all((seen["time"] >= 0.0) & (seen["time"] <= 1.0)))

  def test_unknown_names(self):
    with self.assertRaisesRegex(ValueError, "unknown objective 'edm'; valid: flow, ddpm_v"):
      diffusion.make_objective("edm")
    with self.assertRaisesRegex(
      ValueError, "unknown prediction 'eps'; valid: velocity, x, residual"
    ):
      diffusion.make_objective("flow", prediction="eps")
    with self.assertRaisesRegex(ValueError, "unknown beta_schedule 'sqrt'; valid: linear, cosine"):
      diffusion.make_objective("ddpm_v", beta_schedule="sqrt")


class HeldContextTest(absltest.TestCase):
  def test_holds_the_last_context_frame_forward(self):
    frames = np.arange(2 * 5, dtype=np.float32).reshape(2, 5, 1) + 1.0
    context_mask = np.array([[0, 1, 0, 1, 0], [0, 0, 0, 0, 0]], np.float32)
    held = np.asarray(diffusion.held_context(frames, context_mask))[..., 0]
    np.testing.assert_array_equal(held[0], [2, 2, 2, 4, 4])  # frames 1 and 3 are the context
    np.testing.assert_array_equal(held[1], 0)  # no context: zero, never a non-context frame

  def test_a_zero_residual_samples_copy_last(self):
    objective = diffusion.make_objective("flow", prediction="residual")
    frames = _frames()
    out = np.asarray(
      objective.sample(
        lambda noisy, *_: jnp.zeros_like(noisy), jax.random.key(0), frames, CONTEXT_MASK, 4
      )
    )
    held = (frames[0, 1], frames[1, 0])  # each example's last context frame
    np.testing.assert_allclose(out[0, 2:], np.broadcast_to(held[0], out[0, 2:].shape), atol=1e-6)
    np.testing.assert_allclose(out[1, 1:], np.broadcast_to(held[1], out[1, 1:].shape), atol=1e-6)
    np.testing.assert_allclose(out[2], 0.5, atol=1e-6)  # no context: data-space zero


class SampleTest(parameterized.TestCase):
  @parameterized.named_parameters(
    *((name, options) for name, options in OBJECTIVES.items() if name != "flow_logit_normal")
  )
  def test_oracle_sample_reproduces_target(self, options):
    objective = diffusion.make_objective(**options)
    frames = _frames()
    # Non-context entries of the given frames must not show up in the output.
    given = np.where(CONTEXT_MASK.astype(bool)[:, :, None, None, None], frames, 0.5)
    sample = jax.jit(objective.sample, static_argnums=(0, 4))
    out = sample(_oracle(objective, frames), jax.random.key(0), given, CONTEXT_MASK, 8)
    self.assertEqual(out.shape, frames.shape)
    np.testing.assert_allclose(out, frames, atol=1e-4)

  @parameterized.named_parameters(("flow", "flow"), ("ddpm_v", "ddpm_v"))
  def test_context_frames_are_kept_exactly(self, name):
    objective = diffusion.make_objective(name)
    frames = _frames()

    def model(noisy, *_):
      return 0.5 * noisy + 0.1

    out = np.asarray(objective.sample(model, jax.random.key(0), frames, CONTEXT_MASK, 4))
    context = CONTEXT_MASK.astype(bool)
    np.testing.assert_array_equal(out[context], frames[context])
    self.assertGreater(float(np.abs(out[~context] - frames[~context]).min()), 0.0)
    self.assertTrue(np.all((out >= 0.0) & (out <= 1.0)))


class TrainTest(absltest.TestCase):
  def test_train_step_reduces_loss(self):
    model = dit.make_dit(
      "micro", num_frames=4, resolution=8, patch_size=(1, 2, 2), rngs=nnx.Rngs(0)
    )
    objective = diffusion.make_objective("flow")
    optimizer = optax.adamw(3e-3)
    graphdef, params = nnx.split(model)
    opt_state = optimizer.init(params)
    frames = np.random.default_rng(0).uniform(size=(2, 4, 8, 8, 3)).astype(np.float32)
    context_mask = np.array([[1, 0, 0, 0], [1, 1, 0, 0]], np.float32)

    @functools.partial(jax.jit, donate_argnums=(0, 1))
    def train_step(params, opt_state, key):
      def loss_fn(params):
        return objective.loss(nnx.merge(graphdef, params), key, frames, context_mask)[0]

      loss, grads = jax.value_and_grad(loss_fn)(params)
      updates, opt_state = optimizer.update(grads, opt_state, params)
      return optax.apply_updates(params, updates), opt_state, loss

    key = jax.random.key(0)
    losses = []
    for _ in range(30):
      params, opt_state, loss = train_step(params, opt_state, key)
      losses.append(float(loss))
    self.assertLess(losses[-1], 0.5 * losses[0])


if __name__ == "__main__":
  absltest.main()
