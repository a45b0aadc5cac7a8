"""The visual-ambiguity tasks 20000-20003: placement, scans, outcome rule, rendering, errors.

Placement has no jax2d and compiles in seconds (these tests: ~25 s on 2 cores). The ground-truth
flips need jax2d rollouts (compile ~30 s, then ~0.7 s per 32-frame case), so that test is marked
slow (~70 s): every 10th task and the last task before and the first after each flip.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import sims
from sims import phyre, phyre_ambiguity
from sims.phyre_ambiguity import AMBIGUITY_TEMPLATES, FLIPS, SCAN_POINTS

PX = sims.WORLD_SIZE / 512  # one PHYRE scene pixel
STATIC_RADIUS = 10.5 * PX  # PHYRE's ball of scale 0.04: int(0.04 * 512 / 2) + 0.5 pixels


def action_radius(r):
  """PHYRE's ball action radius r in world units: 2 + r (512 / 8 - 2) pixels."""
  return (2 + r * 62) * PX


def action_x(x):
  """PHYRE's ball action position in world units: x (512 - 1) pixels."""
  return x * 511 * PX


def parsed_red(frames):
  """The red ball's centre [n, T, 2] parsed by colour (the study's thresholds), NaN if absent."""
  parsed = sims.parsing.hard_parse(frames, colors=(sims.RED,))
  found = np.asarray(parsed.found)[..., None]
  return np.where(found, np.asarray(parsed.position), np.nan)[:, :, 0]


@pytest.fixture(scope="module")
def scene():
  return sims.make("phyre", templates="ambiguity")


@pytest.fixture(scope="module")
def every_task(scene):
  """Every (template, task) pair and its initial state."""
  params = scene.eval_params("in_template", SCAN_POINTS)
  return params, jax.tree.map(np.asarray, scene.place(None, params))


def test_make_gives_the_ambiguity_scene_and_leaves_phyre_as_it_was(scene):
  assert isinstance(scene, phyre_ambiguity.PhyreAmbiguity) and isinstance(scene, sims.Phyre)
  assert scene.splits == ("train", "in_template")
  assert scene.templates("train") == scene.templates("in_template") == AMBIGUITY_TEMPLATES
  assert scene.tasks_per_template == SCAN_POINTS == 101
  normal = sims.make("phyre", templates="6")
  assert type(normal) is phyre.Phyre
  assert normal.templates("out_of_template") == phyre.HELD_OUT_TEMPLATES
  assert normal.templates("train") == phyre.TEMPLATE_SUBSETS["6"]
  assert phyre_ambiguity.PhyreAmbiguity(templates=[20002]).templates("train") == (20002,)


def test_placement_is_the_studys(every_task):
  params, state = every_task
  assert params.shape == (4 * SCAN_POINTS, 2)
  template, task = params[:, 0], params[:, 1]
  assert np.array_equal(np.asarray(state.template), template)
  assert np.array_equal(np.asarray(state.task), task)
  s = task.astype(np.float64)
  first, second = phyre.KIND_SLOTS["static_ball"][:2]
  expected_x = {  # the static balls' centre x (scene fractions), NaN: no second ball
    20000: (0.4 + 0 * s, 0.5 + 0 * s),
    20001: (0.4 + 0 * s, np.nan * s),
    20002: (0.46 - 0.0005 * s, 0.54 + 0.0005 * s),
    20003: (0.4 + (s - 50) * 1e-4, np.nan * s),
  }
  for t, (x1, x2) in expected_x.items():
    rows = template == t
    np.testing.assert_allclose(
      state.position[rows, first], np.stack([x1, 0 * s + 0.3], -1)[rows] * 10, atol=1e-5
    )
    assert np.all(state.active[rows, second] == np.isfinite(x2[rows]))
    on = rows & np.isfinite(x2)
    np.testing.assert_allclose(state.position[on, second, 0], x2[on] * 10, atol=1e-5)
  balls = state.active[:, list(phyre.KIND_SLOTS["static_ball"])]
  np.testing.assert_allclose(state.size[:, [first, second], 0], STATIC_RADIUS, rtol=1e-6)
  assert np.array_equal(balls.sum(1), np.where(np.isin(template, (20000, 20002)), 2, 1))
  assert not np.any(state.dynamic[:, [first, second]])

  red = phyre.KIND_SLOTS["red_ball"][0]
  red_action = {  # the study's red-ball actions (x, y, r)
    20000: (0.45 + 0 * s, 0.46 + 0 * s, np.linspace(0.20, 0.25, 101)[task]),
    20001: (np.linspace(0.39, 0.41, 101)[task], 0.46 + 0 * s, 0.2 + 0 * s),
    20002: (0.5 + 0 * s, 0.5 + 0 * s, 0.4 + 0 * s),
    20003: (0.4 + 0 * s, 0.5 + 0 * s, 0.4 + 0 * s),
  }
  for t, (x, y, r) in red_action.items():
    rows = template == t
    np.testing.assert_allclose(
      state.position[rows, red], np.stack([action_x(x), action_x(y)], -1)[rows], atol=1e-5
    )
    np.testing.assert_allclose(state.size[rows, red, 0], action_radius(r)[rows], atol=1e-6)
  # The scan's red-ball radii of 20000: 14.4 to 17.5 scene pixels.
  radii = state.size[template == 20000, red, 0]
  np.testing.assert_allclose(radii[[0, -1]], [14.4 * PX, 17.5 * PX], rtol=1e-6)
  assert np.all(state.color[:, red] == np.float32(phyre.RED))

  # The task scripts' floor (static bar, scale 1, bottom 0) and gray ball (scale 0.1, left 0.02).
  bar, gray = phyre.KIND_SLOTS["static_bar"][0], phyre.KIND_SLOTS["dynamic_ball_1"][0]
  np.testing.assert_allclose(state.position[:, bar], [[5.0, 0.1]] * len(params), atol=1e-6)
  np.testing.assert_allclose(state.size[:, bar], [[5.0, 0.1]] * len(params), atol=1e-6)
  gray_radius = 25.5 * PX
  np.testing.assert_allclose(state.size[:, gray, 0], gray_radius, rtol=1e-6)
  np.testing.assert_allclose(
    state.position[:, gray], [[0.2 + gray_radius, 0.2 + gray_radius]] * len(params), atol=1e-5
  )
  used = [red, gray, bar, *phyre.KIND_SLOTS["static_ball"]]
  assert not np.any(np.delete(state.active, used, axis=1))
  assert np.all(state.active[:, [red, gray, bar, first]])
  assert np.all(np.asarray(state.velocity) == 0)


