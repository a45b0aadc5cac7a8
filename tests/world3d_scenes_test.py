"""The brax 3-D scenes: contract, bad input, restitution mapping, physics and MuJoCo (C) checks.

Compile times on 2 CPU cores: about 6 s per scene and clip length; the slow tests compile several.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import sims
from sims.world3d import engine, mjcf, scenes

G = 9.81
NAMES = ("bounce3d", "rolling3d", "collision3d")
SCENES = (*NAMES, "movi")
# Largest position difference (m) from MuJoCo's C simulator over a 32-frame clip.
# Measured: 7e-5 (bounce3d), 1.3e-5 (rolling3d), 1.1e-2 (collision3d: the oblique hit amplifies
# float32 rounding).
C_TOLERANCE = {"bounce3d": 1e-3, "rolling3d": 1e-3, "collision3d": 2e-2}


@pytest.mark.parametrize("name", SCENES)
def test_contract_and_splits(name):
  scene = sims.make(name)
  assert name in sims.names()
  assert {"train", "id", "ood_speed", "ood_size"} <= set(scene.splits)
  assert len(scene.param_names) == scene.sample_params(jax.random.key(0), 3, "id").shape[1]
  with pytest.raises(ValueError, match="valid: train, id"):
    scene.sample(jax.random.key(0), 2, "ood_nothing")
  state = scene.sample(jax.random.key(1), 5, "train")
  k = scene.num_objects
  assert state.position.shape == (5, k, 3) and state.orientation.shape == (5, k, 4)
  assert state.size.shape == (5, k) and state.restitution.shape == (5,)
  np.testing.assert_allclose(
    scene.params_of(state),
    scene.sample_params(jax.random.split(jax.random.key(1))[0], 5, "train"),
    rtol=1e-4,
    atol=1e-4,
  )
  same = scene.sample(jax.random.key(1), 5, "train")
  np.testing.assert_array_equal(state.position, same.position)


@pytest.mark.parametrize("name", SCENES)
def test_ood_splits_leave_the_training_range(name):
  scene = sims.make(name)
  train = scene.space.in_train
  assert train(np.asarray(scene.sample_params(jax.random.key(0), 256, "train"))).all()
  for split in scene.splits:
    if split.startswith("ood_"):
      params = np.asarray(scene.sample_params(jax.random.key(0), 256, split))
      assert not train(params).any(), split


def test_bad_input_is_one_line_value_error():
  with pytest.raises(ValueError, match=r"restitution 1.5 is outside the allowed range \[0, 1\]"):
    sims.make("bounce3d", restitution=1.5)
  scene = sims.make("bounce3d")
  state = scene.sample(jax.random.key(0), 2, "train")
  with pytest.raises(ValueError, match=r"restitution -0.2 is outside"):
    scene.rollout(state.replace(restitution=jnp.array([0.5, -0.2])), 2)
  with pytest.raises(ValueError, match=r"size -0.1 is outside"):
    scene.rollout(state.replace(size=jnp.array([[0.1], [-0.1]])), 2)
  with pytest.raises(ValueError, match="dataset_size"):
    scene.pool("1K")


def test_restitution_mapping_is_monotone_and_inverts():
  zeta = np.linspace(0.0, 5.0, 200)
  e = engine.restitution_of_damping_ratio(zeta)
  assert e[0] == pytest.approx(1.0) and (np.diff(e) < 0).all()
  layout = mjcf.Layout((0,), scenes.FRAME_DT_3D, scenes.SUBSTEPS)
  target = np.array([0.3, 0.6, 0.9])
  damping = np.asarray(engine.contact_damping(jnp.asarray(target), layout))
  back = engine.restitution_of_damping_ratio(damping / (2 * np.sqrt(mjcf.STIFFNESS)))
  np.testing.assert_allclose(back, target, atol=1e-3)
  assert engine.min_restitution(layout) < 0.05


def test_tiny_rollout_shapes_and_determinism():
  scene = sims.make("bounce3d")
  state = scene.sample(jax.random.key(3), 2, "id")
  traj = scene.rollout(state, num_frames=3)
  assert traj.position.shape == (2, 3, 1, 3) and traj.velocity.shape == (2, 3, 1, 3)
  assert traj.orientation.shape == (2, 3, 1, 4) and traj.mass.shape == (2, 1)
  assert traj.position.dtype == jnp.float32 and traj.num_frames == 3
  np.testing.assert_allclose(traj.position[:, 0], state.position, atol=1e-6)
  again = scene.rollout(scene.sample(jax.random.key(3), 2, "id"), num_frames=3)
  np.testing.assert_array_equal(traj.position, again.position)


def _drop(restitution, num_frames=96, height=1.2, radius=0.1):
  n = len(restitution)
  state = scenes.spheres(
    jnp.tile(jnp.array([[[0.0, 0.0, height]]]), (n, 1, 1)),
    jnp.zeros((n, 1, 3)),
    jnp.full((n, 1), radius),
    restitution=jnp.asarray(restitution),
  )
  return sims.make("bounce3d").rollout(state, num_frames)


def _apexes(z, vz, radius):
  """Apex height above the floor of each flight, from the energy of the frames clear of the floor
  (z - r + vz^2 / 2g is constant in flight); a jump up in vz starts a new flight."""
  height = z - radius + vz**2 / (2 * G)
  flight = np.concatenate([[0], np.cumsum(np.diff(vz) > 1.0)])
  airborne = z - radius > 2e-3
  return np.array(
    [
      np.median(height[airborne & (flight == f)])
      for f in range(flight.max())
      if (airborne & (flight == f)).any()
    ]
  )


@pytest.mark.slow
def test_free_flight_and_apexes_fall_by_e_squared():
  speed, angle = 2.0, 30.0
  scene = sims.make("bounce3d")
  params = jnp.array([[speed, angle, 0.15, 0.8]])
  state = scene.place(jax.random.split(jax.random.key(0), 1), params)
  traj = scene.rollout(state, 32)
  t = np.arange(32) * scenes.FRAME_DT_3D
  z0, vz = float(state.position[0, 0, 2]), speed * np.sin(np.deg2rad(angle))
  analytic = z0 + vz * t - G * t**2 / 2
  before = analytic > 0.15 + 0.01
  # Semi-implicit Euler at 0.52 ms steps lags the parabola by g t dt / 2 < 2 mm.
  np.testing.assert_allclose(
    np.asarray(traj.position[0, :, 0, 2])[before], analytic[before], atol=2e-3
  )
  drops = _drop([0.5, 0.8, 0.95])
  for i, e in enumerate([0.5, 0.8, 0.95]):
    z, v = np.asarray(drops.position[i, :, 0, 2]), np.asarray(drops.velocity[i, :, 0, 2])
    apex = _apexes(z, v, 0.1)
    ratios = apex[1:] / apex[:-1]
    assert len(ratios) >= 2
    # Measured: off e^2 by at most 0.021 (e = 0.5, first bounce), 0.012 (e = 0.8), 0.005 (0.95).
    np.testing.assert_allclose(ratios[:3], e**2, atol=0.025)


@pytest.mark.slow
def test_collision_conserves_momentum_and_energy_at_e_1():
  scene = sims.make("collision3d", friction=0.0)
  params = jnp.array([[0.12, 0.2, 2.0, 1.5, 1.0], [0.2, 0.1, 3.0, 1.0, 0.6]])
  state = scene.place(jax.random.split(jax.random.key(2), 2), params)
  traj = scene.rollout(state, 32)
  mass = np.asarray(traj.mass)[:, None, :, None]
  momentum = (mass * np.asarray(traj.velocity))[..., :2].sum(2)  # [n, T, 2]
  # The balls did collide: ball 1 turned.
  assert np.abs(np.asarray(traj.velocity[:, -1, 0, 1])).min() > 0.1
  np.testing.assert_allclose(
    momentum,
    np.broadcast_to(momentum[:, :1], momentum.shape),
    atol=2e-3 * np.abs(momentum[:, 0]).max(),
  )
  v = np.asarray(traj.velocity[0])
  energy = 0.5 * (mass[0] * v**2).sum((-1, -2)) + (
    mass[0, 0, :, 0] * G * np.asarray(traj.position[0, :, :, 2])
  ).sum(-1)
  # Measured: within 0.9 % (0.4 % gained at the collision, the rest at the hops that follow).
  np.testing.assert_allclose(energy, energy[0], rtol=1.5e-2)


@pytest.mark.slow
def test_rolling_speed_falls_at_five_sevenths_mu_g():
  scene = sims.make("rolling3d")
  params = jnp.array([[3.0, 0.15, 0.05], [2.0, 0.1, 0.1]])
  state = scene.place(jax.random.split(jax.random.key(0), 2), params)
  traj = scene.rollout(state, 32)
  speed = np.linalg.norm(np.asarray(traj.velocity[:, :, 0, :2]), axis=-1)
  t = np.arange(32) * scenes.FRAME_DT_3D
  slope = np.polyfit(t[4:], speed[:, 4:].T, 1)[0]
  # Measured: 2.2 % and 4.4 % below the rolling-resistance law.
  np.testing.assert_allclose(-slope, 5 / 7 * np.array([0.05, 0.1]) * G, rtol=0.05)


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_brax_agrees_with_mujoco_c(name):
  scene = sims.make(name)
  state = scene.sample(jax.random.key(4), 3, "train")
  traj = scene.rollout(state, 32)
  materials = scene.with_materials(state)
  error = 0.0
  for i in range(3):
    example = jax.tree.map(lambda x, i=i: np.asarray(x[i], np.float64), materials)
    model, data = engine.mujoco_model(scene.layout, example)
    position, _ = engine.run_mujoco(scene.layout, model, data, 32)
    error = max(error, np.abs(np.asarray(traj.position[i]) - position).max())
  # float32 MJX against float64 MuJoCo over the 1.33 s clip.
  assert error < C_TOLERANCE[name], error


@pytest.mark.slow
def test_forward_mode_gradient_of_free_flight():
  scene = sims.make("bounce3d")
  params = jnp.array([[2.0, 30.0, 0.15, 0.8]])
  state = scene.place(jax.random.split(jax.random.key(0), 1), params)

  def final_x(vx):
    moved = state.replace(velocity=state.velocity.at[0, 0, 0].set(vx))
    return scene.rollout(moved, 8).position[0, -1, 0, 0]

  # Before the first contact x = x0 + vx t, so dx / dvx is the time of frame 7.
  assert jax.jacfwd(final_x)(1.7) == pytest.approx(7 * scenes.FRAME_DT_3D, rel=1e-4)


@pytest.mark.parametrize("num_frames, contact", [(8, 3), (32, 12), (64, 24)])
def test_collision3d_places_the_contact_within_the_clip(num_frames, contact):
  scene = sims.make("collision3d", num_frames=num_frames)
  state = scene.sample(jax.random.key(0), 16, "train")
  at_contact = state.position + state.velocity * contact * scenes.FRAME_DT_3D
  gap = np.linalg.norm(at_contact[:, 0] - at_contact[:, 1], axis=-1)
  np.testing.assert_allclose(gap, state.size.sum(-1), rtol=1e-4)
