"""The rater: ground truth is type 1, a plausible other rollout type 2, corruptions type 3.

The fast tests build a physical scene by hand in PHYRE's colours and painting order: a red ball
falls from rest under GRAVITY (the simulator's semi-implicit steps) past a gray box that rests on
a static black bar, beside a standing black ball. Corruptions edit its trajectory from frame CUT
on. The slow tests rate rollouts of the phyre scene (benchmarks.rater_calibration's helpers).
"""

import functools

import jax.numpy as jnp
import numpy as np
import pytest
from scipy import ndimage

import sims
from benchmarks import rater_calibration as calibration
from experiments import rater
from sims import phyre

T = 8
CONTEXT = 1
CUT = 4  # the first corrupted frame
FAR = -100.0
# Slots in PHYRE's painting order: the red ball first, static bodies below dynamic boxes.
RED_BALL, BLACK_BAR, BLACK_BALL, GRAY_BOX, SPARE = range(5)
RED_RADIUS = 0.5
SPARE_RADIUS = 0.8  # a gray ball as large as the gray box (2 x 1)
RED_X, RED_TOP = 2.0, 9.0
BAR_Y, BOX_Y = 3.0, 3.75  # the box (half height 0.5) rests on the bar (half height 0.25)
# Distance fallen from rest after each frame: GRAVITY h^2 n (n + 1) / 2 after n steps of h.
_STEPS = np.arange(T) * phyre.STEPS_PER_FRAME
FALLEN = phyre.GRAVITY * _STEPS * (_STEPS + 1) / 2 / phyre.PHYSICS_HZ**2


def scene(red_x: float = RED_X) -> dict[str, np.ndarray]:
  """One video's fields of a sims.BodyTrajectory (no batch axis)."""
  position = np.zeros((T, 5, 2), np.float32)
  position[:, RED_BALL] = np.c_[np.full(T, red_x), RED_TOP - FALLEN]
  position[:, BLACK_BAR] = (6.0, BAR_Y)
  position[:, BLACK_BALL] = (8.5, 8.5)
  position[:, GRAY_BOX] = (6.0, BOX_Y)
  position[:, SPARE] = FAR
  return {
    "position": position,
    "angle": np.zeros((T, 5), np.float32),
    "shape": np.asarray([0, 1, 0, 1, 0], np.int32),
    "size": np.asarray(
      [[RED_RADIUS] * 2, [2.5, 0.25], [0.3, 0.3], [1.0, 0.5], [SPARE_RADIUS] * 2], np.float32
    ),
    "color": np.asarray([phyre.RED, phyre.BLACK, phyre.BLACK, phyre.GRAY, phyre.GRAY], np.float32),
    "dynamic": np.asarray([True, False, False, True, True]),
    "active": np.ones(5, bool),
  }


def vanish(video):
  video["position"][CUT:, RED_BALL] = FAR
  return video


def appear(video):
  video["position"][CUT:, SPARE] = (2.0, 2.0)
  return video


def squash(video):
  video["size"][GRAY_BOX] *= (0.6, 1.0)
  return video


def move_static(video):
  video["position"][CUT:, BLACK_BAR, 1] -= 0.6
  return video


def box_through_bar(video):
  video["position"][CUT:, GRAY_BOX, 1] = BAR_Y
  return video


def freeze(video):
  video["position"][CUT:, RED_BALL] = video["position"][CUT - 1, RED_BALL]
  return video


def teleport(video):
  video["position"][CUT:, RED_BALL, 0] += 0.8
  return video


# Corruptions of the scene from frame CUT on and the check each must raise.
CORRUPTIONS = {
  "vanished": (vanish, "vanished"),
  "appeared": (appear, "appeared"),
  "squashed": (squash, "deformed"),
  "static_moved": (move_static, "static_moved"),
  "passed_through": (box_through_bar, "interpenetrating"),
  "frozen": (freeze, "hovering"),
  "teleported": (teleport, "unphysical_motion"),
}


def render(videos: list[dict[str, np.ndarray]], resolution: int) -> np.ndarray:
  fields = {name: jnp.asarray(np.stack([v[name] for v in videos])) for name in videos[0]}
  traj = sims.BodyTrajectory(
    velocity=jnp.zeros_like(fields["position"]),
    angular_velocity=jnp.zeros_like(fields["angle"]),
    **fields,
  )
  return np.asarray(sims.render(traj, resolution))


