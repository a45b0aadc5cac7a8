"""Batched rollouts of 3-D bodies with brax's MJX pipeline, and restitution as contact damping.

Pipeline: `brax.mjx.pipeline` (MuJoCo's algorithms in JAX). brax's generalized pipeline reads only
the sliding friction of a contact (no rolling friction), solves contacts with a different method
than MuJoCo and was 12x slower on a batch in our measurements. MJX's Newton solver loops in a
`lax.while_loop` (one iteration alone leaves frictional contacts 15 % off MuJoCo), so gradients
of a rollout are forward-mode only: `jax.jvp` / `jax.jacfwd`, not `jax.grad`.

Restitution: each contact is a damped spring in MuJoCo's direct parameterisation (solref =
(-stiffness, -damping)): the penetration x obeys x'' = -damping x' - stiffness x while the force
pushes (it is never allowed to pull). Its coefficient of restitution depends only on the damping
ratio zeta = damping / (2 sqrt(stiffness)), in closed form (`restitution_of_damping_ratio`), and
`contact_damping` inverts it.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
from brax import math
from brax.mjx import pipeline

from sims.world3d import mjcf
from sims.world3d.bodies import Bodies3D, Trajectory3D


def restitution_of_damping_ratio(zeta: np.ndarray) -> np.ndarray:
  """Speed out / in of a push-only damped spring contact (gravity neglected), zeta >= 0.

  The contact ends when the spring force reaches zero (the body then leaves at constant speed),
  which comes before the spring returns to its rest length once zeta > 0.
  """
  zeta = np.asarray(zeta, np.float64)
  e = np.empty_like(zeta)
  under = zeta < 1.0
  z = zeta[under]
  wd = np.sqrt(1.0 - z**2)
  phase = np.arctan2(2.0 * z * wd, 2.0 * z**2 - 1.0)  # wd * (time the force reaches zero)
  e[under] = -np.exp(-z * phase / wd) * (np.cos(phase) - z * np.sin(phase) / wd)
  z = zeta[~under]
  s = np.sqrt(z**2 - 1.0)
  fast, slow = -z - s, -z + s
  t = np.log((2.0 * z * fast + 1.0) / (2.0 * z * slow + 1.0)) / (slow - fast)
  e[~under] = -(slow * np.exp(slow * t) - fast * np.exp(fast * t)) / (slow - fast)
  return e


_ZETA = np.concatenate([np.linspace(0.0, 0.999, 1000), np.geomspace(1.001, 100.0, 400)])
_E = restitution_of_damping_ratio(_ZETA)  # decreasing from 1


def contact_damping(restitution: jax.Array, layout: mjcf.Layout) -> jax.Array:
  """Contact damping (1/s) giving `restitution` at the layout's stiffness.

  The damping is capped at 1 / dt (the explicit step stays stable), so restitution below
  `min_restitution(layout)` behaves as that value.
  """
  zeta = jnp.interp(restitution, _E[::-1], _ZETA[::-1])
  damping = 2.0 * zeta * np.sqrt(mjcf.STIFFNESS)
  return jnp.minimum(damping, 1.0 / layout.dt)


def min_restitution(layout: mjcf.Layout) -> float:
  """The smallest restitution a layout's contacts reach (see `contact_damping`)."""
  zeta = 1.0 / (layout.dt * 2.0 * np.sqrt(mjcf.STIFFNESS))
  return float(restitution_of_damping_ratio(np.array([zeta]))[0])


def example_fields(layout: mjcf.Layout, state: Bodies3D, xp=jnp) -> dict:
  """`mjcf.model_fields` of one (unbatched) example whose materials are set, as jnp or np
  arrays (`xp`)."""
  damping = contact_damping(state.restitution, layout)
  return mjcf.model_fields(
    np.asarray(layout.shapes),
    state.size,
    state.mass,
    damping if xp is jnp else np.asarray(damping, np.float64),
    state.friction,
    state.rolling_friction,
    xp=xp,
  )


