"""The 3-D velocity probe: parsing balls by colour, pixel and world-space errors, its floor."""

import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

import sims
from experiments.probes import Batch, velocity3d
from sims.world3d import SPHERE, Trajectory3D, render

G = 9.81
RES = 64
FRAMES = 8
CONTEXT = 3
DT = 1.0 / 24.0


def thrown(vx, vz=1.0, y0=(0.3, -0.4, 0.0, 0.6), colors=((1.0, 0.0, 0.0), (0.0, 0.0, 1.0))):
  """Parabolic flights of a red and a blue ball [4 videos] in the planes y = y0 and y0 + 0.5,
  radius 0.15 (no simulator involved)."""
  n, k = len(y0), len(colors)
  t = np.arange(FRAMES)[None, :, None] * DT  # [1, T, 1]
  x = -1.0 + np.asarray(vx, np.float64)[:, None, None] * t + np.zeros((n, FRAMES, k))
  y = np.asarray(y0)[:, None, None] + 0.5 * np.arange(k) + 0.0 * x
  z = 1.0 + vz * t - G * t**2 / 2 + 0.0 * x
  position = np.stack([x, y, z], -1).astype(np.float32)  # [n, T, K, 3]
  velocity = np.gradient(position, DT, axis=1)
  return Trajectory3D(
    position=jnp.asarray(position),
    orientation=jnp.zeros((n, FRAMES, k, 4)).at[..., 0].set(1.0),
    velocity=jnp.asarray(velocity),
    angular_velocity=jnp.zeros((n, FRAMES, k, 3)),
    shape=jnp.full((n, k), SPHERE, jnp.int32),
    size=jnp.full((n, k), 0.15),
    mass=jnp.ones((n, k)),
    color=jnp.broadcast_to(jnp.asarray(colors, jnp.float32), (n, k, 3)),
    active=jnp.ones((n, k), bool),
  )


def frames_of(traj):
  return np.round(np.asarray(sims.render(traj, RES)) * 255) / 255


@pytest.fixture(scope="module")
def scene():
  return sims.make("bounce3d")


def test_parser_finds_red_and_blue_balls_where_the_camera_projects_them():
  traj = thrown([1.0, 2.0, 2.5, 1.5])
  parsed = velocity3d.parse_centres(frames_of(traj), np.asarray(traj.color))
  projected, _ = render.project(np.asarray(traj.position), RES)
  # Shading pulls the centroid toward the lit side by under a pixel; motion cancels it.
  assert np.abs(parsed - projected).max() < 1.0
  motion_error = np.linalg.norm(np.diff(parsed, axis=1) - np.diff(projected, axis=1), axis=-1)
  # Measured: 0.08 (red) and 0.12 (blue, further back) px per frame for balls 2 px in radius.
  assert motion_error.mean() < 0.15, motion_error.mean()
  noisy = frames_of(traj) + np.random.default_rng(0).normal(0, 0.03, (4, FRAMES, RES, RES, 3))
  parsed = velocity3d.parse_centres(np.clip(noisy, 0, 1), np.asarray(traj.color))
  motion_error = np.linalg.norm(np.diff(parsed, axis=1) - np.diff(projected, axis=1), axis=-1)
  assert motion_error.mean() < 0.3, motion_error.mean()


def test_world_error_is_the_speed_gap_and_a_still_prediction_scores_the_speed(scene):
  traj = thrown([1.0, 2.0, 2.5, 1.5])
  truth = frames_of(traj)
  floor = velocity3d.case_errors(scene, traj, truth, CONTEXT)
  # Measured: 0.12-0.31 m/s and 0.06-0.12 px per frame: 2-pixel balls parsed at 64 x 64.
  assert floor["world_error"].max() < 0.4 and floor["pixel_error"].max() < 0.2
  speed = np.linalg.norm(np.diff(np.asarray(traj.position), axis=1) / DT, axis=-1)[:, CONTEXT:]
  np.testing.assert_allclose(floor["true_speed"], speed.mean((1, 2)), rtol=1e-5)
  still = np.concatenate([truth[:, :CONTEXT], np.repeat(truth[:, CONTEXT - 1 : CONTEXT], 5, 1)], 1)
  still_errors = velocity3d.case_errors(scene, traj, still, CONTEXT)
  # Generated frames that do not move: the parsed motion is zero, so the error is the true speed.
  np.testing.assert_allclose(still_errors["world_error"], floor["true_speed"], rtol=0.1)
  faster = frames_of(thrown([1.5, 2.5, 3.0, 2.0]))
  gap = velocity3d.case_errors(scene, traj, faster, CONTEXT)["world_error"]
  # Half a metre per second faster along x, within the floor. Measured: 0.51-0.56.
  np.testing.assert_allclose(gap, 0.5, atol=0.1)


def test_probe_rejects_scenes_without_coloured_balls():
  with pytest.raises(ValueError, match=r"probe 'velocity3d' needs one of .*, not 'movi'"):
    velocity3d.Velocity3D.check(sims.make("movi"))
  with pytest.raises(ValueError, match="not 'parabola'"):
    velocity3d.Velocity3D.check(sims.make("parabola"))


def test_probe_reports_model_floor_and_still_per_split(scene, tmp_path):
  config = ml_collections.ConfigDict(
    {"video": {"context_frames": CONTEXT}, "eval": {"gif_scale": 1}}
  )
  probe = velocity3d.Velocity3D(scene, config)
  traj = thrown([1.0, 2.0, 2.5, 1.5])
  truth, faster = frames_of(traj), frames_of(thrown([1.5, 2.5, 3.0, 2.0]))
  for split in ("id", "ood_speed"):
    probe.update(Batch(split, np.arange(4), traj, truth, faster, np.zeros((4, 4))))
  section = probe.finish(tmp_path, "report")
  numbers = section.numbers["ood_speed"]
  assert numbers["cases"] == numbers["scored"] == 4
  assert numbers["model_world_error"] == pytest.approx(0.53, abs=0.1)
  assert numbers["floor_world_error"] < 0.4 and numbers["true_speed"] > 1.5
  assert (tmp_path / "velocity3d.png").exists() and (tmp_path / "velocity3d_worst.gif").exists()
  assert any(line.startswith("| ood_speed | 4 / 4 |") for line in section.lines)
  assert set(probe.headline(section.numbers)) == {"id m/s (floor)", "ood_speed m/s (floor)"}
