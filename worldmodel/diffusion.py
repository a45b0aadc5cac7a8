"""Diffusion objectives for frame prediction: training losses and samplers (pure, jit-friendly).

An objective trains and samples a network `apply_fn(noisy, time, context, context_mask)` on
videos [B, T, H, W, C] in [0, 1] with a [B, T] context mask (1 = context frame). Inside an
objective, frames are mapped to [-1, 1] ("data space"); the model's noisy input, context and
output all live there, and `sample` maps its result back to [0, 1].

Context frames are never noised: the noisy input carries the clean frames at context
positions, they are excluded from the loss, and samplers hold them fixed at every step.
The flow objective's "residual" prediction learns each frame's change from the last context
frame held forward (`held_context`), so that a network that outputs zero predicts "nothing
moves" (the copy_last baseline) and learning is spent on what moves.
"""

from __future__ import annotations

import abc
import dataclasses
import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from sims import check_choice

ApplyFn = Callable[[jax.Array, jax.Array, jax.Array, jax.Array], jax.Array]
Metrics = dict[str, jax.Array]
# A loss on the network's clean-frame estimate: (frames [B, T, H, W, C] in [0, 1], the context
# frames exact, diffusion time [B] with 1 = pure noise) -> scalar.
Regularizer = Callable[[jax.Array, jax.Array], jax.Array]

OBJECTIVES = ("flow", "ddpm_v")
FLOW_PREDICTIONS = ("velocity", "x", "residual")
TIME_SAMPLINGS = ("uniform", "logit_normal")
BETA_SCHEDULES = ("linear", "cosine")


def _to_data_space(frames: jax.Array) -> jax.Array:
  return 2.0 * jnp.asarray(frames, jnp.float32) - 1.0


def _frame_mask(context_mask: jax.Array) -> jax.Array:
  """[B, T] context mask -> boolean [B, T, 1, 1, 1], broadcastable against videos."""
  return jnp.asarray(context_mask).astype(bool)[:, :, None, None, None]


def _per_example(values: jax.Array) -> jax.Array:
  """[B] -> [B, 1, 1, 1, 1], broadcastable against videos."""
  return values[:, None, None, None, None]


def held_context(frames: jax.Array, context_mask: jax.Array) -> jax.Array:
  """At every frame, the last context frame at or before it (the first context frame before any).

  frames: [B, T, ...], read only at context frames; context_mask: [B, T]. Returns [B, T, ...],
  zero for an example without context frames.
  """
  is_context = jnp.asarray(context_mask).astype(bool)
  per_frame = (1,) * (frames.ndim - 2)
  frames = jnp.where(is_context.reshape(is_context.shape + per_frame), frames, 0.0)
  times = jnp.arange(is_context.shape[1])
  last = jax.lax.cummax(jnp.where(is_context, times, -1), axis=1)
  source = jnp.where(last < 0, jnp.argmax(is_context, axis=1)[:, None], last)
  return jnp.take_along_axis(frames, source.reshape(source.shape + per_frame), axis=1)


def masked_mse(prediction: jax.Array, target: jax.Array, context_mask: jax.Array) -> jax.Array:
  """Mean squared error over the elements of non-context frames only.

  Context frames get weight exactly 0 (whatever the prediction there); the sum is normalised by
  the number of predicted elements.
  """
  predicted = ~_frame_mask(context_mask)
  squared = jnp.where(predicted, jnp.square(prediction - target), 0.0)
  # Count predicted frames on the small [B, T] mask, times the elements per frame (counting on
  # the broadcast video-sized mask makes XLA constant-fold a huge reduction at compile time).
  elements_per_frame = math.prod(prediction.shape[2:])
  count = jnp.sum(~jnp.asarray(context_mask).astype(bool)) * elements_per_frame
  return squared.sum() / jnp.maximum(count, 1)


def _regularize(
  loss: jax.Array,
  metrics: Metrics,
  regularizer: Regularizer | None,
  x0_estimate: jax.Array,
  x: jax.Array,
  context: jax.Array,
  time: jax.Array,
) -> tuple[jax.Array, Metrics]:
  """Adds `regularizer` of the clean-frame estimate (context frames exact) to the loss."""
  if regularizer is None:
    return loss, metrics
  estimate = (jnp.where(context, x, x0_estimate) + 1.0) / 2.0
  penalty = regularizer(estimate, time)
  return loss + penalty, {**metrics, "regularizer": penalty}


