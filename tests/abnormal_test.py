"""Abnormal rate: ground truth scores zero, each corruption scores in its category.

The fast tests build a scene by hand in PHYRE's colours and painting order (a red ball falls onto
a gray bar that rests on a static black bar; a gray ball rolls; a black ball stands) and render
it at 32 and 64 px. Corruptions edit its trajectory from frame CUT on (moving a body far outside
the frame hides it) or replace its frames. The slow test checks the phyre scene's rollouts.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import ndimage

import sims
from experiments import abnormal
from sims import phyre

T = 8
CONTEXT = 1
CUT = 4  # the first corrupted frame
FAR = -100.0  # a position whose body is outside the frame
# Slots, painted in this order (later on top), as in PHYRE: the red ball at the bottom, dynamic
# balls below static bodies, dynamic boxes above them; the spare slot paints last.
RED_BALL, GRAY_BALL, BLACK_BALL, BLACK_BAR, GRAY_BAR, SPARE = range(6)
RED_RADIUS = 0.6
BLACK_BAR_Y, GRAY_BAR_Y = 3.0, 3.55  # the gray bar (half height 0.3) rests on the black (0.25)
RED_REST = GRAY_BAR_Y + 0.3 + RED_RADIUS  # the red ball's height on the gray bar, from frame 5
SHIFT = 0.8  # world units the red ball is shifted by
STATIC_SHIFT = 0.6  # world units the black bar is moved down by


def red_height(t: np.ndarray, floor: float = RED_REST) -> np.ndarray:
  """The red ball falls 0.8 per frame from 8.2 until it reaches `floor`."""
  return np.maximum(8.2 - 0.8 * t, floor)


def scene() -> dict[str, np.ndarray]:
  """One video's fields of a sims.BodyTrajectory (no batch axis)."""
  t = np.arange(T, dtype=np.float32)
  position = np.zeros((T, 6, 2), np.float32)
  position[:, RED_BALL] = np.c_[np.full(T, 3.0), red_height(t)]
  position[:, GRAY_BALL] = np.c_[6.5 + 0.15 * t, np.full(T, 6.5)]
  position[:, BLACK_BALL] = (8.3, 8.3)
  position[:, BLACK_BAR] = (3.0, BLACK_BAR_Y)
  position[:, GRAY_BAR] = (3.0, GRAY_BAR_Y)
  position[:, SPARE] = FAR
  return {
    "position": position,
    "angle": np.zeros((T, 6), np.float32),
    "shape": np.asarray([0, 0, 0, 1, 1, 0], np.int32),
    "size": np.asarray(
      [[RED_RADIUS] * 2, [0.5, 0.5], [0.4, 0.4], [1.5, 0.25], [1.2, 0.3], [0.5, 0.5]], np.float32
    ),
    "color": np.asarray(
      [phyre.RED, phyre.GRAY, phyre.BLACK, phyre.BLACK, phyre.GRAY, phyre.GRAY], np.float32
    ),
    "dynamic": np.asarray([True, True, False, False, True, True]),
    "active": np.ones(6, bool),
  }


def after_cut(video: dict[str, np.ndarray], slot: int, position) -> dict[str, np.ndarray]:
  """The video with a slot at `position` ([T - CUT, 2] or [2]) from frame CUT on."""
  video["position"][CUT:, slot] = position
  return video


def vanish(slot: int):
  return lambda video: after_cut(video, slot, FAR)


def appear(video):
  return after_cut(video, SPARE, (8.7, 4.0))


def scale(slot: int, factor: tuple[float, float]):
  def corrupt(video):
    video["size"][slot] *= factor
    return video

  return corrupt


def move_static(video):
  video["position"][CUT:, BLACK_BAR, 1] -= STATIC_SHIFT
  return video


def sink_red(video, slot: int = RED_BALL):
  """The red ball falls on into the gray bar, to its middle."""
  video["position"][CUT:, slot, 1] = red_height(np.arange(CUT, T), floor=GRAY_BAR_Y)
  return video


