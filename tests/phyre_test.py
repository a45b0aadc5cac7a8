"""The combinatorial (PHYRE-like) scene: templates, placement, physics and rendering.

The engine's step and the placement take seconds to tens of seconds to compile on a CPU, and
jit compiles again for every batch size, so the tests share one placement batch size (BATCH)
and one short rollout (a slice of the placement batch, few frames). Everything that simulates
is marked slow (a compile alone is 10-30 s on 2 cores): the short rollout's checks, its
agreement with stock jax2d and with Box2D, and the full-length checks over every template.
"""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import sims
from sims import phyre
from sims.rendering import body_coverage

HELD_OUT = {  # the study's held-out combinations (phyworld-facts.md 5.1)
  10060: ("dynamic_ball_1", "dynamic_bar", "dynamic_standing_bars", "static_bar"),
  10061: ("dynamic_ball_1", "dynamic_ball_2", "static_ball", "dynamic_standing_bars"),
  10062: ("dynamic_ball_1", "dynamic_ball_2", "static_ball", "dynamic_standingsticks"),
  10063: ("dynamic_ball_1", "dynamic_ball_2", "dynamic_standing_bars", "dynamic_standingsticks"),
  10064: ("dynamic_ball_1", "static_ball", "dynamic_standing_bars", "static_bar"),
  10065: ("static_ball", "dynamic_standing_bars", "static_bar", "dynamic_jar"),
  10066: ("dynamic_ball_2", "dynamic_bar", "dynamic_jar", "dynamic_standingsticks"),
  10067: ("dynamic_ball_1", "dynamic_ball_2", "static_bar", "dynamic_standingsticks"),
  10068: ("dynamic_ball_2", "static_ball", "dynamic_bar", "dynamic_standingsticks"),
  10069: ("dynamic_ball_1", "dynamic_bar", "dynamic_jar", "dynamic_standingsticks"),
}
SIX = {  # the study's 6-template set, from its generator's comments
  10003: ("dynamic_standing_bars", "static_bar", "dynamic_jar", "dynamic_standingsticks"),
  10005: ("static_ball", "dynamic_bar", "dynamic_standing_bars", "static_bar"),
  10016: ("static_ball", "dynamic_bar", "dynamic_jar", "dynamic_standingsticks"),
  10023: ("dynamic_ball_1", "dynamic_ball_2", "static_ball", "dynamic_bar"),
  10024: ("dynamic_ball_1", "dynamic_ball_2", "dynamic_standing_bars", "static_bar"),
  10053: ("dynamic_ball_1", "dynamic_ball_2", "dynamic_jar", "dynamic_standingsticks"),
}
TASKS = 6  # placements per template in the shared batch
BATCH = 70 * TASKS  # the one batch size that placement is compiled for
PENETRATION = (
  0.1  # world units: 5 scene pixels; jax2d has soft contacts and no continuous collision
)
# Largest distance (world units) of a slot from Box2D's in the short rollout: measured 0.0018 at
# frame 1 (free fall; the two engines integrate alike) and 0.013 by frame 4 (first contacts).
BOX2D_FREE_FLIGHT = 0.005
BOX2D_AFTER_CONTACT = 0.05
RES = 128
PIXEL = sims.WORLD_SIZE / RES
separations = jax.jit(phyre.separations)
wall_penetration = jax.jit(phyre.wall_penetration)


def one_body_kind(n):
  """Which welded group (object) each slot belongs to: its own slot, or the jar / the sticks."""
  group = np.arange(n)
  for kind in ("dynamic_jar", "dynamic_standingsticks"):
    group[list(phyre.KIND_SLOTS[kind])] = phyre.KIND_SLOTS[kind][0]
  return group


def overlaps(position, angle, shape, size, active):
  """Largest penetration [...] between active bodies of different objects, and into the walls."""
  gap = np.asarray(separations(position, angle, shape, size))
  group = one_body_kind(active.shape[-1])
  pairs = active[..., :, None] & active[..., None, :] & (group[:, None] != group[None, :])
  between = np.where(pairs, -gap, -np.inf).max((-1, -2))
  walls = np.asarray(wall_penetration(position, angle, shape, size))
  walls = np.where(active, walls, 0.0)
  return between, walls.max(-1)