def _noise(given: jax.Array | None, key: jax.Array, shape: tuple[int, ...]) -> jax.Array:
  """`given` noise (checked against `shape`), or standard normal noise drawn from `key`."""
  if given is None:
    return jax.random.normal(key, shape)
  if given.shape != shape:
    raise ValueError(f"noise has shape {given.shape}; the frames have {shape}")
  return jnp.asarray(given, jnp.float32)


def _finish_sample(x: jax.Array, context_frames: jax.Array, context: jax.Array) -> jax.Array:
  """Maps a data-space sample to [0, 1], with the given context frames copied exactly."""
  generated = jnp.clip((x + 1.0) / 2.0, 0.0, 1.0)
  return jnp.where(context, jnp.asarray(context_frames, jnp.float32), generated)


class Objective(abc.ABC):
  """A diffusion objective: a training loss and a matching sampler."""

  @abc.abstractmethod
  def loss(
    self,
    apply_fn: ApplyFn,
    key: jax.Array,
    frames: jax.Array,
    context_mask: jax.Array,
    regularizer: Regularizer | None = None,
    noise: jax.Array | None = None,
  ) -> tuple[jax.Array, Metrics]:
    """Scalar loss and aux metrics for frames [B, T, H, W, C] in [0, 1].

    The loss is the MSE of the network output against the objective's target over non-context
    frames, plus `regularizer` (e.g. a physics loss) of the implied clean-frame estimate.
    Metrics: "x0_mse", the same masked MSE of that estimate, and "regularizer" when given.
    `noise` (standard normal, the frames' shape) replaces the noise drawn from `key` (a guide's
    warped noise).
    """

  @abc.abstractmethod
  def sample(
    self,
    apply_fn: ApplyFn,
    key: jax.Array,
    context_frames: jax.Array,
    context_mask: jax.Array,
    num_steps: int,
    noise: jax.Array | None = None,
  ) -> jax.Array:
    """Generates the non-context frames in `num_steps` (static) network calls.

    context_frames: [B, T, H, W, C] in [0, 1], read only where context_mask [B, T] is set.
    Returns frames [B, T, H, W, C] in [0, 1] that equal context_frames on context frames.
    `noise` replaces the initial noise drawn from `key`.
    """