def red_over_bar(video):
  """The red ball painted last (on top) sinks into the gray bar."""
  for name in ("shape", "size", "color", "dynamic"):
    video[name][SPARE] = video[name][RED_BALL]
  video["position"][:, SPARE] = video["position"][:, RED_BALL]
  video["active"][RED_BALL] = False
  return sink_red(video, SPARE)


def bar_through_static(video):
  video["position"][CUT:, GRAY_BAR, 1] = BLACK_BAR_Y
  return video


def shift_red(video):
  video["position"][CUT:, RED_BALL, 0] += SHIFT
  return video


def freeze_red(video):
  return after_cut(video, RED_BALL, video["position"][CUT, RED_BALL])


# Trajectory corruptions (sizes apply to the frames from CUT on) and the flag each must raise.
CORRUPTIONS = {
  "vanish_red": (vanish(RED_BALL), "vanished"),
  "vanish_gray_ball": (vanish(GRAY_BALL), "vanished"),
  "vanish_black_ball": (vanish(BLACK_BALL), "vanished"),
  "appear": (appear, "appeared"),
  "shrink_red": (scale(RED_BALL, (0.75, 0.75)), "shape_changed"),
  "squash_bar": (scale(GRAY_BAR, (0.6, 1.0)), "shape_changed"),
  "move_static": (move_static, "static_moved"),
  "red_through_bar": (sink_red, "passed_through"),
  "red_over_bar": (red_over_bar, "passed_through"),
  "bar_through_static": (bar_through_static, "passed_through"),
  "shift_red": (shift_red, "off_trajectory"),
  "freeze_red": (freeze_red, "off_trajectory"),
}
NAMES = ("truth", *CORRUPTIONS)


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
  """Frames [1, T, H, W, 3] of the scene and of each corruption (frames from CUT on)."""
  variants = [scene()] + [corrupt(scene()) for corrupt, _ in CORRUPTIONS.values()]
  frames = render(variants, resolution)
  spliced = np.concatenate([np.repeat(frames[:1, :CUT], len(frames), 0), frames[:, CUT:]], 1)
  return dict(zip(NAMES, spliced[:, None], strict=True))


def degraded(frames: np.ndarray, seed: int = 0) -> np.ndarray:
  """A good model's frames: blurred (sigma 0.5 px), noisy (std 0.02) and 8-bit."""
  blurred = ndimage.gaussian_filter(frames, (0, 0, 0.5, 0.5, 0))
  noise = np.random.default_rng(seed).normal(0.0, 0.02, frames.shape)
  return np.round(np.clip(blurred + noise, 0.0, 1.0) * 255) / 255


DEGRADATIONS = {
  "8bit": lambda x: np.round(x * 255) / 255,
  "blur": lambda x: ndimage.gaussian_filter(x, (0, 0, 0.5, 0.5, 0)),
  "noise": lambda x: np.clip(x + np.random.default_rng(1).normal(0.0, 0.02, x.shape), 0.0, 1.0),
  "all": degraded,
}


@pytest.mark.parametrize("resolution", [32, 64])
def test_truth_against_itself_measures_zero(resolution):
  truth = videos(resolution)["truth"]
  report = abnormal.abnormal(truth, truth, CONTEXT)
  for name in (*abnormal.FLAGS, "abnormal"):
    assert not report[name][0], name
  for name in abnormal.MEASURES:
    assert report[name][0] == 0.0, name


# At 32 px the gray bar (2 px) on the black one (1.6 px) blurs into a gray-black mixture that
# reads as the black bar's edge: blur there is not mild.
@pytest.mark.parametrize(
  ("resolution", "degradation"),
  [(32, "8bit"), (32, "noise"), (64, "8bit"), (64, "blur"), (64, "noise"), (64, "all")],
)
def test_mild_degradations_are_normal(resolution, degradation):
  truth = videos(resolution)["truth"]
  report = abnormal.abnormal(truth, DEGRADATIONS[degradation](truth), CONTEXT)
  flagged = [name for name in abnormal.FLAGS if report[name][0]]
  assert flagged == [], {name: report[name][0] for name in abnormal.MEASURES}