@functools.cache
def videos(resolution: int) -> dict[str, np.ndarray]:
  """Frames [1, T, H, W, 3] of the scene, of the scene with the red ball 1.0 to the right, and of
  each corruption (ground truth before CUT)."""
  variants = [scene(), scene(RED_X + 1.0)] + [
    corrupt(scene()) for corrupt, _ in CORRUPTIONS.values()
  ]
  frames = np.array(render(variants, resolution))
  frames[2:, :CUT] = frames[0, :CUT]
  return dict(zip(("truth", "shifted", *CORRUPTIONS), frames[:, None], strict=True))


@pytest.mark.parametrize("degradation", ["exact", *calibration.DEGRADATIONS])
def test_truth_is_type_1(degradation):
  truth = videos(64)["truth"]
  generated = calibration.DEGRADATIONS.get(degradation, lambda x: x)(truth)
  report = rater.rate(truth, generated, CONTEXT)
  assert report["type"][0] == 1, {m: report[m][0] for m in rater.MEASURES.values()}
  assert report["motion_residual"][0] < 1.0  # free fall and rest need no unexplained push
  assert report["truth_distance"][0] <= 64**-1 * sims.WORLD_SIZE


def test_a_plausible_rollout_far_from_truth_is_type_2():
  frames = videos(64)
  report = rater.rate(frames["truth"], frames["shifted"], CONTEXT)
  assert report["type"][0] == 2 and report["plausible"][0]
  assert report["truth_distance"][0] == pytest.approx(1.0, abs=0.16)


@pytest.mark.parametrize("name", list(CORRUPTIONS))
def test_corruption_is_type_3_by_its_check(name):
  frames = videos(64)
  report = rater.rate(frames["truth"], frames[name], CONTEXT)
  check = CORRUPTIONS[name][1]
  assert report["type"][0] == 3 and report[check][0], {
    m: report[m][0] for m in rater.MEASURES.values()
  }


def test_measures_match_the_corruptions():
  frames = videos(64)

  def measure(name, key):
    return rater.rate(frames["truth"], frames[name], CONTEXT)[key][0]

  # The red ball is the only red object: all of it is lost.
  assert measure("vanished", "lost_fraction") == pytest.approx(1.0, abs=0.05)
  # A gray ball appears; the smallest gray object is the 2 x 1 box.
  assert measure("appeared", "new_fraction") == pytest.approx(
    np.pi * SPARE_RADIUS**2 / 2.0, rel=0.05
  )
  assert measure("squashed", "shape_change") == pytest.approx(0.4, abs=0.05)
  # Frozen at frame CUT - 1: the ball stops from its speed there, in mid-air.
  speed = (FALLEN[CUT - 1] - FALLEN[CUT - 2]) / phyre.FRAME_DT
  stop = speed / phyre.FRAME_DT + phyre.GRAVITY
  assert measure("frozen", "motion_residual") == pytest.approx(stop, rel=0.1)
  # Then it hangs in mid-air: gravity unopposed, averaged with the stop.
  hanging = (stop + (rater.SUSTAINED_FRAMES - 1) * phyre.GRAVITY) / rater.SUSTAINED_FRAMES
  assert measure("frozen", "sustained_residual") == pytest.approx(hanging, rel=0.1)
  # The teleported ball jumps by 0.8 in one frame and stops in the next.
  jump = 0.8 / phyre.FRAME_DT**2
  assert measure("teleported", "motion_residual") == pytest.approx(jump, rel=0.1)


def test_coverage_sums_to_the_area_of_a_disc_also_blurred():
  video = scene()
  video["active"][1:] = False
  frames = render([video], 64)[0, :1]
  pixel = sims.WORLD_SIZE / 64
  for image in (frames, ndimage.gaussian_filter(frames, (0, 0.5, 0.5, 0))):
    masks = rater.coverage_masks(image)
    area = np.pi * RED_RADIUS**2
    assert masks[rater.RED_INDEX].sum() * pixel**2 == pytest.approx(area, rel=0.05)
    assert masks[rater.GRAY_INDEX].sum() == masks[rater.BLACK_INDEX].sum() == 0.0


