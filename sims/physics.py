"""Closed-form ball physics: ballistic flight and one perfectly elastic two-disc contact.

Everything here is exact (no integrator): positions are polynomials in time, and the contact
time of two discs is the smaller root of a quadratic (uniform gravity cancels in the relative
motion, so the root is exact with or without gravity). All functions are batched over a leading
axis, jit / vmap / grad friendly, and keep gradients finite when no contact happens.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from sims.core import FRAME_DT, BallState, Trajectory

# Stand-in contact time for pairs that never touch; finite so that gradients stay finite.
NO_CONTACT = 1e6


def frame_times(num_frames: int) -> jax.Array:
  """Times of frames 0..num_frames-1 in seconds."""
  return jnp.arange(num_frames, dtype=jnp.float32) * FRAME_DT


def ballistic(state: BallState, gravity: jax.Array, num_frames: int) -> tuple[jax.Array, jax.Array]:
  """Positions and velocities [n, T, K, 2] of balls that never touch, under uniform gravity."""
  t = frame_times(num_frames)[None, :, None, None]
  gravity = jnp.asarray(gravity, jnp.float32)
  position = state.position[:, None] + state.velocity[:, None] * t + 0.5 * gravity * t**2
  velocity = state.velocity[:, None] + gravity * t
  return position, jnp.broadcast_to(velocity, position.shape)


def contact_time(state: BallState) -> jax.Array:
  """First time [n] at which discs 0 and 1 touch, or NO_CONTACT if they never do.

  Solves |dp + dv t| = r0 + r1 for the smaller root, written as c / (-b + sqrt(b^2 - a c)) so it
  has no cancellation. Pairs that already overlap, recede, or miss each other get NO_CONTACT.
  """
  dp = state.position[:, 1] - state.position[:, 0]
  dv = state.velocity[:, 1] - state.velocity[:, 0]
  reach = state.radius[:, 0] + state.radius[:, 1]
  a = jnp.sum(dv * dv, axis=-1)
  b = jnp.sum(dp * dv, axis=-1)
  c = jnp.sum(dp * dp, axis=-1) - reach**2
  discriminant = b * b - a * c
  hits = (b < 0) & (discriminant > 0) & (c >= 0)
  # Substitute harmless values where there is no hit so no NaN reaches the gradient.
  safe_root = jnp.sqrt(jnp.where(hits, discriminant, 1.0))
  safe_denominator = jnp.where(hits, safe_root - b, 1.0)
  return jnp.where(hits, c / safe_denominator, NO_CONTACT)


def elastic_exchange(position: jax.Array, velocity: jax.Array, mass: jax.Array) -> jax.Array:
  """Velocities [n, 2, 2] just after a perfectly elastic contact of discs at `position`.

  The impulse acts along the line of centres; masses are [n, 2]. In 1-D this is the textbook
  v0' = ((m0 - m1) v0 + 2 m1 v1) / (m0 + m1).
  """
  offset = position[:, 1] - position[:, 0]
  normal = offset / jnp.linalg.norm(offset, axis=-1, keepdims=True)
  approach = jnp.sum((velocity[:, 0] - velocity[:, 1]) * normal, axis=-1, keepdims=True)
  total = jnp.sum(mass, axis=-1, keepdims=True)
  delta0 = -2.0 * mass[:, 1:] / total * approach * normal
  delta1 = 2.0 * mass[:, :1] / total * approach * normal
  return velocity + jnp.stack([delta0, delta1], axis=1)


def two_disc_rollout(
  state: BallState, gravity: jax.Array, num_frames: int
) -> tuple[jax.Array, jax.Array]:
  """Positions and velocities [n, T, 2, 2] of two discs with one exact elastic contact."""
  gravity = jnp.asarray(gravity, jnp.float32)
  t_contact = contact_time(state)
  touches = t_contact < NO_CONTACT
  t_safe = jnp.where(touches, t_contact, 0.0)[:, None, None]
  at_contact = state.position + state.velocity * t_safe + 0.5 * gravity * t_safe**2
  velocity_in = state.velocity + gravity * t_safe
  velocity_out = elastic_exchange(at_contact, velocity_in, state.mass)

  before_pos, before_vel = ballistic(state, gravity, num_frames)
  tau = (frame_times(num_frames)[None, :] - t_safe[:, :, 0])[..., None, None]
  after_pos = at_contact[:, None] + velocity_out[:, None] * tau + 0.5 * gravity * tau**2
  after_vel = velocity_out[:, None] + gravity * tau
  is_after = (touches[:, None] & (frame_times(num_frames)[None, :] >= t_contact[:, None]))[
    ..., None, None
  ]
  return jnp.where(is_after, after_pos, before_pos), jnp.where(is_after, after_vel, before_vel)


def to_trajectory(state: BallState, position: jax.Array, velocity: jax.Array) -> Trajectory:
  return Trajectory(position, velocity, state.radius, state.color, state.shape)
