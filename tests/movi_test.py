"""`sims.make("movi")`: 3-10 spheres and cubes thrown onto a floor (placement, splits, physics)."""

import jax
import numpy as np
import pytest

import sims
from sims.world3d import CUBE, SPHERE, engine, movi


@pytest.fixture(scope="module")
def scene():
  return sims.make("movi")


def _bounding_radius(shape, size):
  return np.where(shape == CUBE, np.sqrt(3.0), 1.0) * size


def test_placement_draws_counts_shapes_masses_and_never_overlaps(scene):
  state = jax.tree.map(np.asarray, scene.sample(jax.random.key(0), 512, "train"))
  count = state.active.sum(-1)
  assert count.min() == movi.MIN_OBJECTS and count.max() == movi.MAX_OBJECTS
  assert len(np.unique(count)) == movi.MAX_OBJECTS - movi.MIN_OBJECTS + 1
  active_shapes = state.shape[state.active]
  assert 0.4 < (active_shapes == CUBE).mean() < 0.6 and (active_shapes == SPHERE).any()
  density = state.mass / np.asarray(movi.body_volume(state.shape, state.size))
  assert density.min() >= movi.DENSITY_RANGE[0] - 1e-3
  assert density.max() <= movi.DENSITY_RANGE[1] + 1e-3
  np.testing.assert_allclose(np.linalg.norm(state.orientation, axis=-1), 1.0, atol=1e-5)
  assert state.color.min() >= 0.0 and state.color.max() <= 1.0
  # Every video's bodies start clear of one another and of the floor.
  bound = _bounding_radius(state.shape, state.size)
  gap = np.linalg.norm(state.position[:, :, None] - state.position[:, None], axis=-1)
  clearance = gap - bound[:, :, None] - bound[:, None]
  both = state.active[:, :, None] & state.active[:, None] & ~np.eye(movi.MAX_OBJECTS, dtype=bool)
  assert clearance[both].min() > 0.0
  assert (state.position[..., 2] - bound)[state.active].min() > 0.0
  # Parked slots are far from everything; active bodies are thrown horizontally inward.
  assert (state.position[..., 2][~state.active] > 100.0).all()
  inward = -(state.velocity[..., :2] * state.position[..., :2]).sum(-1)
  assert (inward[state.active] > 0.0).all() and (state.velocity[..., 2] == 0.0).all()


def test_size_and_speed_splits_scale_the_bodies(scene):
  for split, column in (("ood_size_high", 1), ("ood_speed_low", 0)):
    params = np.asarray(scene.sample_params(jax.random.key(1), 512, split))
    state = scene.place(jax.random.split(jax.random.key(1), 512), params)  # compiled above
    np.testing.assert_allclose(scene.params_of(state), params, rtol=1e-4)
    assert not scene.space.in_train(params).any()
    assert params[:, column].min() > 0 and params[:, column].max() < 3.5


@pytest.mark.slow
def test_bodies_fall_collide_rest_on_the_floor_and_follow_mujoco_c(scene):
  state = scene.sample(jax.random.key(4), 3, "train")
  traj = jax.tree.map(np.asarray, scene.rollout(state, 32))
  materials = scene.with_materials(state)
  for i in range(3):
    active = traj.active[i]
    example = jax.tree.map(lambda x, i=i: np.asarray(x[i], np.float64), materials)
    model, data = engine.mujoco_model(scene.layout, example)
    position, _ = engine.run_mujoco(scene.layout, model, data, 32)
    error = np.abs(traj.position[i] - position)[:, active].max((1, 2))
    # Measured: below 0.2 mm through the fall and the first floor contacts (frame 16); many-body
    # contacts then amplify float32 rounding to 2-8 cm by frame 32.
    assert error[:16].max() < 1e-3 and error.max() < 0.15, error
    # Bodies neither sink into the floor nor into one another: a body's inscribed sphere (radius
    # `size` for spheres and cubes) lies inside it, so these spheres may not overlap.
    centre, size = traj.position[i][:, active], traj.size[i, active]
    assert (centre[..., 2] - size).min() > -0.03
    gap = np.linalg.norm(centre[:, :, None] - centre[:, None], axis=-1) - size[:, None] - size
    assert gap[:, ~np.eye(len(size), dtype=bool)].min() > -0.03
  # Bodies end near the floor (they were dropped from 0.8-1.8 m): the median is within a size.
  final = traj.position[:, -1, :, 2][traj.active]
  assert np.median(final) < 2.0 * traj.size[traj.active].max()