@pytest.fixture(scope="module")
def scene():
  return sims.make("phyre")


@pytest.fixture(scope="module")
def placed(scene):
  """TASKS placements of every template, with red balls from fresh keys."""
  templates = np.repeat(np.asarray(sorted(phyre.TEMPLATE_KINDS)), TASKS)
  params = np.stack([templates, np.tile(np.arange(TASKS), 70)], -1).astype(np.int32)
  keys = jax.random.split(jax.random.key(3), len(params))
  return params, scene.place(keys, params)


@pytest.fixture(scope="module")
def four_scenes(placed):
  """Four placed scenes that together hold all 8 kinds, and a still 2-frame trajectory of them."""
  params, state = placed
  rows = [np.nonzero(params[:, 0] == template)[0][0] for template in (10003, 10023, 10005, 10053)]
  state = jax.tree.map(lambda x: x[np.asarray(rows)], state)
  still = sims.BodyTrajectory(
    *(jnp.repeat(x[:, None], 2, 1) for x in (state.position, state.angle, state.velocity)),
    jnp.repeat(state.angular_velocity[:, None], 2, 1),
    state.shape,
    state.size,
    state.color,
    state.dynamic,
    state.active,
  )
  return state, still


@pytest.fixture(scope="module")
def short_rollout(scene, four_scenes):
  """A few frames of the four scenes (compiling jax2d's step takes ~30 s on 2 cores)."""
  state, _ = four_scenes
  return state, scene.rollout(state, num_frames=5)


def test_templates_are_the_studys():
  assert len(phyre.TEMPLATE_KINDS) == 70
  assert sorted(phyre.TEMPLATE_KINDS) == list(range(10000, 10070))
  combos = {tuple(sorted(kinds)) for kinds in phyre.TEMPLATE_KINDS.values()}
  assert combos == {tuple(sorted(c)) for c in itertools.combinations(phyre.KINDS, 4)}
  for template, kinds in {**HELD_OUT, **SIX}.items():
    assert phyre.TEMPLATE_KINDS[template] == kinds
  assert tuple(HELD_OUT) == phyre.HELD_OUT_TEMPLATES
  assert phyre.TEMPLATE_SUBSETS["6"] == tuple(SIX)
  assert phyre.TEMPLATE_SUBSETS["30"] == tuple(range(10000, 10059, 2))
  assert len(phyre.TEMPLATE_SUBSETS["60"]) == 60 and 10059 in phyre.TEMPLATE_SUBSETS["60"]


def test_splits_and_subsets(scene):
  assert scene.splits == ("train", "in_template", "out_of_template")
  assert scene.templates("train") == scene.templates("in_template") == phyre.TRAIN_TEMPLATES
  assert scene.templates("out_of_template") == tuple(range(10060, 10070))
  six = sims.make("phyre", templates="6")
  assert six.templates("in_template") == tuple(SIX)
  params = np.asarray(six.sample_params(jax.random.key(0), 600, "train"))
  assert set(params[:, 0]) == set(SIX)
  assert params[:, 1].min() == 0 and params[:, 1].max() == phyre.TASKS_PER_TEMPLATE - 1
  held = np.asarray(six.sample_params(jax.random.key(0), 600, "out_of_template"))
  assert set(held[:, 0]) == set(HELD_OUT)
  thirty = np.asarray(scene.sample_params(jax.random.key(1), 600, "train", templates="30"))
  assert set(thirty[:, 0]) == set(range(10000, 10060, 2))
  mine = np.asarray(scene.sample_params(jax.random.key(1), 600, "train", templates=[10007]))
  assert set(mine[:, 0]) == {10007}
  pool = scene.pool_params("6")
  assert pool.shape == (6 * 100 * 990, 2) and pool.dtype == np.int32
  assert len(np.unique(pool, axis=0)) == 600
  assert scene.eval_params("out_of_template", points=3).shape == (30, 2)