@pytest.mark.parametrize("name", list(CORRUPTIONS))
@pytest.mark.parametrize(("resolution", "degrade"), [(32, False), (64, False), (64, True)])
def test_corruption_raises_its_flag(name, resolution, degrade):
  frames = videos(resolution)
  generated = degraded(frames[name], seed=2) if degrade else frames[name]
  report = abnormal.abnormal(frames["truth"], generated, CONTEXT)
  flag = CORRUPTIONS[name][1]
  assert report[flag][0] and report["abnormal"][0], {m: report[m][0] for m in abnormal.MEASURES}


@pytest.mark.parametrize("resolution", [32, 64])
def test_corruptions_raise_no_other_flag(resolution):
  """Corruptions that keep every body near its place raise only their own flag."""
  frames = videos(resolution)
  for name in ("shrink_red", "squash_bar", "move_static", "bar_through_static", "shift_red"):
    report = abnormal.abnormal(frames["truth"], frames[name], CONTEXT)
    flagged = [flag for flag in abnormal.FLAGS if report[flag][0]]
    assert flagged == [CORRUPTIONS[name][1]], name


@pytest.mark.parametrize("resolution", [32, 64])
def test_measures_match_the_corruptions(resolution):
  frames = videos(resolution)
  pixel = sims.WORLD_SIZE / resolution

  def measure(name, key):
    return abnormal.abnormal(frames["truth"], frames[name], CONTEXT)[key][0]

  assert measure("vanish_red", "lost_fraction") == 1.0
  assert measure("appear", "new_fraction") == 1.0
  assert measure("shrink_red", "area_change") == pytest.approx(1.0 - 0.75**2, abs=0.08)
  assert measure("squash_bar", "area_change") == pytest.approx(0.4, abs=0.08)
  assert measure("shift_red", "red_distance") == pytest.approx(SHIFT, abs=0.3 * pixel)
  frozen = red_height(CUT) - RED_REST
  assert measure("freeze_red", "red_distance") == pytest.approx(frozen, abs=0.3 * pixel)
  # The moved bar (3 long, 0.5 thick) is 0.1 below the old one: 0.4 of its thickness lies
  # beyond static_distance, give or take a pixel (distances run between pixel centres).
  moved = measure("move_static", "static_moved_area")
  assert 3.0 * (0.4 - pixel) <= moved <= 3.0 * min(0.4 + pixel, 0.5)


def test_overlap_of_a_sunken_ball_is_its_core():
  """At 64 px (at 32 the ball's visible cap is a pixel high, and its fit coarse)."""
  frames = videos(64)
  overlap = abnormal.abnormal(frames["truth"], frames["red_through_bar"], CONTEXT)["overlap_area"]
  # The disc less a rim of overlap_depth (radius 0.48) lies over the gray bar (0.6 thick, through
  # the centre) and the black bar below it (from 0.3 under the centre).
  assert overlap[0] == pytest.approx(np.pi * (RED_RADIUS - 0.12) ** 2, rel=0.2)


def test_coverage_sums_to_the_area_of_a_disc_also_blurred():
  video = scene()
  video["active"][1:] = False
  frames = render([video], 64)[0, :1]
  pixel = sims.WORLD_SIZE / 64
  for image in (frames, ndimage.gaussian_filter(frames, (0, 0.5, 0.5, 0))):
    masks = abnormal.coverage_masks(image)
    assert masks[abnormal.RED_INDEX].sum() * pixel**2 == pytest.approx(np.pi * 0.36, rel=0.03)
    assert masks[abnormal.GRAY_INDEX].sum() == masks[abnormal.BLACK_INDEX].sum() == 0.0


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
    masks = abnormal.coverage_masks(patch)
    np.testing.assert_allclose(masks[:, 2, 2], expected, atol=1e-5)


