"""Cross-checks the closed-form `sims` rollouts against stock Box2D on identical initial states.

Box2D integrates with semi-implicit Euler in float32 at dt = 0.01 s and resolves contacts
discretely, so the two agree only up to known integrator effects:
  * free flight: float32 rounding of the 310 position updates (< 1.5e-4 inside the world);
  * gravity: Box2D leads the closed form by exactly g t dt / 2 (0.039 at t = 3.1 s);
  * contact: Box2D changes velocities at the start of the first step that begins with the discs
    overlapping, so each ball's path after contact is off by at most |velocity change| * dt
    (measured on 200 random head-on collisions: at most 1.001 times that bound, 0.12 units at the
    extreme, median 0.036), while post-contact velocities agree to 4e-4 of the closing speed.
"""

import numpy as np
import pytest

pytest.importorskip("Box2D")

import sims
from benchmarks import box2d_reference as ref

TIMES = np.arange(ref.NUM_FRAMES) * ref.FRAME_DT
FLOAT32_DRIFT = 2e-4


def _rollout(scene, position, velocity, radius):
  traj = sims.make(scene).rollout(sims.balls(position, velocity, radius))
  return np.asarray(traj.position, np.float64), np.asarray(traj.velocity, np.float64)


def _single_balls(seed, n=16):
  rng = np.random.default_rng(seed)
  position = rng.uniform(1.0, 9.0, (n, 1, 2))
  velocity = rng.uniform(-2.0, 2.0, (n, 1, 2))
  return position, velocity, rng.uniform(0.7, 1.4, (n, 1))


def _head_on_collisions(seed, n=32):
  """Red moving right meets blue moving left at a random time in [0.4, 2.3] s, closing speed > 3."""
  rng = np.random.default_rng(seed)
  radius = rng.uniform(0.5, 1.5, (n, 2))
  speed = rng.uniform(1.5, 4.0, (n, 2))
  contact_time = rng.uniform(0.4, 2.3, n)
  left = rng.uniform(1.0, 3.0, n)
  right = left + radius.sum(-1) + speed.sum(-1) * contact_time
  height = rng.uniform(2.0, 8.0, (n, 1)).repeat(2, -1)
  position = np.stack([np.stack([left, right], -1), height], -1)
  velocity = np.stack([speed * [1.0, -1.0], np.zeros((n, 2))], -1)
  return position, velocity, radius


def test_uniform_motion_matches_box2d():
  state = _single_balls(0)
  positions, velocities = _rollout("uniform_motion", *state)
  box2d_positions, box2d_velocities = ref.simulate(*state)
  np.testing.assert_allclose(positions, box2d_positions, rtol=0, atol=FLOAT32_DRIFT)
  np.testing.assert_allclose(velocities, box2d_velocities, rtol=0, atol=1e-5)


def test_parabola_matches_box2d_up_to_euler_bias():
  state = _single_balls(1)
  positions, velocities = _rollout("parabola", *state)
  box2d_positions, box2d_velocities = ref.simulate(*state, gravity=ref.PARABOLA_GRAVITY)
  bias = 0.5 * np.array(ref.PARABOLA_GRAVITY) * ref.TIME_STEP * TIMES[:, None, None]
  np.testing.assert_allclose(
    box2d_positions - positions, np.broadcast_to(bias, positions.shape), atol=FLOAT32_DRIFT
  )
  np.testing.assert_allclose(velocities, box2d_velocities, rtol=0, atol=1e-4)


def test_collision_matches_box2d_within_one_step_of_contact():
  state = _head_on_collisions(2)
  position, velocity, radius = state
  positions, velocities = _rollout("collision", *state)
  box2d_positions, box2d_velocities = ref.simulate(*state)

  closing_speed = velocity[:, 0, 0] - velocity[:, 1, 0]
  np.testing.assert_allclose(
    velocities[:, -1], box2d_velocities[:, -1], rtol=0, atol=0.01 * closing_speed.max()
  )
  velocity_change = np.abs(velocities[:, -1, :, 0] - velocity[..., 0])
  assert velocity_change.min() > 0.1  # every pair has collided by the last frame
  error = np.abs(positions - box2d_positions).max(1)  # [n, K, 2]
  np.testing.assert_array_less(error[..., 0], velocity_change * ref.TIME_STEP + 1e-3)
  np.testing.assert_array_less(error[..., 1], 1e-5)
  assert 0.01 < np.median(error.max((1, 2))) < 0.05

  contact_time = (position[:, 1, 0] - position[:, 0, 0] - radius.sum(-1)) / closing_speed
  before = TIMES[None, :] < contact_time[:, None] - ref.TIME_STEP
  np.testing.assert_allclose(positions[before], box2d_positions[before], rtol=0, atol=FLOAT32_DRIFT)