@pytest.mark.parametrize(
  "call, message",
  [
    (lambda s: s.sample(jax.random.key(0), 2, "validation"), "unknown split"),
    (lambda s: s.sample(jax.random.key(0), 2, "train", templates="7"), "unknown template subset"),
    (lambda s: s.sample(jax.random.key(0), 2, "train", templates=[10065]), "10065"),
    (lambda s: s.sample(jax.random.key(0), 2, "out_of_template", templates="6"), "10003"),
    (lambda s: s.sample(jax.random.key(0), 2, "train", templates=[]), "empty"),
    (lambda s: s.pool("100"), "unknown dataset_size"),
    (lambda s: sims.make("phyre", templates=[99]), "99"),
    (lambda s: sims.make("phyre", tasks_per_template=0), "tasks_per_template"),
  ],
)
def test_bad_names_raise_one_line_errors(scene, call, message):
  with pytest.raises(ValueError, match=message) as error:
    call(scene)
  assert "\n" not in str(error.value)


def test_every_template_has_the_red_ball_and_exactly_its_kinds(placed):
  params, state = placed
  active = np.asarray(state.active)
  for row, (template, _) in enumerate(params):
    for kind, slots in phyre.KIND_SLOTS.items():
      wanted = kind == phyre.RED_BALL or kind in phyre.TEMPLATE_KINDS[template]
      assert active[row, list(slots)].any() == wanted, (template, kind)
  np.testing.assert_array_equal(state.template, params[:, 0])
  counts = active[:, list(phyre.KIND_SLOTS["static_ball"])].sum(1)
  with_balls = np.asarray([("static_ball" in phyre.TEMPLATE_KINDS[t]) for t in params[:, 0]])
  assert counts[with_balls].min() >= 2 and counts[with_balls].max() <= 7


def test_nothing_overlaps_at_t0_and_everything_is_inside(placed):
  _, state = placed
  between, walls = overlaps(
    state.position, state.angle, state.shape, state.size, np.asarray(state.active)
  )
  assert between.max() <= -phyre.MIN_GAP + 1e-5  # every pair is at least MIN_GAP apart
  assert walls.max() <= 1e-5


def test_placement_follows_the_studys_builders(placed):
  _, state = placed
  active, size, position = (np.asarray(x) for x in (state.active, state.size, state.position))
  red = phyre.KIND_SLOTS[phyre.RED_BALL][0]
  radius = size[:, red, 0] / phyre.PIXEL  # in scene pixels: 2 + 62 * (5 r), r in [0.02, 0.2]
  assert radius.min() >= 2 + 62 * 0.1 - 1e-3 and radius.max() <= 2 + 62 * 1.0 + 1e-3
  ball = phyre.KIND_SLOTS["dynamic_ball_1"][0]
  ball_radius = size[active[:, ball], ball, 0] / phyre.PIXEL  # int(s * 256) + 0.5, s 0.06-0.12
  np.testing.assert_allclose(ball_radius % 1.0, 0.5, atol=1e-3)
  assert ball_radius.min() >= 15.5 - 1e-3 and ball_radius.max() <= 31.5 + 1e-3
  bars = list(phyre.KIND_SLOTS["dynamic_standing_bars"])
  standing = active[:, bars]
  np.testing.assert_allclose(  # upright, on the floor, 2.0 / 2.5 / 3.0 / 3.5 tall
    (position[:, bars, 1] - size[:, bars, 0])[standing], 0.0, atol=1e-5
  )
  four = 2 * size[:, bars, 0][standing.all(1)]
  assert len(four) > 0
  np.testing.assert_allclose(four, np.broadcast_to([2.0, 2.5, 3.0, 3.5], four.shape), rtol=1e-6)
  assert np.all(np.asarray(state.velocity) == 0) and np.all(np.asarray(state.angular_velocity) == 0)