def test_placement_is_deterministic_and_keys_do_not_matter(scene, every_task):
  params, state = every_task
  again = scene.place(jax.random.split(jax.random.key(3), len(params)), params)
  assert np.array_equal(np.asarray(again.position), state.position)
  assert np.array_equal(np.asarray(scene.params_of(again)), params)


def test_scans_are_monotone_with_101_tasks(every_task):
  params, _ = every_task
  names, values = phyre_ambiguity.ambiguity_scan(params)
  assert values.shape == names.shape == (4 * SCAN_POINTS,)
  expected = {  # name, value at task 0 and at task 100 (world units)
    20000: ("red_radius", action_radius(0.2), action_radius(0.25)),
    20001: ("red_offset", action_x(0.39) - 4.0, action_x(0.41) - 4.0),
    20002: ("gap", 0.8 - 2 * STATIC_RADIUS, 1.8 - 2 * STATIC_RADIUS),
    20003: ("red_offset", action_x(0.4) - 3.95, action_x(0.4) - 4.05),
  }
  for t, (name, low, high) in expected.items():
    rows = params[:, 0] == t
    assert np.all(names[rows] == name)
    assert np.array_equal(params[rows, 1], np.arange(SCAN_POINTS))
    np.testing.assert_allclose(values[rows][[0, -1]], [low, high], atol=1e-5)
    steps = np.diff(values[rows]) * np.sign(high - low)
    assert np.all(steps > 0), t
  assert phyre_ambiguity.SCAN_NAMES.keys() == phyre_ambiguity.OUTCOME_NAMES.keys()


def test_eval_params_pool_and_sampling(scene):
  subset = scene.eval_params("train", 11)
  assert subset.shape == (44, 2)
  assert np.array_equal(subset[:11, 1], np.arange(0, 101, 10))
  assert np.array_equal(scene.eval_params("train", 3)[:3, 1], [0, 50, 100])
  assert np.array_equal(scene.eval_params("train", 500), scene.eval_params("train", 101))
  pool = scene.pool("ambiguity")
  assert pool.size == 404 and len(np.unique(np.asarray(pool.params), axis=0)) == 404
  key = jax.random.key(0)
  drawn = np.asarray(scene.params_of(scene.sample(key, 16, pool)))
  assert np.all(np.isin(drawn[:, 0], AMBIGUITY_TEMPLATES)) and np.all(drawn[:, 1] < 101)
  for split in scene.splits:
    sampled = np.asarray(scene.sample_params(key, 256, split))
    assert set(sampled[:, 0]) == set(AMBIGUITY_TEMPLATES)
    assert sampled[:, 1].min() >= 0 and sampled[:, 1].max() == 100
  only = np.asarray(scene.params_of(scene.sample(key, 16, "train", templates=[20001])))
  assert np.all(only[:, 0] == 20001)


