"""Physics-IQ's metrics (`experiments.physics_iq`) on hand-made masks and videos, and its probe
(`experiments.probes.physics_iq`) on rollouts of real scenes."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from etils import epath
from flax import nnx
from scipy import ndimage

import sims
from experiments import evaluate, probes, train
from experiments import physics_iq as piq
from experiments.configs import quickstart
from experiments.probes import physics_iq as probe_module


def eight_bit(frames):
  return np.round(np.asarray(frames) * 255.0) / 255.0


def uniform_cases(n, seed=0):
  """n ID uniform-motion cases of 8 frames at 32 px: scene, state, trajectory, frames, params."""
  scene = sims.make("uniform_motion", num_frames=8)
  state = scene.sample(jax.random.key(seed), n, "id")
  traj = scene.rollout(state, 8)
  return scene, state, traj, eight_bit(sims.render(traj, 32)), np.asarray(scene.params_of(state))


def test_hand_built_masks_give_the_hand_computed_ious():
  a = np.zeros((3, 2, 4), bool)
  b = np.zeros((3, 2, 4), bool)
  a[0, 0, [0, 1]] = a[1, 0, [1, 2]] = True
  b[0, 0, [1]] = b[1, 0, [1, 2, 3]] = True  # frame 2 is empty in both
  # Over time a covers {0, 1, 2}, b {1, 2, 3}: 2 shared of 4.
  assert piq.spatial_iou(a, b) == pytest.approx(0.5)
  # Per frame 1/2, 2/3, and 1 where both are empty (Physics-IQ's convention).
  assert piq.spatiotemporal_iou(a, b) == pytest.approx((1 / 2 + 2 / 3 + 1) / 3)
  # Fractions of frames active: a (1, 2, 1) / 3 at pixels 0-2, b (2, 1, 1) / 3 at pixels 1-3;
  # sum of minima 3 / 3 over sum of maxima 5 / 3.
  assert piq.weighted_spatial_iou(a, b) == pytest.approx(0.6)
  empty = np.zeros_like(a)
  assert piq.spatial_iou(empty, empty) == piq.weighted_spatial_iou(empty, empty) == 1.0
  assert piq.spatial_iou(a, empty) == piq.weighted_spatial_iou(a, empty) == 0.0
  # Batched: one value per leading index.
  np.testing.assert_allclose(piq.spatial_iou(np.stack([a, a]), np.stack([b, a])), [0.5, 1.0])


def test_frame_mse_is_the_mean_of_per_frame_mses_in_unit_range():
  a = np.zeros((2, 2, 2, 3))
  b = np.zeros((2, 2, 2, 3))
  b[0] = 0.5  # frame 0: every value off by 0.5
  b[1, 0, 0, 0] = 1.0  # frame 1: one value of 12 off by 1
  assert piq.frame_mse(a, b) == pytest.approx((0.25 + 1 / 12) / 2)


def test_resampling_follows_opencv_bilinear_resize():
  # cv2.resize upsampling [0, 4] by 4: source x = (j + 0.5) / 4 - 0.5, edges clamped.
  up = piq.upsample_bilinear(np.array([[0.0, 4.0]], np.float32), 4, axis=-1)
  np.testing.assert_allclose(up, [[0, 0, 0.5, 1.5, 2.5, 3.5, 4, 4]])
  # Downsampling by 4 reads the central 2 x 2 of each 4 x 4 block; > 127 of 255 needs 2 set.
  block = np.zeros((3, 4, 4), bool)
  block[0, 1, 1:3] = True  # two of the central four
  block[1, 1, 1] = True  # one of them
  block[2, [0, 0, 3, 3], [0, 3, 0, 3]] = True  # the corners only
  np.testing.assert_array_equal(piq.downsample_mask(block, 4)[:, 0, 0], [True, False, False])


def test_motion_mask_covers_a_moving_disc_path_and_not_the_static_scene():
  scene = sims.make("uniform_motion", num_frames=8)
  # A red disc moving right at 3 units / s (about 1 px per frame at 32 px), a blue one at rest.
  state = sims.balls([[[2.5, 6.0], [7.0, 2.5]]], [[[3.0, 0.0], [0.0, 0.0]]], [[1.0, 1.0]])
  video = eight_bit(sims.render(scene.rollout(state, 8), 32))[0]
  assert not piq.motion_masks(video)[0].any()  # the first frame seeds the background
  masks = piq.generated_masks(video, 3)
  assert masks.shape == (5, 32, 32) and masks.any((1, 2)).all()
  moved = masks.any(0)
  red = video[2:, ..., 2] < 1.0  # pixels the red disc touches (blue ones keep B = 1 elsewhere)
  core = (video[2:, ..., 1] < 0.5) & (video[2:, ..., 2] < 0.5)  # at least half red
  assert (moved >= core.any(0)).all()  # the whole path, seed frame to last
  assert not (moved & ~ndimage.binary_dilation(red.any(0))).any()  # within a pixel of it
  blue = ndimage.binary_dilation(video[0, ..., 0] < 1.0, iterations=2)
  assert blue.sum() > 20 and not (moved & blue).any()  # the disc at rest never moves
  # Every generated frame's mask holds the disc's leading edge: pixels it covers only now.
  for t in range(5):
    arrived = core[t + 1] & ~core[0]
    assert (masks[t] & arrived).sum() == arrived.sum() > 0


def test_identical_videos_score_perfectly_and_a_frozen_one_scores_zero():
  _, _, _, truth, _ = uniform_cases(3)
  same = piq.case_metrics(truth, truth, 3)
  assert piq.generated_masks(truth, 3).any((1, 2, 3)).all()  # every truth has motion
  for metric in piq.IOU_METRICS:
    np.testing.assert_array_equal(same[metric], 1.0)
  np.testing.assert_array_equal(same["mse"], 0.0)
  # The moving ball removed: every frame a copy of the first one, so nothing moves.
  frozen = np.repeat(truth[:, :1], 8, axis=1)
  still = piq.case_metrics(truth, frozen, 3)
  for metric in piq.IOU_METRICS:
    np.testing.assert_array_equal(still[metric], 0.0)
  expected = np.mean((frozen[:, 3:] - truth[:, 3:]) ** 2, axis=(1, 2, 3, 4))
  np.testing.assert_allclose(still["mse"], expected, rtol=1e-6)
  assert (still["mse"] > 0.005).all()


def test_the_score_follows_physics_iq_code():
  variance = {"spatial_iou": 1.0, "spatiotemporal_iou": 0.8, "weighted_spatial_iou": 0.6}
  variance["mse"] = 0.01
  model = {"spatial_iou": 0.5, "spatiotemporal_iou": 0.4, "weighted_spatial_iou": 0.3}
  model["mse"] = 0.02
  scores = piq.physics_iq_score(model, variance)
  for metric in piq.IOU_METRICS:
    assert scores[f"score_{metric}"] == pytest.approx(0.5)
  assert scores["score_mse"] == pytest.approx(0.01)  # a difference, not a ratio
  assert scores["score"] == scores["score_stable"] == pytest.approx(0.49)
  # An IoU above the variance's: the original score keeps the ratio 1.5, the stable one clips.
  scores = piq.physics_iq_score({**model, "spatial_iou": 0.9}, {**variance, "spatial_iou": 0.6})
  assert scores["score"] == pytest.approx((1.5 + 0.5 + 0.5) / 3 - 0.01)
  assert scores["score_stable"] == pytest.approx((1.0 + 0.5 + 0.5) / 3 - 0.01)
  scores = piq.physics_iq_score({**model, "mse": 0.9}, variance)
  assert scores["score_raw"] == pytest.approx(0.5 - 0.89) and scores["score"] == 0.0


def test_the_probe_scores_rollouts_against_a_perturbed_take(tmp_path):
  config = quickstart.get_config()  # 32 px, 8 frames, 3 of them context
  scene, state, traj, truth, params = uniform_cases(6)
  (probe,) = probes.make(["physics_iq"], scene, config)
  index = np.arange(6)
  probe.update(probes.Batch("id", index, traj, truth, truth, params))
  probe.update(probes.Batch("ood_v", index, traj, truth, np.repeat(truth[:, :1], 8, 1), params))
  # A rollout whose ball runs at 60% of the true speed after the same context.
  slow = eight_bit(sims.render(scene.rollout(state.replace(velocity=state.velocity * 0.6), 8), 32))
  slow[:, :3] = truth[:, :3]
  probe.update(probes.Batch("ood_r", index, traj, truth, slow, params))
  section = probe.finish(epath.Path(tmp_path), "report")
  splits = section.numbers["splits"]
  perfect, frozen, slower = splits["id"], splits["ood_v"], splits["ood_r"]
  assert perfect["cases"] == perfect["variance_cases"] == 6 and perfect["variance_note"] is None
  assert perfect["model"] == {m: 1.0 for m in piq.IOU_METRICS} | {"mse": 0.0}
  # Uniform motion is deterministic and not chaotic: the take is nearly, not exactly, the truth.
  for metric in piq.IOU_METRICS:
    assert 0.98 < perfect["variance"][metric] < 1.0
  assert 0 < perfect["variance"]["mse"] < 1e-6
  assert perfect["score"] == perfect["score_stable"] == 1.0  # IoU ratios >= 1, clipped
  assert frozen["model"]["spatial_iou"] == 0.0 and frozen["model"]["mse"] > 0.01
  assert frozen["score"] == frozen["score_stable"] == 0.0
  assert 0.3 < slower["score"] < 0.7  # half-way: the masks overlap in part
  assert slower["model"]["spatial_iou"] > slower["model"]["spatiotemporal_iou"]
  assert probe.headline(section.numbers) == {
    "Physics-IQ id": "100.0 (100.0)",
    "Physics-IQ ood_v": "0.0 (0.0)",
    "Physics-IQ ood_r": f"{100 * slower['score']:.1f} ({100 * slower['score_stable']:.1f})",
  }
  assert "| id | model | 6 | 1.000 | 1.000 | 1.000 | 0.00e+00 | 100.0 (100.0) |" in section.lines
  assert any(line.startswith("id: the variance take is nearly the truth") for line in section.lines)
  assert (tmp_path / "physics_iq.png").exists() and (tmp_path / "physics_iq_case.gif").exists()
  json.dumps(section.numbers, allow_nan=False)  # eval.json takes it as is


def test_the_take_rebuilds_each_scene_and_moves_it_by_the_perturbation():
  scene = sims.make("collision", num_frames=8)
  state = scene.sample(jax.random.key(1), 4, "id")
  traj = scene.rollout(state, 8)
  rebuilt = probe_module.initial_state(scene, traj, np.asarray(scene.params_of(state)))
  np.testing.assert_array_equal(np.asarray(scene.rollout(rebuilt, 8).position), traj.position)
  shift = probe_module.perturbations("id", np.array([3, 5]), 2)
  np.testing.assert_allclose(np.linalg.norm(shift, axis=-1), 1e-3)
  np.testing.assert_array_equal(shift[1:], probe_module.perturbations("id", np.array([5]), 2))
  assert not np.allclose(shift, probe_module.perturbations("ood_v", np.array([3, 5]), 2))
  for name in ("uniform_motion", "collision", "composition", "phyre"):
    probes.check(["physics_iq"], sims.make(name))


def test_the_variance_is_unavailable_where_no_take_can_be_made(tmp_path):
  config = quickstart.get_config()
  scene, _, traj, truth, params = uniform_cases(4)
  # Truth drawn by another renderer (wider edges): the takes' context frames differ from it.
  other = eight_bit(sims.render(traj, 32, edge_px=2.5))
  (probe,) = probes.make(["physics_iq"], scene, config)
  probe.update(probes.Batch("id", np.arange(4), traj, other, other, params))
  # A trajectory the scene's state cannot be rebuilt from.
  n, k = 4, 1
  bodies = sims.BodyTrajectory(
    position=jnp.zeros((n, 8, k, 2)),
    angle=jnp.zeros((n, 8, k)),
    velocity=jnp.zeros((n, 8, k, 2)),
    angular_velocity=jnp.zeros((n, 8, k)),
    shape=jnp.zeros((n, k), jnp.int32),
    size=jnp.ones((n, k, 2)),
    color=jnp.zeros((n, k, 3)),
    dynamic=jnp.ones((n, k), bool),
    active=jnp.ones((n, k), bool),
  )
  probe.update(probes.Batch("ood_v", np.arange(4), bodies, truth, truth, params))
  section = probe.finish(epath.Path(tmp_path), "report")
  discarded, missing = section.numbers["splits"]["id"], section.numbers["splits"]["ood_v"]
  assert discarded["variance"] is None and discarded["variance_cases"] == 0
  assert discarded["variance_note"].startswith("4 of 4 takes discarded")
  assert missing["variance"] is None and "cannot be rebuilt" in missing["variance_note"]
  assert missing["model"]["spatial_iou"] == 1.0  # the model's metrics still count
  assert "score" not in missing and "score" not in discarded
  assert probe.headline(section.numbers)["Physics-IQ ood_v"] == "n/a (no variance take)"
  assert (tmp_path / "physics_iq.png").exists()


@pytest.mark.slow  # jax2d compiles the PHYRE simulation (~40 s on 2 busy cores)
def test_phyre_takes_are_simulated_again(tmp_path):
  config = quickstart.get_config()
  scene = sims.make("phyre", templates="ambiguity")
  params = scene.eval_params("in_template", 1)  # task 0 of each of the 4 templates
  traj = scene.rollout(scene.place(None, params), 8)
  truth = eight_bit(sims.render(traj, 32))
  config.video.context_frames = 1
  (probe,) = probes.make(["physics_iq"], scene, config)
  probe.update(probes.Batch("in_template", np.arange(4), traj, truth, truth, params))
  entry = probe.finish(epath.Path(tmp_path), "report").numbers["splits"]["in_template"]
  assert entry["variance_cases"] == 4 and entry["variance_note"] is None
  assert 0.9 < entry["variance"]["spatiotemporal_iou"] <= 1.0
  assert entry["score"] == 1.0


@pytest.mark.slow  # an evaluation of an untrained micro model, ~15-30 s on 2 busy cores
def test_the_evaluation_writes_the_probe_numbers(tmp_path, monkeypatch):
  config = quickstart.get_config()
  config.model.size = "micro"
  config.eval.update(
    splits=("id",), num_cases=4, batch_size=4, baselines=(), probes=("physics_iq",)
  )
  config.eval.physics_score = False
  monkeypatch.setattr(evaluate, "make_predictor", lambda _: lambda params, frames, key: frames)
  params = nnx.state(train.build_model(config, config.seed), nnx.Param)
  evaluate.run(config, str(tmp_path), params=params)
  numbers = json.loads((tmp_path / "eval.json").read_text())["probes"]["physics_iq"]
  entry = numbers["splits"]["id"]
  assert entry["cases"] == entry["variance_cases"] == 4 and entry["score"] == 1.0
  assert "](report/physics_iq.png)" in (tmp_path / "report.md").read_text()
