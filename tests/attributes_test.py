"""Objects with attributes: the ring shape, the study's attribute pairings (`sims.pairings`) and
the attribute parser (`sims.parsing.parse_attributes`)."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import sims
from sims import pairings, parsing


def one_ball(radius, shape, color=sims.RED, position=(5.0, 5.0)):
  state = sims.balls([[position]], [[(0.0, 0.0)]], [[radius]], [color], [[shape]])
  return sims.UniformMotion().rollout(state, 1)


def test_a_ring_is_an_annulus_with_the_documented_hole():
  radius, resolution = 2.0, 128
  frames = np.asarray(sims.render(one_ball(radius, sims.RING), resolution))[0, 0]
  coverage = 1.0 - frames[..., 1]  # red over white: G = 1 - coverage
  pixel = sims.WORLD_SIZE / resolution
  area = coverage.sum() * pixel**2
  assert area == pytest.approx(np.pi * radius**2 * (1 - sims.RING_INNER**2), rel=0.01)
  centre = resolution // 2
  assert coverage[centre, centre] == 0.0  # the hole is background
  band = int(0.8 * radius / pixel)  # between the inner (0.6 r) and the outer radius
  assert coverage[centre, centre + band] == 1.0
  disc = np.asarray(sims.render(one_ball(radius, sims.CIRCLE), resolution))[0, 0]
  assert (1.0 - disc[..., 1]).sum() * pixel**2 == pytest.approx(np.pi * radius**2, rel=0.01)


def test_the_ring_is_differentiable_in_its_state():
  def brightness(x):
    state = sims.balls(jnp.array([[[x, 5.0]]]), jnp.zeros((1, 1, 2)), jnp.ones((1, 1)))
    state = state.replace(shape=jnp.full((1, 1), sims.RING))
    frames = sims.render(sims.UniformMotion().rollout(state, 1), 32)
    return jnp.sum(frames[..., 1] * jnp.linspace(0.0, 1.0, 32))

  grad = jax.grad(brightness)(5.1)
  step = 1e-2
  finite = (brightness(5.1 + step) - brightness(5.1 - step)) / (2 * step)
  assert np.isfinite(grad) and grad == pytest.approx(float(finite), rel=0.05)


@pytest.mark.parametrize(
  "scene_name", ["uniform_motion", pytest.param("collision", marks=pytest.mark.slow)]
)
def test_every_law_scene_draws_rings_and_squares(scene_name):
  options = {"shapes": ("ring", "square")} if scene_name == "collision" else {"shape": "ring"}
  scene = sims.make(scene_name, num_frames=8, **options)
  state = scene.sample(jax.random.key(0), 4, "id")
  found = parsing.parse_attributes(sims.render(scene.rollout(state, 8), 64)[:, :1])
  expected = [sims.RING, sims.SQUARE] if scene_name == "collision" else [sims.RING]
  for slot, shape in enumerate(expected):
    assert (np.asarray(found.shape[:, 0, slot]) == shape).all()


def test_bad_shapes_are_one_line_errors():
  with pytest.raises(ValueError, match=r"unknown shape 'star'; valid: circle, square, ring"):
    sims.make("uniform_motion", shape="star")
  with pytest.raises(ValueError, match=r"unknown shape 'oval'"):
    sims.make("collision", shapes=("circle", "oval"))


# --- pairings --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(pairings.PAIRINGS))
def test_train_and_swapped_are_disjoint_and_cover_the_id_range_per_label(name):
  scene = sims.make("uniform_motion", pairing=name)
  assert scene.param_names == ("radius", "speed", "color", "shape")
  assert scene.splits == ("train", "swapped")
  train, swapped = (scene.space.regions[s] for s in ("train", "swapped"))
  drawn = {s: np.asarray(scene.sample_params(jax.random.key(1), 2000, s)) for s in scene.splits}
  assert train.contains(drawn["train"]).all() and not train.contains(drawn["swapped"]).any()
  assert swapped.contains(drawn["swapped"]).all() and not swapped.contains(drawn["train"]).any()
  # Per colour and shape the four combinations tile the in-distribution box [0.7, 1.4] x [1, 4].
  lo = np.concatenate([train.lo, swapped.lo])
  hi = np.concatenate([train.hi, swapped.hi])
  for labels in {tuple(row) for row in lo[:, 2:]}:
    mine = (lo[:, 2:] == labels).all(-1)
    assert np.prod(hi[mine, :2] - lo[mine, :2], axis=1).sum() == pytest.approx(0.7 * 3.0)
  # The two training combinations are equally likely.
  combos = {tuple(row) for row in drawn["train"][:, 2:]}
  for labels in combos:
    share = (drawn["train"][:, 2:] == labels).all(-1).mean()
    assert share == pytest.approx(1 / len(combos), abs=0.05)


def test_the_pairings_are_the_studys():
  color_velocity = pairings.PAIRINGS["color_velocity"]
  assert [(c.color, c.speed) for c in color_velocity.train] == [
    ("red", (1, 2.5)),
    ("blue", (2.5, 4)),
  ]
  assert [(c.color, c.speed) for c in color_velocity.swapped] == [
    ("blue", (1, 2.5)),
    ("red", (2.5, 4)),
  ]
  size_shape = pairings.PAIRINGS["size_shape"]
  assert [(c.shape, c.radius) for c in size_shape.train] == [
    ("circle", (0.7, 1.05)),
    ("square", (1.05, 1.4)),
  ]
  ring = pairings.PAIRINGS["color_ring"]
  assert [(c.color, c.shape) for c in ring.train] == [("blue", "circle"), ("red", "ring")]
  # The study's evaluation grids are 4 combinations; "swapped" holds two of them.
  study_cases = {
    "size_shape": 620,
    "velocity_shape": 704,
    "color_size": 1364,
    "color_velocity": 1584,
  }
  for name, cases in study_cases.items():
    assert len(sims.make("uniform_motion", pairing=name).eval_params("swapped")) == cases // 2


def test_a_pairing_scene_draws_its_combinations_and_recovers_their_labels():
  scene = sims.make("uniform_motion", pairing="color_velocity", num_frames=8)
  state = scene.sample(jax.random.key(2), 64, "swapped")
  params = np.asarray(scene.params_of(state))
  blue = params[:, 2] == 1
  assert blue.any() and (~blue).any()
  assert (params[blue, 1] <= 2.5).all() and (params[~blue, 1] >= 2.5).all()  # slow blue, fast red
  colors = np.asarray(state.color[:, 0])
  np.testing.assert_array_equal(colors[blue], np.tile(sims.BLUE, (blue.sum(), 1)))
  pool = scene.pool("300K")
  assert pool.size == 300_000 and scene.train_region.contains(np.asarray(pool.params)).all()
  assert sims.make("uniform_motion", pairing="color_ring").pool("300K").size == 600_000


def test_bad_pairings_are_one_line_errors():
  with pytest.raises(ValueError, match=r"unknown pairing 'color'; valid: color_shape, size_shape"):
    sims.make("uniform_motion", pairing="color")
  with pytest.raises(ValueError, match=r"pairing 'color_shape' sets the training set, colour"):
    sims.make("uniform_motion", pairing="color_shape", shape="square")
  with pytest.raises(ValueError, match=r"unknown split for scene 'uniform_motion' 'id'"):
    sims.make("uniform_motion", pairing="color_shape").sample(jax.random.key(0), 2, "id")


# --- the attribute parser --------------------------------------------------------------------


@pytest.mark.parametrize("resolution", [32, pytest.param(64, marks=pytest.mark.slow)])
def test_the_attribute_parser_is_exact_on_ground_truth(resolution):
  scene = sims.make("uniform_motion", pairing="color_ring", num_frames=8)
  for shape, color in itertools.product(range(len(sims.SHAPES)), range(2)):
    params = np.array(scene.sample_params(jax.random.key(shape), 48, "train"))
    params[:, 2:] = color, shape
    state = scene.place(jax.random.split(jax.random.key(3), 48), jnp.asarray(params))
    traj = scene.rollout(state, 8)
    found = parsing.parse_attributes(sims.render(traj, resolution))
    in_view = np.asarray(parsing.fully_in_view(traj.position, traj.radius))[..., 0]
    assert np.asarray(found.found[..., color])[in_view].all()
    assert not np.asarray(found.found[..., 1 - color]).any()
    assert (np.asarray(found.shape[..., color])[in_view] == shape).all()
    radius_error = np.abs(np.asarray(found.radius[..., color]) - params[:, None, 0])[in_view]
    assert radius_error.max() < (0.04 if resolution == 32 else 0.02)
    x = np.asarray(found.position[..., color, 0])
    both = in_view[:, 1:] & in_view[:, :-1]
    velocity = np.diff(x, axis=1) / sims.FRAME_DT
    mean_velocity = np.where(both, velocity, 0.0).sum(1) / both.sum(1)
    speed_error = np.abs(mean_velocity - params[:, 1])[both.any(1)]
    assert speed_error.max() < (0.1 if resolution == 32 else 0.05)  # the clip's mean speed


def test_the_attribute_parser_ignores_specks_away_from_the_object():
  """Generated frames carry faint specks; far from the object they must not change its shape."""
  for shape in range(len(sims.SHAPES)):
    frames = np.array(sims.render(one_ball(1.0, shape, sims.BLUE, position=(3.0, 3.0)), 32))
    frames[0, 0, 2:5, 28, :2] = 0.5  # three half-blue specks some 6 world units away
    found = parsing.parse_attributes(jnp.asarray(frames))
    assert int(found.shape[0, 0, 1]) == shape
    assert float(found.radius[0, 0, 1]) == pytest.approx(1.0, abs=0.05)
