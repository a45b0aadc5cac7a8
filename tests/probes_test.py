"""The mechanism probes (`experiments.probes`): their numbers on hand-made cases, and their run
inside the evaluation."""

import dataclasses
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from etils import epath
from flax import nnx

import sims
from experiments import compare, evaluate, probes, train, velocity_probe
from experiments.configs.mechanisms import (
  ambiguity,
  attributes,
  collision_hole,
  composition,
  memorization,
  velocity_gap,
)
from experiments.probes import attributes as attribute_probe
from experiments.probes import reversal
from experiments.velocity_probe import CaseErrors


def fake_batch(params, velocity_x, along_sign=None):
  """A batch whose generated x velocity per case is `velocity_x`, frames tagged by case."""
  n = len(params)
  vx = np.asarray(params, float)[:, -1]  # the speed (the last parameter of one-ball scenes)
  sign = np.ones(n) if along_sign is None else np.asarray(along_sign)
  velocity = np.zeros((n, 8, 1, 2), np.float32)
  velocity[:, 0, 0, 0] = sign * vx
  traj = sims.Trajectory(
    position=jnp.zeros((n, 8, 1, 2)),
    velocity=jnp.asarray(velocity),
    radius=jnp.ones((n, 1)),
    color=jnp.zeros((n, 1, 3)),
    shape=jnp.zeros((n, 1), jnp.int32),
  )
  frames = np.zeros((n, 8, 4, 4, 3), np.float32) + np.arange(n)[:, None, None, None, None]
  nan = np.full(n, np.nan)
  errors = CaseErrors(
    params=np.asarray(params, np.float32),
    level=np.full(n, "sweep"),
    velocity_error=nan,
    velocity_error_mean_then_abs=nan,
    floor=nan,
    floor_mean_then_abs=nan,
    velocity_error_study=np.abs(np.asarray(velocity_x) - sign * vx),
    floor_study=nan,
    velocity_study=np.asarray(velocity_x, float)[:, None],
  )
  return probes.Batch("sweep", np.arange(n), traj, frames, frames * 0.5, errors.params, errors)


def test_speed_gap_separates_training_and_gap_cases_and_finds_the_pulled_one(tmp_path):
  config = velocity_gap.get_config("panel=1")
  scene = train.make_experiment(config).scene
  (probe,) = probes.make(["speed_gap"], scene, config)
  speeds = np.array([1.1, 2.0, 3.0, 3.9])
  # Training speeds generated 0.1 off; gap speeds pulled to the nearest training speed.
  generated = np.array([1.2, 1.25, 3.75, 3.8])
  probe.update(fake_batch(np.stack([np.full(4, 1.0), speeds], -1), generated))
  section = probe.finish(epath.Path(tmp_path), "report")
  numbers = section.numbers
  assert numbers["train_count"] == 2 and numbers["gap_count"] == 2
  assert numbers["train_error"] == pytest.approx(0.1, abs=1e-6)
  assert numbers["gap_to_train"] == pytest.approx(7.5, abs=1e-4)
  assert numbers["gap_error"] == pytest.approx((0.75 + 0.75) / 2)
  assert numbers["study"] == {"train_error": 0.023, "gap_error": 0.449}
  assert numbers["train_speeds"] == [[1.0, 1.25], [3.75, 4.0]]
  assert probe.pulled.score == pytest.approx(0.75)
  assert (tmp_path / "speed_gap.png").exists() and (tmp_path / "speed_gap_pulled.gif").exists()
  assert "| ours | 0.100 (n = 2) | 0.750 (n = 2) | 7.50 |" in section.lines
  # A gap case generated away from the training speeds is not "pulled".
  (probe,) = probes.make(["speed_gap"], scene, config)
  probe.update(fake_batch([[1.0, 2.0]], [2.3]))
  assert probe.pulled.score == pytest.approx(-0.3)