def test_same_task_same_objects_other_red_ball(scene):
  params = np.tile(np.asarray([[10016, 4], [10016, 4], [10016, 5]], np.int32), (BATCH // 3, 1))
  keys = jax.random.split(jax.random.key(11), BATCH)
  state = scene.place(keys, params)
  objects = np.asarray(state.position[:3, 1:])
  np.testing.assert_array_equal(objects[0], objects[1])  # one task: identical objects
  assert np.abs(objects[0] - objects[2]).max() > 0.1  # another task: other objects
  assert np.abs(state.position[0, 0] - state.position[1, 0]).max() > 1e-3  # other trials


def test_sampling_is_deterministic_and_splits_differ(scene):
  key = jax.random.key(5)
  first, again = scene.sample(key, BATCH, "train"), scene.sample(key, BATCH, "train")
  for a, b in zip(jax.tree.leaves(first), jax.tree.leaves(again), strict=True):
    np.testing.assert_array_equal(a, b)
  other = scene.sample(key, BATCH, "in_template")
  assert np.abs(np.asarray(first.position) - np.asarray(other.position)).max() > 0.1
  held = scene.sample(key, BATCH, "out_of_template")
  assert set(np.asarray(held.template)) == set(HELD_OUT)
  # Under jit / vmap (shapes only: compiling another batch size would take long).
  shapes = jax.eval_shape(jax.jit(lambda k: scene.sample(k, 5, "train")), key)
  assert shapes.position.shape == (5, phyre.NUM_SLOTS, 2) and shapes.size.shape == (5, 21, 2)
  assert shapes.template.shape == (5,) and shapes.active.dtype == jnp.bool_
  per_key = jax.vmap(lambda k: scene.sample(k, 2, "train").position)
  assert jax.eval_shape(per_key, jax.random.split(key, 3)).shape == (3, 2, 21, 2)


def test_separations_are_exact_for_discs_and_rotated_boxes():
  # A unit square turned 45 degrees (corner at x = 1 + sqrt(0.5)) next to a disc and a box.
  position = jnp.asarray([[1.0, 1.0], [2.9, 1.0], [1.0, 2.8], [3.2, 1.0]])
  angle = jnp.asarray([jnp.pi / 4, 0.0, 0.0, jnp.pi / 2])
  shape = jnp.asarray([1, 0, 1, 1])
  size = jnp.asarray([[0.5, 0.5], [0.4, 0.4], [1.0, 0.3], [0.2, 0.5]])
  gap = np.asarray(separations(position, angle, shape, size))
  corner = np.sqrt(0.5)
  np.testing.assert_allclose(gap[0, 1], 1.9 - corner - 0.4, atol=1e-6)  # corner to disc
  np.testing.assert_allclose(gap[1, 0], gap[0, 1], atol=1e-6)
  np.testing.assert_allclose(gap[0, 2], 1.8 - corner - 0.3, atol=1e-6)  # corner to box face
  np.testing.assert_allclose(gap[1, 3], 3.2 - 0.5 - 2.9 - 0.4, atol=1e-6)  # box turned upright
  moved = position.at[1].set([1.0 + corner + 0.3, 1.0])  # disc 0.1 into the corner
  np.testing.assert_allclose(separations(moved, angle, shape, size)[0, 1], -0.1, atol=1e-6)
  np.testing.assert_allclose(
    wall_penetration(position, angle, shape, size), [0, 0, 0, 0], atol=1e-6
  )
  outside = wall_penetration(jnp.asarray([[0.3, 5.0]]), angle[:1], shape[:1], size[:1])
  np.testing.assert_allclose(outside, [corner - 0.3], atol=1e-6)


def test_2d_cross_shim_matches_the_3d_cross_and_is_off_when_not_needed():
  a, b = jnp.asarray([[1.0, 2.0], [-3.0, 0.5]]), jnp.asarray([[4.0, -1.0], [2.0, 2.0]])
  shim = phyre.engine._NumpyWith2DCross("jax.numpy")
  pad = jnp.zeros((2, 1))
  z = jnp.cross(jnp.concatenate([a, pad], -1), jnp.concatenate([b, pad], -1))[:, 2]
  np.testing.assert_allclose(shim.cross(a, b), z)
  np.testing.assert_allclose(shim.cross(a[0], b[0]), -9.0)
  np.testing.assert_allclose(shim.cross(jnp.eye(3)[0], jnp.eye(3)[1]), [0.0, 0.0, 1.0])
  assert shim.sin is jnp.sin
  patched = not phyre.engine._cross_takes_2d()
  for module in phyre.engine._JAX2D_MODULES_WITH_CROSS:
    assert (module.jnp is jnp) != patched


@pytest.mark.parametrize("angle", [0.0, 0.3, np.pi / 4, 1.2])
def test_rotated_box_coverage_equals_its_area(angle):
  # The smoothstep edge is off by at most 0.1 px per pixel row it crosses, 1% of this box.
  centre, size = np.asarray([5.05, 4.93]), jnp.asarray([2.0, 1.2])
  cover = body_coverage(jnp.asarray(centre), jnp.asarray(angle), jnp.asarray(1), size, RES)
  np.testing.assert_allclose(float(cover.sum()) * PIXEL**2, 4 * 2.0 * 1.2, rtol=0.01)
  assert float(cover[RES // 2, RES // 2]) == 1.0  # inside, and just past either end: exact
  for reach in (1.85, 2.15):  # 2 px inside and outside the end
    end = centre + reach * np.asarray([np.cos(angle), np.sin(angle)])
    assert float(cover[int(RES - end[1] / PIXEL), int(end[0] / PIXEL)]) == (reach < 2)


def test_rendered_colours_are_exact_and_inactive_slots_invisible(four_scenes):
  state, traj = four_scenes
  frames = np.asarray(sims.render(traj, RES))
  assert frames.shape == (4, 2, RES, RES, 3) and frames.dtype == np.float32
  first = frames[:, 0]
  tested = 0
  for example in range(4):  # the pixel at each body's centre shows its colour exactly
    for slot in np.nonzero(np.asarray(state.active[example]))[0]:
      if state.size[example, slot].min() < 1.25 * PIXEL:  # too thin for a fully covered pixel
        continue
      x, y = np.asarray(state.position[example, slot])
      pixel = first[example, int(RES - y / PIXEL), int(x / PIXEL)]
      np.testing.assert_array_equal(pixel, np.asarray(state.color[example, slot], np.float32))
      tested += 1
  assert tested >= 12
  red, gray = np.asarray(phyre.RED, np.float32), np.asarray(phyre.GRAY, np.float32)
  assert (first == red).all(-1).any((1, 2)).all()  # every scene shows its red ball
  assert (first == gray).all(-1).any((1, 2)).all()
  np.testing.assert_array_equal(first[:, 0, 0], 1.0)  # white background
  hidden = traj.replace(active=jnp.zeros_like(traj.active))
  np.testing.assert_array_equal(sims.render(hidden, 16), 1.0)


def test_render_gradients_are_finite_and_nonzero():
  """A disc, a turned box and an inactive (size 0) slot: finite, non-zero gradients."""
  traj = sims.BodyTrajectory(
    position=jnp.asarray([[[[3.0, 4.0], [6.0, 5.0], [0.0, 0.0]]]]),
    angle=jnp.asarray([[[0.0, 0.7, 0.0]]]),
    velocity=jnp.zeros((1, 1, 3, 2)),
    angular_velocity=jnp.zeros((1, 1, 3)),
    shape=jnp.asarray([[0, 1, 0]]),
    size=jnp.asarray([[[1.0, 1.0], [2.0, 0.5], [0.0, 0.0]]]),
    color=jnp.asarray([[phyre.RED, phyre.GRAY, phyre.BLACK]]),
    dynamic=jnp.ones((1, 3), bool),
    active=jnp.asarray([[True, True, False]]),
  )
  weights = jax.random.normal(jax.random.key(0), (1, 1, 32, 32, 3))

  def loss(position, angle, size):
    moved = traj.replace(position=position, angle=angle, size=size)
    return jnp.sum(sims.render(moved, 32) * weights)

  grads = jax.grad(loss, argnums=(0, 1, 2))(traj.position, traj.angle, traj.size)
  for grad in grads:
    assert np.all(np.isfinite(grad))
  position, angle, size = (np.asarray(g) for g in grads)
  assert np.abs(position[0, 0, :2]).min() > 0.01 and abs(angle[0, 0, 1]) > 0.01
  assert np.abs(size[0, 0, 0]) > 0.01 and np.abs(size[0, 1]).min() > 0.01
  np.testing.assert_array_equal(position[0, 0, 2], 0.0)  # the inactive slot has no influence
  np.testing.assert_array_equal(size[0, 2], 0.0)


@pytest.mark.slow
def test_short_rollout_shapes_rest_statics_and_contacts(short_rollout):
  state, traj = short_rollout
  assert traj.position.shape == (4, 5, phyre.NUM_SLOTS, 2) and traj.angle.shape == (4, 5, 21)
  np.testing.assert_array_equal(traj.position[:, 0], state.position)  # frame 0 is the state
  np.testing.assert_array_equal(traj.velocity[:, 0], 0.0)  # at rest
  active, dynamic = np.asarray(traj.active), np.asarray(traj.dynamic)
  static = active & ~dynamic
  assert static.any()
  moved = np.abs(np.asarray(traj.position - traj.position[:, :1])).max(-1)
  assert moved[np.broadcast_to(static[:, None], moved.shape)].max() == 0.0
  assert moved[:, -1][active & dynamic].max() > 0.5  # things fall (g = 1.15 over 1.3 s)
  between, walls = overlaps(
    jnp.moveaxis(traj.position, 1, 0),
    jnp.moveaxis(traj.angle, 1, 0),
    traj.shape,
    traj.size,
    active,
  )
  assert between.max() <= PENETRATION and walls.max() <= PENETRATION


@pytest.mark.slow
def test_rollout_is_deterministic(scene, short_rollout):
  state, traj = short_rollout
  again = scene.rollout(state, num_frames=5)
  for a, b in zip(jax.tree.leaves(traj), jax.tree.leaves(again), strict=True):
    np.testing.assert_array_equal(a, b)


@pytest.mark.slow
def test_engine_agrees_with_stock_jax2d(short_rollout):
  """Same contact model, fewer pairs and iterations: within 0.01 world units over 5 frames."""
  state, traj = short_rollout
  stock = phyre.simulate_with_jax2d(state, 5)
  assert np.abs(np.asarray(traj.position - stock.position)).max() < 0.01
  assert np.abs(np.asarray(traj.angle - stock.angle)).max() < 0.01


@pytest.mark.slow
def test_engine_follows_box2d_until_the_first_contacts(short_rollout):
  """PHYRE's engine on the same scenes: the falling bodies agree while they fly freely."""
  from benchmarks.phyre_throughput import box2d_rollout

  state, traj = short_rollout
  fields = ("position", "angle", "shape", "size", "color", "dynamic", "active")
  for video in range(len(traj.position)):
    example = {name: np.asarray(getattr(state, name)[video]) for name in fields}
    position, _ = box2d_rollout(example, 5)
    error = np.abs(np.asarray(traj.position[video]) - position).max((-1, -2))
    assert error[1] < BOX2D_FREE_FLIGHT and error.max() < BOX2D_AFTER_CONTACT, error


def test_quad_manifolds_are_jax2ds():
  """The gather-free box-box manifold equals jax2d's on random overlapping and apart boxes."""
  from jax2d.collision import generate_manifolds_polygon_polygon
  from jax2d.sim_state import CollisionManifold, RigidBody

  from sims.phyre.contacts import quad_quad_manifolds

  n = 2000
  keys = jax.random.split(jax.random.key(0), 6)
  half = jax.random.uniform(keys[0], (2, n, 1, 2), minval=0.05, maxval=1.0)
  corners = jnp.asarray([[-1.0, 1.0], [1.0, 1.0], [1.0, -1.0], [-1.0, -1.0]])

  def box(i):
    return RigidBody(
      position=jax.random.uniform(keys[1], (2, n, 2), maxval=1.5)[i],
      rotation=jax.random.uniform(keys[2], (2, n), minval=-4.0, maxval=4.0)[i],
      velocity=jax.random.normal(keys[3], (2, n, 2))[i],
      angular_velocity=jax.random.normal(keys[4], (2, n))[i],
      inverse_mass=jnp.ones(n),
      inverse_inertia=jnp.ones(n),
      friction=jnp.ones(n),
      restitution=jnp.full(n, 0.2 + 0.1 * i),
      collision_mode=jnp.ones(n, jnp.int32),
      active=jnp.ones(n, bool),
      n_vertices=jnp.full(n, 4, jnp.int32),
      vertices=corners * half[i],
      radius=jnp.zeros(n),
    )

  warm = CollisionManifold(
    normal=jnp.zeros((n, 2, 2)),
    penetration=jnp.zeros((n, 2)),
    collision_point=jnp.zeros((n, 2, 2)),
    active=jax.random.bernoulli(keys[5], 0.5, (n, 2)),
    acc_impulse_normal=jnp.ones((n, 2)),
    acc_impulse_tangent=-jnp.ones((n, 2)),
    restitution_velocity_target=jnp.zeros((n, 2)),
  )
  a, b = box(0), box(1)
  expected = jax.jit(jax.vmap(generate_manifolds_polygon_polygon))(a, b, warm)
  got = jax.jit(jax.vmap(quad_quad_manifolds))(a, b, warm)
  assert 0.2 * n < int(expected.active[:, 0].sum()) < 0.8 * n  # both cases are common
  assert int(expected.active[:, 1].sum()) > 0.1 * n  # and two-point contacts
  np.testing.assert_array_equal(got.active, expected.active)
  for name in ("normal", "penetration", "collision_point", "restitution_velocity_target"):
    np.testing.assert_allclose(getattr(got, name), getattr(expected, name), atol=2e-5)
  for name in ("acc_impulse_normal", "acc_impulse_tangent"):
    np.testing.assert_array_equal(getattr(got, name), getattr(expected, name))


def test_pair_tables_hold_only_pairs_that_can_touch():
  """Walls, static balls and the static bar never meet each other; welded parts never meet."""
  polygon_polygon, circle_polygon, circle_circle = phyre.engine.PAIR_TABLES
  assert (len(polygon_polygon), len(circle_polygon), len(circle_circle)) == (91, 115, 24)
  slot = phyre.engine._BODY_SLOT
  dynamic = (slot >= 0) & phyre.SLOT_DYNAMIC[np.maximum(slot, 0)]
  every = np.concatenate(phyre.engine.PAIR_TABLES)
  assert dynamic[every].any(-1).all()
  for group in (phyre.KIND_SLOTS["dynamic_jar"], phyre.KIND_SLOTS["dynamic_standingsticks"]):
    assert not np.isin(slot[every], group).all(-1).any()
  assert len({tuple(sorted(pair)) for pair in every.tolist()}) == len(every)  # no pair twice


@pytest.fixture(scope="module")
def every_template(scene):
  """One placement of each of the 70 templates."""
  params = np.stack([np.arange(10000, 10070), np.arange(70) % 100], -1).astype(np.int32)
  return scene.place(jax.random.split(jax.random.key(2), 70), params)


@pytest.mark.slow
def test_contacts_stay_within_the_engines_capacities(every_template):
  """No step of 32 frames of any template finds more candidate pairs or contact points than the
  engine keeps (the surplus would be ignored)."""
  load = np.asarray(phyre.contact_load(every_template, sims.NUM_FRAMES)).max(0)
  capacity = np.array([*phyre.CANDIDATES, phyre.CONTACT_POINTS])
  assert np.all(load <= capacity), (load, capacity)


@pytest.mark.slow
def test_full_rollouts_are_stable_for_every_template(scene, every_template):
  """32 frames (10.7 s) of every template: no tunnelling, no escape, rigid welds, no energy."""
  traj = scene.rollout(every_template)
  active = np.asarray(traj.active)
  between, walls = overlaps(
    jnp.moveaxis(traj.position, 1, 0), jnp.moveaxis(traj.angle, 1, 0), traj.shape, traj.size, active
  )
  assert between.max() <= PENETRATION and walls.max() <= PENETRATION
  position, angle = np.asarray(traj.position), np.asarray(traj.angle)
  static = active & ~np.asarray(traj.dynamic)
  drift = np.abs(position - position[:, :1])[np.broadcast_to(static[:, None], position.shape[:3])]
  assert drift.max() == 0.0
  # Welded parts keep their relative poses.
  for kind in ("dynamic_jar", "dynamic_standingsticks"):
    base, *rest = phyre.KIND_SLOTS[kind]
    has = active[:, base]
    for part in rest:
      offset = position[:, :, part] - position[:, :, base]
      c, s = np.cos(-angle[:, :, base]), np.sin(-angle[:, :, base])
      local = np.stack(
        [c * offset[..., 0] - s * offset[..., 1], s * offset[..., 0] + c * offset[..., 1]], -1
      )
      assert np.abs(local - local[:, :1])[has].max() < 0.05
      turn = angle[:, :, part] - angle[:, :, base]
      assert np.abs(turn - turn[:, :1])[has].max() < 0.05
  energy = np.asarray(phyre.mechanical_energy(traj))
  assert np.diff(energy, axis=1).max() <= 0.05 * np.median(energy[:, 0])
  assert np.median(energy[:, -1] / energy[:, 0]) < 0.5  # friction and restitution 0.2 dissipate
