"""Training sets with holes (`sims.regions`): sampling regions, splits, presets, pools, grids."""

import jax
import numpy as np
import pytest

import sims
from sims import regions

KEY = jax.random.key(3)


def in_intervals(values, intervals):
  return np.any([(values >= lo) & (values <= hi) for lo, hi in intervals], axis=0)


@pytest.mark.parametrize("panel", [1, 2, 3, 4, 5])
def test_speed_gap_panels_sample_only_their_region_and_the_gap_only_the_rest(panel):
  intervals = regions.SPEED_PRESETS[f"fig5_panel{panel}"]
  scene = sims.make("uniform_motion", train_speeds=f"fig5_panel{panel}")
  train = np.asarray(scene.sample_params(KEY, 4000, "train"))
  gap = np.asarray(scene.sample_params(KEY, 4000, "gap"))
  assert in_intervals(train[:, 1], intervals).all()
  assert not in_intervals(gap[:, 1], [(lo + 1e-6, hi - 1e-6) for lo, hi in intervals]).any()
  assert gap[:, 1].min() >= 1.0 and gap[:, 1].max() <= 4.0
  for params in (train, gap):  # the radius range is unchanged
    assert params[:, 0].min() >= 0.7 and params[:, 0].max() <= 1.4
  # Disjoint: no gap draw lies in the training region and every training draw does.
  assert not scene.space.regions["train"].contains(gap).any()
  assert scene.space.regions["train"].contains(train).all()
  interior = in_intervals(train[:, 1], [(lo + 1e-3, hi - 1e-3) for lo, hi in intervals])
  assert not scene.space.regions["gap"].contains(train[interior]).any()


def test_speed_presets_are_the_study_intervals():
  assert regions.SPEED_PRESETS["fig5_panel1"] == ((1.0, 1.25), (3.75, 4.0))
  assert regions.SPEED_PRESETS["fig5_panel2"] == ((1.0, 1.5), (3.5, 4.0))
  assert regions.SPEED_PRESETS["fig5_panel3"] == ((1.0, 1.75), (3.25, 4.0))
  assert regions.SPEED_PRESETS["fig5_panel4"] == ((1.0, 1.75), (2.375, 2.625), (3.25, 4.0))
  bands = regions.SPEED_PRESETS["fig5_panel5"]
  np.testing.assert_allclose(
    [max(lo, 1.0) for lo, _ in bands], [1.0, 1.875, 2.875, 3.875]
  )  # 1, 2, 3, 4 +- 0.125 within [1, 4]
  np.testing.assert_allclose([min(hi, 4.0) for _, hi in bands], [1.125, 2.125, 3.125, 4.0])


def test_region_sampling_is_uniform_over_its_volume():
  scene = sims.make("uniform_motion", train_speeds="fig5_panel4")
  speeds = np.asarray(scene.sample_params(KEY, 20000, "train"))[:, 1]
  middle = ((speeds >= 2.375) & (speeds <= 2.625)).mean()
  assert middle == pytest.approx(0.25 / 1.75, abs=0.01)  # its share of the training speeds
  # Same key, same draws; "train" and "gap" draw different streams.
  again = np.asarray(scene.sample_params(KEY, 20000, "train"))[:, 1]
  np.testing.assert_array_equal(speeds, again)


def test_memorization_set_trains_fast_and_tests_slow():
  scene = sims.make("uniform_motion", train_speeds="memorization", direction="both")
  train = np.asarray(scene.sample_params(KEY, 2000, "train"))[:, 1]
  slow = np.asarray(scene.sample_params(KEY, 2000, "gap"))[:, 1]
  assert train.min() >= 2.5 and train.max() <= 4.0
  assert slow.min() >= 1.0 and slow.max() <= 2.5


def test_direction_both_moves_half_the_balls_left_and_keeps_them_in_view():
  scene = sims.make("uniform_motion", direction="both", num_frames=8)
  state = scene.sample(KEY, 2000, "train")
  vx = np.asarray(state.velocity[:, 0, 0])
  assert np.mean(vx < 0) == pytest.approx(0.5, abs=0.04)
  traj = scene.rollout(state, 8)
  in_view = np.asarray(sims.parsing.fully_in_view(traj.position, traj.radius))[..., 0]
  assert in_view[:, :6].all()  # the study's 24 of 32 frames, scaled to 8
  right = sims.make("uniform_motion", num_frames=8).sample(KEY, 2000, "train")
  assert (np.asarray(right.velocity[:, 0, 0]) > 0).all()


@pytest.mark.parametrize("preset", list(regions.HOLE_PRESETS))
def test_collision_holes_are_excluded_from_train_and_the_hole_split_stays_inside(preset):
  scene = sims.make("collision", train_holes=preset)
  hole = scene.space.regions["hole"]
  train = np.asarray(scene.sample_params(KEY, 4000, "train"))
  inside = np.asarray(scene.sample_params(KEY, 4000, "hole"))
  strictly_in_hole = ((train[:, None] > hole.lo + 1e-6) & (train[:, None] < hole.hi - 1e-6)).all(-1)
  assert not strictly_in_hole.any()
  assert hole.contains(inside).all()
  assert (
    not scene.space.regions["train"]
    .contains(
      inside[
        ((inside[:, None] > hole.lo + 1e-3) & (inside[:, None] < hole.hi - 1e-3)).all(-1).any(1)
      ]
    )
    .any()
  )
  pool = np.asarray(scene.pool("30K").params)
  assert scene.space.regions["train"].contains(pool).all()