def test_reversal_counts_balls_that_turn_back_but_not_balls_that_stop(tmp_path):
  config = memorization.get_config("flip=true")
  scene = train.make_experiment(config).scene
  (probe,) = probes.make(["reversal"], scene, config)
  speeds = np.array([1.0, 1.5, 2.0, 2.4, 1.2])
  # Context moving right (+) or left (-); generated x velocity: continues, reverses, stops.
  sign = np.array([1, -1, 1, -1, 1])
  generated_x = np.array([2.6, 1.5, -1.8, -0.1, np.nan])  # case 3 stops (0.1 < 0.25 back)
  probe.update(fake_batch(np.stack([np.ones(5), speeds], -1), generated_x, sign))
  numbers = probe.finish(epath.Path(tmp_path), "report").numbers
  assert numbers["count"] == 4 and numbers["cases"] == 5
  assert numbers["reversed"] == 2 and numbers["reversal_rate"] == pytest.approx(0.5)
  assert numbers["mean_generated_speed"] == pytest.approx((2.6 + 1.5 + 1.8 + 0.1) / 4)
  assert numbers["in_training_range_rate"] == pytest.approx(0.25)  # only 2.6 is in [2.5, 4]
  assert numbers["train_speeds"] == [2.5, 4.0]
  assert numbers["reversed_intact"] == 0 and numbers["intact_rate"] == 0.0  # no ball drawn
  assert (tmp_path / "reversal.png").exists() and (tmp_path / "reversal_case.gif").exists()


@pytest.mark.slow
def test_a_ball_is_intact_unless_it_vanishes_or_changes_size():
  scene = sims.make("uniform_motion", num_frames=8)
  traj = scene.rollout(scene.sample(jax.random.key(0), 4, "id"), 8)
  frames = np.asarray(sims.render(traj, 32))
  in_view = np.asarray(sims.parsing.fully_in_view(traj.position, traj.radius))[..., 0]
  faded = frames.copy()
  grown = np.array(sims.render(traj.replace(radius=traj.radius * 1.6), 32))
  faded[1, 5] = 1.0  # the ball of video 1 vanishes in a generated frame
  grown[:, :3] = frames[:, :3]  # the context as it was, the generated balls 60% larger
  assert reversal.ball_intact(frames, in_view, 3).all()
  np.testing.assert_array_equal(reversal.ball_intact(faded, in_view, 3), [1, 0, 1, 1])
  assert not reversal.ball_intact(grown, in_view, 3).any()


@pytest.mark.parametrize(
  "preset, cases, categories",
  [
    # (r1, r2, v1, v2): training, in the hole (inside the hull), v1 below the range (outside).
    ("square_2_3", [[1, 1, 1.5, 1.5], [1, 1, 2.5, 2.5], [1, 1, 0.5, 2.5]], [0, 1, 2]),
    # The L-shaped set's hull is cut by v1 + v2 <= 5.25: (2, 2.5) inside, (3, 3) outside.
    ("half", [[1, 1, 1.1, 3.0], [1, 1, 2.0, 2.5], [1, 1, 3.0, 3.0]], [0, 1, 2]),
    ("mass", [[1.0, 1.0, 2.0, 2.0], [0.6, 1.0, 2.0, 2.0], [1.0, 1.0, 4.5, 2.0]], [1, 0, 2]),
  ],
)
def test_collision_hole_tells_the_convex_hull_from_the_outside(tmp_path, preset, cases, categories):
  config = collision_hole.get_config(f"hole={preset}")
  scene = train.make_experiment(config).scene
  (probe,) = probes.make(["collision_hole"], scene, config)
  np.testing.assert_array_equal(probe.categorize(np.asarray(cases, float)), categories)
  params = np.asarray(cases, np.float32)
  batch = fake_batch(params, np.zeros(3))
  errors = CaseErrors(
    **{**batch.errors.__dict__, "velocity_error_study": np.array([0.1, 0.2, 0.4])}
  )
  batch = dataclasses.replace(batch, errors=errors)
  probe.update(batch)
  numbers = probe.finish(epath.Path(tmp_path), "report").numbers
  errors = {0: 0.1, 1: 0.2, 2: 0.4}
  names = ("training", "inside_hull", "outside_hull")
  for case, category in enumerate(categories):
    assert numbers[f"{names[category]}_error"] == pytest.approx(errors[case])
  assert (tmp_path / "collision_hole.png").exists()
  expected_plane = ["radius1", "radius2"] if preset == "mass" else ["speed1", "speed2"]
  assert numbers["plane"] == expected_plane