@dataclasses.dataclass(frozen=True)
class RectifiedFlow(Objective):
  """Rectified flow: x_t = (1 - t) x + t noise, t in [0, 1], t = 1 being pure noise.

  prediction: "velocity" (target noise - x), "x" (the network predicts the clean x) or
    "residual" (it predicts x minus the held last context frame: a zero output is copy_last).
  time_sampling: training times "uniform" or "logit_normal" (sigmoid of a standard normal).
  time_shift: s in t' = s t / (1 + (s - 1) t), applied to training and sampling times (s > 1
    spends more time at high noise, as for higher resolutions).
  """

  prediction: str = "velocity"
  time_sampling: str = "uniform"
  time_shift: float = 1.0

  def __post_init__(self):
    check_choice("prediction", self.prediction, FLOW_PREDICTIONS)
    check_choice("time_sampling", self.time_sampling, TIME_SAMPLINGS)
    if self.time_shift <= 0:
      raise ValueError(f"time_shift must be positive, got {self.time_shift}")

  def shift(self, t: jax.Array) -> jax.Array:
    """Resolution time shift s t / (1 + (s - 1) t)."""
    return self.time_shift * t / (1.0 + (self.time_shift - 1.0) * t)

  def loss(
    self,
    apply_fn: ApplyFn,
    key: jax.Array,
    frames: jax.Array,
    context_mask: jax.Array,
    regularizer: Regularizer | None = None,
    noise: jax.Array | None = None,
  ) -> tuple[jax.Array, Metrics]:
    x = _to_data_space(frames)
    context = _frame_mask(context_mask)
    time_key, noise_key = jax.random.split(key)
    if self.time_sampling == "uniform":
      t = jax.random.uniform(time_key, x.shape[:1])
    else:
      t = jax.nn.sigmoid(jax.random.normal(time_key, x.shape[:1]))
    t = self.shift(t)
    noise = _noise(noise, noise_key, x.shape)
    noisy = jnp.where(context, x, (1.0 - _per_example(t)) * x + _per_example(t) * noise)
    output = apply_fn(noisy, t, jnp.where(context, x, 0.0), context_mask)
    if self.prediction == "velocity":
      target, x0_estimate = noise - x, noisy - _per_example(t) * output
    elif self.prediction == "x":
      target, x0_estimate = x, output
    else:
      held = held_context(x, context_mask)
      target, x0_estimate = x - held, held + output
    loss = masked_mse(output, target, context_mask)
    metrics = {"x0_mse": masked_mse(x0_estimate, x, context_mask)}
    return _regularize(loss, metrics, regularizer, x0_estimate, x, context, t)

  def sample(
    self,
    apply_fn: ApplyFn,
    key: jax.Array,
    context_frames: jax.Array,
    context_mask: jax.Array,
    num_steps: int,
    noise: jax.Array | None = None,
  ) -> jax.Array:
    """Euler integration from t = 1 to t = 0 over `num_steps` uniform (then shifted) steps."""
    if num_steps < 1:
      raise ValueError(f"num_steps must be >= 1, got {num_steps}")
    x_context = _to_data_space(context_frames)
    context = _frame_mask(context_mask)
    clean_context = jnp.where(context, x_context, 0.0)
    held = held_context(x_context, context_mask) if self.prediction == "residual" else 0.0
    times = self.shift(jnp.linspace(1.0, 0.0, num_steps + 1))
    batch = x_context.shape[0]

    def step(i, x):
      t, t_next = times[i], times[i + 1]
      output = apply_fn(x, jnp.full((batch,), t), clean_context, context_mask)
      if self.prediction == "velocity":
        x = x + (t_next - t) * output
      else:  # Same Euler step, written stably: the velocity is (x - x0) / t.
        x0_estimate = held + output
        x = x0_estimate + (t_next / t) * (x - x0_estimate)
      return jnp.where(context, x_context, x)

    noise = _noise(noise, key, x_context.shape)
    x = jax.lax.fori_loop(0, num_steps, step, jnp.where(context, x_context, noise))
    return _finish_sample(x, context_frames, context)


def zero_terminal_snr_alpha_bar(num_steps: int = 1000, beta_schedule: str = "linear") -> np.ndarray:
  """Cumulative signal level alpha_bar[s] for steps s = 0..num_steps (float64).

  alpha_bar[0] = 1 (clean data). The betas of steps 1..num_steps follow the DDPM "linear"
  schedule (1e-4 to 0.02) or the "cosine" one (Nichol & Dhariwal 2021); sqrt(alpha_bar) is then
  shifted and rescaled so that its first value is kept and its last is exactly 0 (zero terminal
  SNR, Lin et al. 2024).
  """
  check_choice("beta_schedule", beta_schedule, BETA_SCHEDULES)
  if beta_schedule == "linear":
    betas = np.linspace(1e-4, 0.02, num_steps, dtype=np.float64)
  else:
    s = 0.008
    f = np.cos((np.arange(num_steps + 1) / num_steps + s) / (1 + s) * np.pi / 2) ** 2
    betas = np.clip(1.0 - f[1:] / f[:-1], 0.0, 0.999)
  sqrt_alpha_bar = np.sqrt(np.cumprod(1.0 - betas))
  first, last = sqrt_alpha_bar[0], sqrt_alpha_bar[-1]
  sqrt_alpha_bar = (sqrt_alpha_bar - last) * first / (first - last)
  return np.concatenate([[1.0], sqrt_alpha_bar**2])


