"""Simulator-grounded generation: the simulator decides the motion, the DiT renders it.

A guide is built from a video's context frames alone: `sims.fit_initial_state` on the context
gives each ball's position, velocity and radius, `scene.rollout` carries that state over the
whole clip with the scene's law, and the guide hands the result to the model as one of:

- "none": nothing (the plain video model, the baseline);
- "render": the rolled-out video as extra input channels of the DiT, concatenated like the
  context (the CineMaster / PhysGen route): `render="masks"` one channel of object coverage (the
  objects in one neutral colour), `render="full"` the full RGB rendering;
- "flow_noise": the diffusion noise warped along the rollout's exact flow (`sims.flow`) so that
  it moves with the objects (Go-with-the-Flow), in training and sampling alike (`warp_noise`);
- "state": the fitted state as numbers (`state_features`), embedded and added to every video
  token (the study's vision + numeric variant, its Figure 12; there it made OOD worse).

The guide reads only the context frames (`GuideInputs` of `Guide.build` cannot see the future)
at evaluation. At training it does the same by default (`train_from="fit"`); with
`train_from="truth"` a training guide starts instead from the simulator's true initial state
plus Gaussian noise of the context fit's error measured on 8-bit frames (`measure_fit_error`),
so the model learns from guides as wrong as the ones evaluation gives it (the fit on training's
float frames is exact). Guides need a ball scene (`sims.laws`: uniform
motion, parabola, collision), whose state the fit recovers.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from flax import struct

import sims
from sims import laws

GUIDES = ("none", "render", "flow_noise", "state")
RENDER_MODES = ("masks", "full")
TRAIN_FROM = ("fit", "truth")  # where a training guide's state comes from
# Scales of the state features: positions over the world, speeds over SPEED_SCALE world units / s.
SPEED_SCALE = 5.0
FEATURES_PER_BALL = 5  # x, y, vx, vy, radius
MIN_RADIUS = 0.05  # world units: a perturbed true radius stays a visible ball


@struct.dataclass
class GuideInputs:
  """What a guide gives the model for a batch: each field None unless the guide uses it.

  channels: [B, T, H, W, G] extra input channels; state: [B, F] numeric features; noise:
  [B, T, H, W, C] the diffusion noise to use (warped).
  """

  channels: jax.Array | None = None
  state: jax.Array | None = None
  noise: jax.Array | None = None


@dataclasses.dataclass(frozen=True)
class FitError:
  """RMS error of the context fit per coordinate: position and velocity components (world units,
  world units / s) and radius."""

  position: float
  velocity: float
  radius: float


@dataclasses.dataclass(frozen=True)
class Guide:
  """A guide of kind `kind` for `scene`'s videos, from their first `context_frames` frames;
  `fit_error` (needed by `Guide.build`'s true states) is the noise added to a true state."""

  kind: str
  scene: sims.Scene
  context_frames: int
  render: str = "masks"
  fit_steps: int = 10
  fit_error: FitError | None = None

  def __post_init__(self):
    sims.check_choice("guide.kind", self.kind, GUIDES)
    sims.check_choice("guide.render", self.render, RENDER_MODES)
    if self.kind != "none":
      sims.check_choice("scene for a guide", self.scene.name, tuple(laws.LAWS))
    if self.fit_steps < 1:
      raise ValueError(f"guide.fit_steps must be >= 1, got {self.fit_steps}")

  @property
  def channels(self) -> int:
    """Extra DiT input channels."""
    if self.kind != "render":
      return 0
    return 1 if self.render == "masks" else 3

  @property
  def state_features(self) -> int:
    """Length of the DiT's numeric state input."""
    if self.kind != "state":
      return 0
    return FEATURES_PER_BALL * laws.ball_scene(self.scene, None)[1].position.shape[1]

  def rollout(self, frames: jax.Array) -> tuple[sims.BallState, sims.Trajectory]:
    """The state fitted to the context frames of `frames` [B, T, H, W, 3] and its rollout over
    the T frames."""
    context = frames[:, : self.context_frames]
    state0, _ = sims.fit_initial_state(self.scene, context, num_steps=self.fit_steps)
    return state0, self.scene.rollout(state0, frames.shape[1])

  def build(
    self, frames: jax.Array, key: jax.Array, true_state: sims.BallState | None = None
  ) -> GuideInputs:
    """The guide of videos `frames` [B, T, H, W, 3] (only their context frames are read); `key`
    draws the noise that "flow_noise" warps. Given the videos' `true_state` (training only), the
    guide starts from it plus noise of `fit_error` instead of a fit."""
    if self.kind == "none":
      return GuideInputs()
    if true_state is None:
      state0, traj = jax.lax.stop_gradient(self.rollout(frames))
    else:
      state0 = self.perturb(true_state, jax.random.fold_in(key, 1))
      traj = self.scene.rollout(state0, frames.shape[1])
    resolution = frames.shape[2]
    if self.kind == "state":
      return GuideInputs(state=state_features(state0))
    if self.kind == "flow_noise":
      return GuideInputs(noise=warp_noise(key, sims.flow(traj, resolution), frames.shape[-1]))
    if self.render == "masks":
      black = traj.replace(color=jnp.zeros_like(traj.color))
      return GuideInputs(channels=1.0 - sims.render(black, resolution)[..., :1])
    return GuideInputs(channels=sims.render(traj, resolution))

  def perturb(self, state: sims.BallState, key: jax.Array) -> sims.BallState:
    """`state` with Gaussian noise of the fit's error on every position, velocity and radius."""
    if self.fit_error is None:
      raise ValueError("a guide from true states needs the fit's error (guide.fit_error)")
    position_key, velocity_key, radius_key = jax.random.split(key, 3)
    error = self.fit_error

    def noisy(value, key, scale):
      return value + scale * jax.random.normal(key, value.shape)

    return state.replace(
      position=noisy(state.position, position_key, error.position),
      velocity=noisy(state.velocity, velocity_key, error.velocity),
      radius=jnp.maximum(noisy(state.radius, radius_key, error.radius), MIN_RADIUS),
    )


def measure_fit_error(
  guide: Guide, key: jax.Array, num_frames: int, resolution: int, num_videos: int = 256
) -> FitError:
  """The context fit's RMS error on `num_videos` simulated training videos of `guide.scene`,
  rounded to 8-bit levels as evaluation's videos are (on the float frames of training the fit
  is exact to ~1e-7 world units)."""
  state = guide.scene.sample(key, num_videos, "train")
  frames = jnp.round(sims.render(guide.scene.rollout(state, num_frames), resolution) * 255) / 255
  fitted, _ = guide.rollout(frames)

  def rms(fit: jax.Array, true: jax.Array) -> float:
    return float(jnp.sqrt(jnp.mean((fit - true) ** 2)))

  return FitError(
    position=rms(fitted.position, state.position),
    velocity=rms(fitted.velocity, state.velocity),
    radius=rms(fitted.radius, state.radius),
  )


def state_features(state: sims.BallState) -> jax.Array:
  """[B, 5K] numbers of K balls' initial state: x, y over the world size, velocity over
  SPEED_SCALE, radius."""
  scale = jnp.array([sims.WORLD_SIZE, sims.WORLD_SIZE, SPEED_SCALE, SPEED_SCALE, 1.0])
  per_ball = jnp.concatenate([state.position, state.velocity, state.radius[..., None]], -1)
  return (per_ball / scale).reshape(per_ball.shape[0], -1)


def warp_noise(key: jax.Array, flow: jax.Array, channels: int) -> jax.Array:
  """Gaussian noise [B, T, H, W, C] that moves along `flow` [B, T - 1, H, W, 2] (pixels per
  frame, x right, y down: `sims.flow`).

  Frame 0 is white noise. Frame t + 1 carries frame t's noise along the flow, each pixel to the
  nearest pixel of where it moves (pixels that do not move keep theirs; where several land on
  one pixel, a moving one wins over a still one), and fresh noise where nothing lands (the
  background an object uncovers). Every value is a copy of one independent standard normal draw
  chosen by the flow alone, never a sum, so the noise stays exactly N(0, 1) per pixel (Go with
  the Flow keeps that property with sub-pixel "integral" warping; nearest-pixel transport is the
  simplest warping that keeps it).
  """
  batch, steps, height, width, _ = flow.shape
  first_key, fresh_key = jax.random.split(key)
  first = jax.random.normal(first_key, (batch, height, width, channels))
  fresh = jax.random.normal(fresh_key, (steps, batch, height, width, channels))
  rows, cols = jnp.meshgrid(jnp.arange(height), jnp.arange(width), indexing="ij")

  def carry_one(noise, frame_flow, new):
    """One example's noise [H, W, C] carried along its flow [H, W, 2] onto `new`."""
    moving = jnp.any(frame_flow != 0.0, axis=-1)
    col = jnp.round(cols + frame_flow[..., 0]).astype(jnp.int32)
    row = jnp.round(rows + frame_flow[..., 1]).astype(jnp.int32)
    lands = moving & (col >= 0) & (col < width) & (row >= 0) & (row < height)
    carried = jnp.where(moving[..., None], new, noise)  # still pixels keep their noise
    # Pixels that land nowhere are sent out of bounds and dropped.
    row, col = jnp.where(lands, row, height), jnp.where(lands, col, width)
    return carried.at[row, col].set(noise, mode="drop")

  def step(noise, inputs):
    frame_flow, new = inputs
    noise = jax.vmap(carry_one)(noise, frame_flow, new)
    return noise, noise

  _, rest = jax.lax.scan(step, first, (jnp.moveaxis(flow, 1, 0), fresh))
  return jnp.concatenate([first[:, None], jnp.moveaxis(rest, 0, 1)], axis=1)