def test_outcome_rule_on_hand_made_paths():
  """Paths of the red ball's centre over 9 frames, read where it first drops below y = 3 (frame
  4); NaN frames (not parsed) are skipped."""
  params = np.array([[20000, 0], [20000, 0], [20002, 0], [20001, 0], [20003, 0], [20003, 0]])
  fall = np.linspace(4.5, 0.5, 9)
  paths = np.stack(
    [
      np.stack([np.full(9, 4.5), fall], -1),  # through the gap between x = 4 and 5
      np.stack([np.full(9, 4.5), np.maximum(fall, 3.2)], -1),  # resting on the two balls
      np.stack([np.linspace(5.0, 7.0, 9), fall], -1),  # over the right ball (x = 5.4)
      np.stack([np.linspace(4.0, 2.0, 9), fall], -1),  # off the ball (x = 4) to the left
      np.stack([np.linspace(4.0, 6.0, 9), fall], -1),  # off the ball (x = 3.95) to the right
      np.stack([np.full(9, 3.9), fall], -1),  # past the ball on its left
    ]
  )
  paths[0, 4:6] = np.nan  # read at frame 6 instead
  paths[4, -1, 0] = 1.0  # later moves do not count
  got = np.asarray(phyre_ambiguity.outcome(jnp.asarray(paths), params))
  assert got.tolist() == [True, False, False, True, False, True]


def test_renders_at_64_pixels(every_task):
  params, state = every_task
  rows = np.searchsorted(params[:, 0], AMBIGUITY_TEMPLATES)  # task 0 of each template
  one = jax.tree.map(lambda x: x[rows], state)
  traj = sims.BodyTrajectory(
    position=one.position[:, None],
    angle=one.angle[:, None],
    velocity=one.velocity[:, None],
    angular_velocity=one.angular_velocity[:, None],
    shape=one.shape,
    size=one.size,
    color=one.color,
    dynamic=one.dynamic,
    active=one.active,
  )
  frames = sims.render(traj, resolution=64)
  assert frames.shape == (4, 1, 64, 64, 3)
  red = phyre.KIND_SLOTS["red_ball"][0]
  parsed = parsed_red(frames)
  assert np.all(np.isfinite(parsed))
  np.testing.assert_allclose(parsed[:, 0], one.position[:, red], atol=0.3 * 10 / 64)
  black = np.all(np.asarray(frames) < 1e-3, -1).sum((1, 2, 3))
  assert np.all(black > 64), black  # the floor bar (64 x 1.28 pixels) and the static balls


@pytest.mark.parametrize(
  "call, message",
  [
    (lambda s: sims.make("phyre", templates="ambiguous"), "unknown template set 'ambiguous'"),
    (lambda s: s.sample(jax.random.key(0), 2, "out_of_template"), "unknown split"),
    (lambda s: s.sample(jax.random.key(0), 2, templates=[20004]), "templates [20004] are not"),
    (lambda s: s.sample(jax.random.key(0), 2, templates=[10000]), "valid: 20000-20003"),
    (lambda s: s.sample(jax.random.key(0), 2, templates="60"), "template set of the ambiguity"),
    (lambda s: sims.make("phyre", templates="ambiguity", tasks_per_template=100), "is 101"),
    (lambda s: s.eval_params("train", 0), "points must be at least 1"),
    (lambda s: s.pool("60"), "unknown dataset_size"),
  ],
)
def test_bad_values_raise_one_line_errors(scene, call, message):
  with pytest.raises(ValueError) as error:
    call(scene)
  assert message in str(error.value) and "\n" not in str(error.value)


@pytest.mark.slow
def test_ground_truth_flips_once_along_each_scan(scene):
  """Every 10th task and the tasks either side of each flip (FLIPS), 32-frame jax2d rollouts."""
  rows = []
  for t in AMBIGUITY_TEMPLATES:
    tasks = sorted({*range(0, SCAN_POINTS, 10), FLIPS[t] - 1, FLIPS[t]})
    rows += [(t, s) for s in tasks]
  params = np.asarray(rows, np.int32)
  traj = scene.rollout(scene.place(None, params), num_frames=32)
  got = np.asarray(phyre_ambiguity.outcome(traj.position[:, :, 0], params))
  starts = {20000: True, 20001: True, 20002: False, 20003: False}  # small ball passes, etc.
  for t, start in starts.items():
    mine = params[:, 0] == t
    expected = np.where(params[mine, 1] < FLIPS[t], start, not start)
    assert np.array_equal(got[mine], expected), (t, params[mine, 1], got[mine])
  # The same rule on the red ball parsed from 64-pixel frames agrees.
  parsed = parsed_red(sims.render(traj, resolution=64))
  assert np.array_equal(np.asarray(phyre_ambiguity.outcome(parsed, params)), got)