def test_hole_presets_are_the_study_boxes():
  presets = regions.HOLE_PRESETS
  for lo, hi in ((2.0, 3.0), (1.75, 3.25), (1.5, 3.5), (1.25, 3.75), (1.1, 3.9)):
    assert presets[f"square_{lo:g}_{hi:g}"] == (((lo, hi), (lo, hi)),)
  assert presets["three"] == (
    ((1.2, 2.2), (2.7, 3.7)),
    ((2.7, 3.7), (1.2, 2.2)),
    ((2.9, 3.5), (3.3, 3.9)),
  )
  half = sims.make("collision", train_holes="half")
  train = np.asarray(half.sample_params(KEY, 4000, "train"))
  assert ((train[:, 2] <= 1.25 + 1e-6) | (train[:, 3] <= 1.25 + 1e-6)).all()
  mass = sims.make("collision", train_holes="mass")
  radii = np.asarray(mass.sample_params(KEY, 4000, "train"))[:, :2]
  assert not ((radii > 0.8 + 1e-6) & (radii < 1.2 - 1e-6)).all(1).any()


def test_pools_keep_only_the_training_region_of_the_study_grid():
  panel1 = sims.make("uniform_motion", train_speeds="fig5_panel1").pool("30K")
  # 300 linspace speeds over [1, 4]: 25 in [1, 1.25] and 25 in [3.75, 4], times 100 radii.
  assert panel1.size == 5000
  hole = sims.make("collision", train_holes="square_2_3").pool("30K")
  full = sims.make("collision").pool("30K")
  speeds = np.linspace(1.0, 4.0, 21)
  in_hole = ((speeds > 2.0) & (speeds < 3.0)).sum()  # 6 of 21 speeds per ball
  assert hole.size == full.size - in_hole**2 * 8 * 8


def test_sweep_splits_are_the_study_evaluation_grids():
  one_ball = sims.make("uniform_motion").eval_params("sweep")
  assert one_ball.shape == (121 * 36, 2)
  np.testing.assert_allclose(np.unique(one_ball[:, 1]), np.linspace(1, 4, 121), atol=1e-6)
  np.testing.assert_allclose(np.unique(one_ball[:, 0]), np.linspace(0.7, 1.4, 36), atol=1e-6)
  collision = sims.make("collision").eval_params("sweep")
  assert collision.shape == (6825, 4)
  np.testing.assert_allclose(np.unique(collision[:, 2]), np.linspace(0, 4.5, 21), atol=1e-6)
  np.testing.assert_allclose(np.unique(collision[:, 3]), np.linspace(1, 4, 13), atol=1e-6)
  drawn = np.asarray(sims.make("collision").sample_params(KEY, 1000, "sweep"))
  assert drawn[:, 2].min() >= 0.0 and drawn[:, 2].max() <= 4.5


@pytest.mark.parametrize(
  "options, message",
  [
    (dict(train_speeds=[(2.0, 1.5)]), r"interval \(2, 1.5\) is reversed"),
    (
      dict(train_speeds=[(0.5, 2.0)]),
      r"\(0.5, 2\) leaves the study's range; valid: within \[1, 4\]",
    ),
    (dict(train_speeds=[(1.0, 2.0), (1.5, 3.0)]), r"intervals overlap at \(1.5, 2\)"),
    (dict(train_speeds="fig5_panel9"), r"unknown train_speeds preset 'fig5_panel9'; valid: fig5"),
    (dict(train_speeds=[(1.0, 4.0)]), r"leave no gap"),
    (dict(direction="diagonal"), r"unknown direction .*'diagonal'.*both"),
  ],
)
def test_bad_speed_regions_are_refused_in_one_line(options, message):
  with pytest.raises(ValueError, match=message):
    sims.make("uniform_motion", **options)


@pytest.mark.parametrize(
  "holes, message",
  [
    ([((1.0, 4.0), (1.0, 4.0))], r"leave no training data"),
    ([((2.0, 3.0), (2.0, 3.0)), ((2.5, 3.5), (2.5, 3.5))], r"overlap; valid: disjoint holes"),
    ("donut", r"unknown train_holes preset 'donut'; valid: square_2_3"),
    ([{"radius9": (1.0, 2.0)}], r"parameter 'radius9' is unknown"),
    ([((3.0, 4.5), (1.0, 2.0))], r"speed1 interval \(3, 4.5\) leaves the study's range"),
  ],
)
def test_bad_holes_are_refused_in_one_line(holes, message):
  with pytest.raises(ValueError, match=message):
    sims.make("collision", train_holes=holes)


def test_scenes_without_a_region_keep_their_whole_pool():
  assert sims.make("uniform_motion").train_region is None
  assert sims.make("uniform_motion").pool("30K").size == 300 * 100
  phyre = sims.make("phyre")
  assert phyre.train_region is None
  assert phyre.pool("6").size == len(np.asarray(phyre.pool_params("6")))