def initial_coordinates(state: Bodies3D) -> tuple[jax.Array, jax.Array]:
  """MuJoCo free-joint qpos [7K] and qvel [6K] of one example (angular velocity in the body
  frame)."""
  body_omega = jax.vmap(math.inv_rotate)(state.angular_velocity, state.orientation)
  q = jnp.concatenate([state.position, state.orientation], -1).reshape(-1)
  qd = jnp.concatenate([state.velocity, body_omega], -1).reshape(-1)
  return q, qd


def body_states(q: jax.Array, qd: jax.Array) -> tuple[jax.Array, ...]:
  """(position, orientation, velocity, world angular velocity) [..., K, 3 or 4] from qpos, qvel
  [..., 7K], [..., 6K]."""
  q = q.reshape(*q.shape[:-1], -1, 7)
  qd = qd.reshape(*qd.shape[:-1], -1, 6)
  orientation = q[..., 3:] / jnp.linalg.norm(q[..., 3:], axis=-1, keepdims=True)
  rotate = jnp.vectorize(math.rotate, signature="(3),(4)->(3)")
  return q[..., :3], orientation, qd[..., :3], rotate(qd[..., 3:], orientation)


@functools.partial(jax.jit, static_argnames=("layout", "num_frames"))
def simulate(layout: mjcf.Layout, state: Bodies3D, num_frames: int) -> Trajectory3D:
  """Rolls a batch of bodies (materials set) out for `num_frames` frames, one vmapped run.

  Frame 0 is `state`; frame k is `k * layout.substeps` MJX steps later.
  """
  with jax.ensure_compile_time_eval():
    base = mjcf.system(layout)

  def one(example: Bodies3D) -> tuple[jax.Array, jax.Array]:
    sys = base.replace(**example_fields(layout, example))
    q0, qd0 = initial_coordinates(example)
    no_action = jnp.zeros(sys.nu)

    def frame(s, _):
      s = jax.lax.fori_loop(0, layout.substeps, lambda _, s: pipeline.step(sys, s, no_action), s)
      return s, (s.q, s.qd)

    _, (q, qd) = jax.lax.scan(frame, pipeline.init(sys, q0, qd0), length=num_frames - 1)
    return jnp.concatenate([q0[None], q]), jnp.concatenate([qd0[None], qd])

  q, qd = jax.vmap(one)(state)
  position, orientation, velocity, angular_velocity = body_states(q, qd)
  return Trajectory3D(
    position=position,
    orientation=orientation,
    velocity=velocity,
    angular_velocity=angular_velocity,
    shape=state.shape,
    size=state.size,
    mass=state.mass,
    color=state.color,
    active=state.active,
  )


def mujoco_model(layout: mjcf.Layout, example: Bodies3D) -> tuple[mujoco.MjModel, mujoco.MjData]:
  """MuJoCo's C model of one example (unbatched, numpy fields, materials set) on the same MJCF,
  and its data at the example's state."""
  model = mjcf.mj_model(layout, example_fields(layout, example, xp=np))
  data = mujoco.MjData(model)
  q0, qd0 = initial_coordinates(jax.tree.map(jnp.asarray, example))
  data.qpos[:], data.qvel[:] = q0, qd0
  return model, data


def run_mujoco(
  layout: mjcf.Layout, model: mujoco.MjModel, data: mujoco.MjData, num_frames: int
) -> tuple[np.ndarray, np.ndarray]:
  """Steps `data` with MuJoCo's C engine: positions [T, K, 3] and orientations [T, K, 4], frame 0
  being its state. With `mujoco_model`, the reference for the tests and
  benchmarks/world3d_throughput.py."""
  frames = [data.qpos.copy()]
  for _ in range(num_frames - 1):
    for _ in range(layout.substeps):
      mujoco.mj_step(model, data)
    frames.append(data.qpos.copy())
  q = np.stack(frames).reshape(num_frames, -1, 7)
  return q[..., :3], q[..., 3:]