def test_coverage_unmixes_two_colours_and_white():
  """A 5 x 5 patch whose centre mixes the colours of its corners (two pixels away) and white."""
  red, gray, black = (np.asarray(c, np.float32) for c in (phyre.RED, phyre.GRAY, phyre.BLACK))
  cases = {
    (0.25, 0.5, 0.0): 0.25 * red + 0.5 * gray + 0.25,
    (0.0, 0.5, 0.5): 0.5 * gray + 0.5 * black,
    (0.0, 0.0, 0.22): 0.22 * black + 0.78,  # a black edge, though as light as gray
    (0.0, 0.0, 0.0): np.ones(3, np.float32),
  }
  for expected, mixed in cases.items():
    patch = np.ones((5, 5, 3), np.float32)
    patch[0, 0], patch[0, 4], patch[4, 0], patch[2, 2] = red, gray, black, mixed
    masks = rater.coverage_masks(patch)
    np.testing.assert_allclose(masks[:, 2, 2], expected, atol=1e-5)


def test_rates_count_the_types_and_checks():
  frames = videos(64)
  truth = np.concatenate([frames["truth"]] * 4)
  generated = np.concatenate(
    [frames["truth"], frames["shifted"], frames["vanished"], frames["static_moved"]]
  )
  rates = rater.rates(rater.rate(truth, generated, CONTEXT))
  assert (rates["type1_count"], rates["type2_count"], rates["type3_count"]) == (1, 1, 2)
  assert rates["type3_rate"] == 0.5 and rates["type1_rate"] == 0.25
  assert rates["vanished_rate"] == 0.25 and rates["static_moved_rate"] == 0.25
  assert rates["appeared_rate"] == 0.0
  with pytest.raises(ValueError, match="at least one rated video, got 0"):
    rater.rates({"type": np.zeros(0, int)})


@pytest.mark.parametrize(
  ("truth_shape", "generated_shape", "context", "value", "message"),
  [
    ((1, T, 32, 32), (1, T, 32, 32), 1, 1.0, r"truth must be \[n, T, H, H, 3\]"),
    ((1, T, 32, 16, 3), (1, T, 32, 16, 3), 1, 1.0, r"square"),
    ((1, T, 32, 32, 3), (1, T, 16, 16, 3), 1, 1.0, r"generated must have truth's shape"),
    ((1, T, 32, 32, 3), (1, T, 32, 32, 3), T, 1.0, r"context_frames must be in \[1, 7\]"),
    ((1, T, 32, 32, 3), (1, T, 32, 32, 3), 0, 1.0, r"got 0"),
    ((1, T, 32, 32, 3), (1, T, 32, 32, 3), 1, 255.0, r"generated must lie in \[0, 1\]"),
  ],
)
def test_bad_input_raises(truth_shape, generated_shape, context, value, message):
  with pytest.raises(ValueError, match=message):
    rater.rate(np.ones(truth_shape), np.full(generated_shape, value), context)


# Of these 6 videos, the share of each corruption rated type 3 (the red ball moves on after the
# cut in 3; one of them rolls on a bar, where stopping is within friction's reach).
MIN_TYPE3 = dict.fromkeys(calibration.CORRUPTIONS, 1.0) | {"frozen": 0.6}


@pytest.fixture(scope="module")
def phyre_rollouts():
  """Ground truth and another trial (same task, another red-ball action) of 6 templates."""
  return calibration.rollouts(videos=6, frames=16)


@pytest.mark.slow
@pytest.mark.parametrize("resolution", [64, 128, 256])
def test_phyre_truth_is_type_1_and_another_trial_type_2(phyre_rollouts, resolution):
  truth_traj, other_traj = phyre_rollouts
  truth = np.asarray(sims.render(truth_traj, resolution))
  degraded = {name: degrade(truth) for name, degrade in calibration.DEGRADATIONS.items()}
  for name, generated in {"truth": truth, **degraded}.items():
    assert rater.rates(rater.rate(truth, generated, CONTEXT))["type1_rate"] == 1.0, name
  other = np.asarray(sims.render(other_traj, resolution))
  assert rater.rates(rater.rate(truth, other, CONTEXT))["type2_rate"] == 1.0


@pytest.mark.slow
def test_phyre_corruptions_are_type_3(phyre_rollouts):
  truth_traj, _ = phyre_rollouts
  videos_of = calibration.conditions(truth_traj, truth_traj, 64)
  applicable = calibration.applicable(truth_traj)
  for name in calibration.CORRUPTIONS:
    keep = applicable.get(name, np.ones(len(videos_of["truth"]), bool))
    report = rater.rate(videos_of["truth"][keep], videos_of[name][keep], CONTEXT)
    assert rater.rates(report)["type3_rate"] >= MIN_TYPE3[name], name