def test_rate_is_the_fraction_of_flagged_videos():
  frames = videos(32)
  truth = np.concatenate([frames["truth"]] * 3)
  generated = np.concatenate([frames["truth"], frames["vanish_red"], frames["shift_red"]])
  rates = abnormal.abnormal_rate(abnormal.abnormal(truth, generated, CONTEXT))
  assert rates["abnormal"] == pytest.approx(2 / 3)
  assert rates["vanished"] == pytest.approx(1 / 3)
  assert rates["off_trajectory"] == pytest.approx(1 / 3)
  assert rates["static_moved"] == 0.0


def test_context_frames_are_not_judged():
  truth = videos(32)["truth"]
  generated = truth.copy()
  generated[:, :CUT] = 1.0
  assert not abnormal.abnormal(truth, generated, CUT)["abnormal"][0]
  assert abnormal.abnormal(truth, generated, CUT - 1)["vanished"][0]


@pytest.mark.parametrize(
  ("truth_shape", "generated_shape", "context", "value", "message"),
  [
    ((1, T, 32, 32), (1, T, 32, 32), 1, 1.0, r"truth must be \[n, T, H, H, 3\]"),
    ((1, T, 32, 16, 3), (1, T, 32, 16, 3), 1, 1.0, r"square"),
    ((1, T, 32, 32, 3), (1, T, 16, 16, 3), 1, 1.0, r"generated must have truth's shape"),
    ((1, T, 32, 32, 3), (1, T, 32, 32, 3), T, 1.0, r"context_frames must be in \[0, 7\]"),
    ((1, T, 32, 32, 3), (1, T, 32, 32, 3), -1, 1.0, r"got -1"),
    ((1, T, 32, 32, 3), (1, T, 32, 32, 3), 1, 255.0, r"generated must lie in \[0, 1\]"),
  ],
)
def test_bad_input_raises(truth_shape, generated_shape, context, value, message):
  with pytest.raises(ValueError, match=message):
    abnormal.abnormal(np.ones(truth_shape), np.full(generated_shape, value), context)


@pytest.mark.slow
def test_phyre_rollouts():
  """Ground truth and its mild degradations score 0 on rollouts of 14 templates (64 px); hiding
  the red ball, shifting it, blanking frames and adding a gray square score 100 %."""
  scene_ = sims.make("phyre")
  templates = np.arange(10000, 10070, 5)
  params = np.stack([templates, np.zeros_like(templates)], -1).astype(np.int32)
  state = scene_.place(jax.random.split(jax.random.key(0), len(templates)), jnp.asarray(params))
  traj = scene_.rollout(state, num_frames=12)
  cut = 6
  truth = np.asarray(sims.render(traj, 64))
  report = abnormal.abnormal(truth, degraded(truth), CONTEXT)
  assert abnormal.abnormal_rate(report)["abnormal"] == 0.0
  assert abnormal.abnormal_rate(abnormal.abnormal(truth, truth, CONTEXT))["abnormal"] == 0.0

  def corrupted(position) -> np.ndarray:
    frames = np.asarray(sims.render(traj.replace(position=jnp.asarray(position)), 64))
    return np.concatenate([truth[:, :cut], frames[:, cut:]], 1)

  hidden = np.array(traj.position)
  hidden[:, cut:, 0] = FAR
  shifted = np.array(traj.position)
  shifted[:, cut:, 0, 0] += np.where(shifted[:, cut:, 0, 0] < 5.0, SHIFT, -SHIFT)
  blank = truth.copy()
  blank[:, cut:] = 1.0
  added = truth.copy()
  for video, frames in zip(added, truth, strict=True):  # a gray square where nothing comes near
    empty = ndimage.distance_transform_edt(np.all(frames[cut:] == 1.0, axis=(0, -1)))
    # Centred on the point farthest from ink (2 pixels or more inside the frame).
    row, col = np.unravel_index(np.argmax(empty[2:-2, 2:-2]), (60, 60))
    video[cut:, row : row + 4, col : col + 4] = phyre.GRAY
  for generated, flag in (
    (corrupted(hidden), "vanished"),
    (corrupted(shifted), "off_trajectory"),
    (blank, "vanished"),
    (added, "appeared"),
  ):
    assert abnormal.abnormal_rate(abnormal.abnormal(truth, generated, CONTEXT))[flag] == 1.0