def test_unknown_or_unfit_probes_are_one_line_errors():
  uniform = sims.make("uniform_motion")
  with pytest.raises(ValueError, match=r"unknown eval.probes entry 'gaps'; valid: speed_gap"):
    probes.check(["gaps"], uniform)
  with pytest.raises(ValueError, match=r"probe 'collision_hole' needs the scene 'collision'"):
    probes.check(["collision_hole"], uniform)
  with pytest.raises(ValueError, match=r"probe 'speed_gap' needs a one-ball scene"):
    probes.check(["speed_gap"], sims.make("collision"))
  with pytest.raises(ValueError, match=r"probe 'composition' needs the scene 'composition'"):
    probes.check(["composition"], uniform)
  with pytest.raises(ValueError, match=r"probe 'attributes' needs a scene made with pairing="):
    probes.check(["attributes"], uniform)


@pytest.mark.parametrize(
  "module, arg, probe",
  [
    pytest.param(velocity_gap, "panel=5", "speed_gap", marks=pytest.mark.slow),
    pytest.param(memorization, "flip=true", "reversal", marks=pytest.mark.slow),
    pytest.param(attributes, "pairing=color_velocity", "attributes", marks=pytest.mark.slow),
    pytest.param(composition, "kind=spatial", "composition", marks=pytest.mark.slow),
  ],
)
def test_a_mechanism_config_evaluates_with_its_probe(tmp_path, monkeypatch, module, arg, probe):
  """The ground truth as the prediction: the probe's errors are the parser's floor."""
  config = module.get_config(arg)
  config.model.size = "micro"
  config.video.update(resolution=32, num_frames=8, context_frames=3)
  config.eval.update(num_cases=12, batch_size=4, baselines=())
  if module is memorization:
    config.eval.grid_points = 3
  monkeypatch.setattr(evaluate, "make_predictor", lambda _: lambda params, frames, key: frames)
  params = nnx.state(train.build_model(config, config.seed), nnx.Param)
  evaluate.run(config, str(tmp_path), params=params)
  record = json.loads((tmp_path / "eval.json").read_text())
  numbers = record["probes"][probe]
  report = (tmp_path / "report.md").read_text()
  assert f"](report/{probe}.png)" in report
  assert (tmp_path / "report" / f"{probe}.png").exists()
  if probe == "speed_gap":
    assert numbers["train_count"] + numbers["gap_count"] == 12
    assert numbers["train_error"] < 0.15 and numbers["gap_error"] < 0.15  # the 32 px floor
  elif probe == "composition":
    events = numbers["events"]
    assert events["red wall"]["happened"] == events["red wall"]["scored"] > 0
    assert events["blue moves on"]["happened"] == events["blue moves on"]["scored"] > 0
    assert events["red vanishes"]["happened"] == events["blue vanishes"]["happened"] == 0
    assert record["splits"]["test"]["cases"] == 12
  elif probe == "attributes":
    assert numbers["cases"] == 12 and numbers["winner"] == "tie"
    for attribute in ("color", "velocity"):
      assert numbers["per_attribute"][attribute]["counts"]["kept"] == 12
      assert numbers["per_attribute"][attribute]["train_kept"]["cases"] == 12
  else:
    assert numbers["cases"] == 9 and numbers["reversal_rate"] == 0.0
    assert numbers["intact_rate"] == 1.0
    assert numbers["mean_generated_speed"] == pytest.approx(1.75, abs=0.15)