@dataclasses.dataclass(frozen=True)
class VPredictionDDPM(Objective):
  """Gaussian DDPM with v-prediction and a zero-terminal-SNR schedule.

  Discrete steps s = 1..num_train_steps: x_s = sqrt(ab) x + sqrt(1 - ab) eps with
  ab = alpha_bar[s], target v = sqrt(ab) eps - sqrt(1 - ab) x. The network receives
  time = s / num_train_steps in (0, 1]; the last step is pure noise.
  """

  num_train_steps: int = 1000
  beta_schedule: str = "linear"

  def __post_init__(self):
    check_choice("beta_schedule", self.beta_schedule, BETA_SCHEDULES)
    if self.num_train_steps < 1:
      raise ValueError(f"num_train_steps must be >= 1, got {self.num_train_steps}")

  @property
  def alpha_bar(self) -> jax.Array:
    """float32 alpha_bar[s] for s = 0..num_train_steps (see `zero_terminal_snr_alpha_bar`)."""
    schedule = zero_terminal_snr_alpha_bar(self.num_train_steps, self.beta_schedule)
    return jnp.asarray(schedule, jnp.float32)

  def loss(
    self,
    apply_fn: ApplyFn,
    key: jax.Array,
    frames: jax.Array,
    context_mask: jax.Array,
    regularizer: Regularizer | None = None,
    noise: jax.Array | None = None,
  ) -> tuple[jax.Array, Metrics]:
    x = _to_data_space(frames)
    context = _frame_mask(context_mask)
    step_key, noise_key = jax.random.split(key)
    steps = jax.random.randint(step_key, x.shape[:1], 1, self.num_train_steps + 1)
    alpha_bar = self.alpha_bar[steps]
    signal, sigma = _per_example(jnp.sqrt(alpha_bar)), _per_example(jnp.sqrt(1.0 - alpha_bar))
    eps = _noise(noise, noise_key, x.shape)
    noisy = jnp.where(context, x, signal * x + sigma * eps)
    time = steps / self.num_train_steps
    output = apply_fn(noisy, time, jnp.where(context, x, 0.0), context_mask)
    loss = masked_mse(output, signal * eps - sigma * x, context_mask)
    x0_estimate = signal * noisy - sigma * output
    metrics = {"x0_mse": masked_mse(x0_estimate, x, context_mask)}
    return _regularize(loss, metrics, regularizer, x0_estimate, x, context, time)

  def sample(
    self,
    apply_fn: ApplyFn,
    key: jax.Array,
    context_frames: jax.Array,
    context_mask: jax.Array,
    num_steps: int,
    noise: jax.Array | None = None,
  ) -> jax.Array:
    """Deterministic DDIM (eta = 0) over `num_steps` evenly spaced steps from the last to 0."""
    if not 1 <= num_steps <= self.num_train_steps:
      raise ValueError(f"num_steps must be in [1, {self.num_train_steps}], got {num_steps}")
    x_context = _to_data_space(context_frames)
    context = _frame_mask(context_mask)
    clean_context = jnp.where(context, x_context, 0.0)
    steps = np.round(np.linspace(self.num_train_steps, 0, num_steps + 1)).astype(np.int32)
    alpha_bar = self.alpha_bar[steps]
    times = jnp.asarray(steps / self.num_train_steps, jnp.float32)
    batch = x_context.shape[0]

    def step(i, x):
      signal, sigma = jnp.sqrt(alpha_bar[i]), jnp.sqrt(1.0 - alpha_bar[i])
      v = apply_fn(x, jnp.full((batch,), times[i]), clean_context, context_mask)
      x0_estimate = signal * x - sigma * v
      eps_estimate = sigma * x + signal * v
      next_alpha_bar = alpha_bar[i + 1]
      x = jnp.sqrt(next_alpha_bar) * x0_estimate + jnp.sqrt(1.0 - next_alpha_bar) * eps_estimate
      return jnp.where(context, x_context, x)

    noise = _noise(noise, key, x_context.shape)
    x = jax.lax.fori_loop(0, num_steps, step, jnp.where(context, x_context, noise))
    return _finish_sample(x, context_frames, context)


def make_objective(name: str = "flow", **options) -> Objective:
  """Builds an objective by name: "flow" (RectifiedFlow) or "ddpm_v" (VPredictionDDPM).

  `options` are the chosen objective's fields, e.g. prediction="x" for "flow" or
  beta_schedule="cosine" for "ddpm_v".
  """
  check_choice("objective", name, OBJECTIVES)
  return RectifiedFlow(**options) if name == "flow" else VPredictionDDPM(**options)