def test_compare_draws_the_runs_of_an_experiment_side_by_side(tmp_path):
  scene_config = {panel: velocity_gap.get_config(f"panel={panel}") for panel in (1, 5)}
  for panel, config in scene_config.items():
    scene = train.make_experiment(config).scene
    (probe,) = probes.make(["speed_gap"], scene, config)
    probe.update(fake_batch([[1.0, 1.1], [1.0, 2.5]], [1.2, 2.5 + panel * 0.1]))
    workdir = tmp_path / f"gap{panel}"
    (workdir / "report").mkdir(parents=True)
    numbers = probe.finish(epath.Path(workdir / "report"), "report").numbers
    record = {
      "task": "uniform_motion",
      "splits": {},
      "ood_splits": [],
      "probes": {"speed_gap": numbers},
    }
    (workdir / "eval.json").write_text(json.dumps(record))
  (markdown,) = compare.run(f"{tmp_path}/gap*", str(tmp_path / "out"))
  text = epath.Path(markdown).read_text()
  rows = [line for line in text.splitlines() if line.startswith("| fig5_panel")]
  assert rows == [
    "| fig5_panel1 | 0.100 (1) | 0.100 (1) | 1.00 | 0.023 / 0.449 (19.5) |",
    "| fig5_panel5 | 0.100 (1) | 0.500 (1) | 5.00 | 0.017 / 0.022 (1.3) |",
  ]
  assert (tmp_path / "out" / "speed_gap.png").exists()


def attribute_batch(scene, state, shape=None):
  """Swapped cases of a pairing scene, predicted as the truth drawn with `shape` (or as is)."""
  traj = scene.rollout(state, 8)
  truth = sims.render(traj, 32)
  drawn = traj if shape is None else traj.replace(shape=jnp.asarray(shape, jnp.int32))
  prediction = sims.render(drawn, 32)
  errors = velocity_probe.case_errors(scene, traj, truth, truth, 3, "swapped")
  n = len(errors.params)
  return probes.Batch(
    "swapped", np.arange(n), traj, np.asarray(truth), np.asarray(prediction), errors.params
  )


def test_attribute_priority_tells_a_kept_attribute_from_one_bent_to_training(tmp_path):
  config = attributes.get_config("pairing=color_shape")
  scene = sims.make("uniform_motion", pairing="color_shape", num_frames=8)
  state = scene.sample(jax.random.key(0), 16, "swapped")
  # Blue circles drawn as squares and red squares as circles: the training combinations'
  # shapes for their colours, so colour is kept and shape bends to training in every case.
  flipped = np.where(np.asarray(state.shape) == sims.SQUARE, sims.CIRCLE, sims.SQUARE)
  (probe,) = probes.make(["attributes"], scene, config)
  probe.update(attribute_batch(scene, state, flipped))
  section = probe.finish(epath.Path(tmp_path), "report")
  numbers = section.numbers
  assert numbers["cases"] == 16 and numbers["winner"] == "color"
  color, shape = (numbers["per_attribute"][a] for a in ("color", "shape"))
  assert color["counts"] == {"kept": 16, "to training": 0, "other": 0}
  assert shape["counts"] == {"kept": 0, "to training": 16, "other": 0}
  assert shape["floor_counts"]["kept"] == 16  # the parser reads the true shapes
  assert (tmp_path / "attributes.png").exists() and (tmp_path / "attributes_case.gif").exists()


def test_attribute_priority_measures_the_drift_of_a_continuous_attribute(tmp_path):
  config = attributes.get_config("pairing=color_velocity")
  scene = sims.make("uniform_motion", pairing="color_velocity", num_frames=8)
  state = scene.sample(jax.random.key(1), 16, "swapped")
  # Every ball sped up by 1.6: slow blue balls cross into the fast range, fast red ones stay.
  faster = state.replace(velocity=state.velocity + jnp.array([1.6, 0.0]))
  batch = attribute_batch(scene, state)
  moved = attribute_batch(scene, faster)
  batch = dataclasses.replace(batch, prediction=moved.truth)
  (probe,) = probes.make(["attributes"], scene, config)
  probe.update(batch)
  numbers = probe.finish(epath.Path(tmp_path), "report").numbers
  velocity = numbers["per_attribute"]["velocity"]
  blue_slow = velocity["by_combination"]["blue slow"]
  speeds = np.asarray(scene.params_of(state))
  crossing = int(((speeds[:, 2] == 1) & (speeds[:, 1] + 1.6 > 2.5)).sum())
  assert blue_slow["to training"] == crossing > 0
  assert velocity["by_combination"]["red fast"]["to training"] == 0
  for shift in velocity["mean_shift"].values():
    assert shift == pytest.approx(1.6, abs=0.1)


def test_the_attribute_ordering_is_derived_from_the_pairs_winners():
  winners = {
    "color_shape": "color",
    "size_shape": "size",
    "velocity_shape": "velocity",
    "velocity_size": "size",
    "color_size": "color",
    "color_velocity": "color",
    "color_ring": "shape",
  }
  runs = [
    {"pairing": name, "attributes": list(sims.pairings.PAIRINGS[name].attributes), "winner": w}
    for name, w in winners.items()
  ]
  assert attribute_probe.attribute_order(runs) == (
    "color > size > velocity > shape (study: color > size > velocity > shape)"
  )
  runs[0]["winner"] = "tie"
  assert attribute_probe.attribute_order(runs[:2]).startswith("size > color = shape")


def test_composition_counts_the_events_a_rollout_shows_and_the_ones_it_misses(tmp_path):
  config = composition.get_config("kind=temporal")
  scene = sims.make("composition", kind="temporal", num_frames=8)
  state = scene.place(jax.random.split(jax.random.key(0), 12), scene.eval_params("test")[:12])
  traj = scene.rollout(state, 8)
  truth = np.asarray(sims.render(traj, 32))
  params = np.asarray(scene.params_of(state))
  (probe,) = probes.make(["composition"], scene, config)
  # The truth as the rollout: every event shows, as on the parser's floor.
  probe.update(probes.Batch("test", np.arange(12), traj, truth, truth, params))
  events = probe.numbers()["events"]
  for label in ("red contact", "blue contact", "blue wall"):
    assert events[label]["happened"] == events[label]["floor_happened"] == events[label]["scored"]
    assert events[label]["scored"] > 0
    assert events[label]["error_after"] < 0.3  # the parser's floor at 32 px
  # A rollout whose blue ball never reaches the wall: drawn at its first generated position.
  frozen = traj.replace(position=traj.position.at[:, 3:, 1].set(traj.position[:, 3:4, 1]))
  (probe,) = probes.make(["composition"], scene, config)
  batch = probes.Batch(
    "test", np.arange(12), traj, truth, np.asarray(sims.render(frozen, 32)), params
  )
  probe.update(batch)
  section = probe.finish(epath.Path(tmp_path), "report")
  events = section.numbers["events"]
  assert events["blue wall"]["happened"] == 0 < events["blue wall"]["scored"]
  assert events["blue wall"]["error_after"] > 1.0  # standing where it should rebound at >= 1
  assert events["red vanishes"]["happened"] == 0
  assert (tmp_path / "composition.png").exists()


@pytest.mark.slow
def test_ambiguity_scores_the_rollouts_outcome_along_each_scan(tmp_path):
  config = ambiguity.get_config("size=cpu")
  scene = sims.make("phyre", templates="ambiguity")
  params = scene.eval_params("in_template", 3)  # tasks 0, 50 and 100 of each template
  traj = scene.rollout(scene.place(None, params), 8)
  truth = np.asarray(sims.render(traj, 64))
  (probe,) = probes.make(["ambiguity"], scene, config)
  probe.update(probes.Batch("in_template", np.arange(12), traj, truth, truth, params))
  templates = probe.numbers()["templates"]
  assert sorted(templates) == ["20000", "20001", "20002", "20003"]
  for entry in templates.values():
    assert entry["accuracy"] == entry["floor_accuracy"] == 1.0 and entry["cases"] == 3
    assert entry["truth"][0] != entry["truth"][-1]  # each scan flips between its ends
  # A rollout that holds the first frame: the red ball never drops, so it never passes a gap
  # (and stays on its side of a single ball): wrong wherever the truth passes.
  still = np.repeat(truth[:, :1], 8, axis=1)
  (probe,) = probes.make(["ambiguity"], scene, config)
  probe.update(probes.Batch("in_template", np.arange(12), traj, truth, still, params))
  section = probe.finish(epath.Path(tmp_path), "report")
  for template in ("20000", "20002"):
    entry = section.numbers["templates"][template]
    assert entry["generated"] == [False] * 3
    assert entry["accuracy"] == pytest.approx(1 - np.mean(entry["truth"]))
  assert (tmp_path / "ambiguity.png").exists() and (tmp_path / "ambiguity_case.gif").exists()
