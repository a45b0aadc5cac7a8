"""experiments.results_table on synthetic eval.json files of the shape evaluate.py writes."""

import json
import subprocess
import sys

import pytest
import runs

from experiments import results_table


def write_run(
  workdir, scale, rewards=(), physics_iq=None, law="trajectory", follows=None, filtered=()
):
  """An eval.json whose every velocity error is `scale` times a fixed value per split (and a
  Physics-IQ probe whose score is `physics_iq` on every split, if given); the physics probe
  reports `law` and, if given, the guide-following fraction `follows`; the study's code scored
  no case of the `filtered` splits."""
  workdir.mkdir(parents=True)
  physics = {
    "fit_residual": 0.03 * scale,
    "fit_velocity_error": 1.0 * scale,
    "acceleration": 9.0,  # a second law, reported first by the probe: not the one shown
    "acceleration_floor": 2.0,
    law: 0.07 * scale,
    f"{law}_floor": 0.0064,
  }
  if follows is not None:
    physics["follows_guide"] = follows
  splits = {
    split: {
      "velocity_error_mean_then_abs": base * scale,
      "velocity_error": 2 * base * scale,
      "velocity_error_study": 0.5 * base * scale,
      "frame_mse": 0.001 * scale,
      "physics": physics,
    }
    for split, base in {"id": 0.3, "ood_r": 2.5, "ood_v": 1.5, "ood_rv": 2.4}.items()
  }
  for split in filtered:
    splits[split]["velocity_error_study"] = float("nan")
  evaluation = {"splits": splits, "id_split": "id", "ood_splits": ["ood_r", "ood_v", "ood_rv"]}
  if physics_iq is not None:
    scores = {split: {"score": physics_iq} for split in splits}
    evaluation["probes"] = {"physics_iq": {"splits": scores}}
  (workdir / "eval.json").write_text(json.dumps(evaluation))
  with open(workdir / "metrics.jsonl", "w") as f:
    for step, reward in enumerate(rewards):
      f.write(json.dumps({"step": step, "loss": 0.1, "reward_mean": reward}) + "\n")


def test_tables_spread_and_rewards_from_eval_json(tmp_path):
  write_run(tmp_path / "base0", 1.0)
  write_run(tmp_path / "base1", 1.2)
  write_run(tmp_path / "reward", 0.9, rewards=(-0.074, -0.06, -0.057))
  arguments = [
    f"baseline:0={tmp_path / 'base0'}",
    f"baseline:1={tmp_path / 'base1'}",
    f"reward:0={tmp_path / 'reward'}",
  ]
  table = results_table.results(results_table.parse_runs(arguments), "ood_v")
  baseline = table["runs"]["baseline"]
  assert baseline["1"]["ood_v/velocity_error_mean_then_abs"] == pytest.approx(1.8)
  assert baseline["0"]["physics/fit_velocity_error"] == pytest.approx(1.0)
  # Seeds at 1.0 and 1.2 times the same numbers: (1.2 - 1.0) / 1.1 = 18.18 % for each of them;
  # the ground-truth floor is the same for both seeds.
  spread = table["spread_percent"]["baseline"]
  assert spread["ood_r/velocity_error"] == pytest.approx(100 * 0.2 / 1.1)
  assert spread["physics/trajectory_floor"] == 0.0
  assert list(table["spread_percent"]) == ["baseline"]  # one seed: no spread
  assert table["runs"]["reward"]["0"]["reward_first"] == -0.074
  assert table["runs"]["reward"]["0"]["reward_last"] == -0.057

  lines = results_table.markdown(table).splitlines()
  assert lines[2] == "| run | seed | id | ood_r | ood_v | ood_rv |"
  assert (
    lines[4] == "| baseline | 0 | 0.300 / 0.600 | 2.500 / 5.000 | 1.500 / 3.000 | 2.400 / 4.800 |"
  )
  assert lines[6] == "| baseline | spread | 18 % / 18 % | 18 % / 18 % | 18 % / 18 % | 18 % / 18 % |"
  # The study's code's error, and each OOD split's ratio to ID (2.5 / 0.3 = 8.3 for ood_r).
  assert "| baseline | 0 | 0.150 | 1.250 (8.3 x) | 0.750 (5.0 x) | 1.200 (8.0 x) |" in lines
  assert "| baseline | spread | 18 % | 18 % | 18 % | 18 % |" in lines
  assert not any("Physics-IQ" in line for line in lines)  # no run has that probe
  assert "| reward | 0 | 0.00090 | 0.0630 (0.0064) | 0.0270 / 0.0630 (0.0064) / 0.900 |" in lines
  assert lines[-1] == "| reward | 0 | -0.074 | -0.057 |"


def test_collision_runs_show_their_law_and_how_often_they_follow_the_guide(tmp_path):
  write_run(tmp_path / "none", 1.0, law="momentum", follows=0.25)
  write_run(tmp_path / "render", 0.5, law="momentum", follows=0.875, filtered=("ood_v",))
  arguments = [f"none:0={tmp_path / 'none'}", f"render:0={tmp_path / 'render'}"]
  table = results_table.results(results_table.parse_runs(arguments), "ood_v")
  assert table["law"] == "momentum"
  lines = results_table.markdown(table).splitlines()
  header = next(line for line in lines if "ID frame MSE" in line)
  assert "ID momentum (floor)" in header and header.endswith("follows the guide |")
  assert (
    "| render | 0 | 0.00050 | 0.0350 (0.0064) | 0.0150 / 0.0350 (0.0064) / 0.500 | 88 % |" in lines
  )
  assert "| render | 0 | 0.075 | 0.625 (8.3 x) | - | 0.600 (8.0 x) |" in lines
  write_run(tmp_path / "uniform", 1.0)
  with pytest.raises(ValueError, match=r"different laws \['momentum', 'trajectory'\]"):
    results_table.results(
      results_table.parse_runs([*arguments, f"uniform:0={tmp_path / 'uniform'}"]), "ood_v"
    )


def test_command_line_writes_the_json_it_prints(tmp_path):
  write_run(tmp_path / "run", 1.0)
  out = tmp_path / "data" / "results.json"
  command = ["-m", "experiments.results_table", f"run:0={tmp_path / 'run'}", f"--json_out={out}"]
  result = subprocess.run(
    [sys.executable, *command],
    cwd=runs.ROOT,
    capture_output=True,
    text=True,
    timeout=60,
  )
  assert result.returncode == 0, result.stderr
  written = json.loads(out.read_text())
  assert written["runs"]["run"]["0"]["id/frame_mse"] == 0.001
  assert result.stdout.rstrip().endswith(out.read_text().rstrip())


@pytest.mark.parametrize(
  ("arguments", "message"),
  [
    ([], "give at least one run as RUN:SEED=WORKDIR"),
    (["baseline=/tmp/w"], "bad run argument 'baseline=/tmp/w'; expected RUN:SEED=WORKDIR"),
    (["a:0=/x", "a:0=/y"], "run 'a' seed 0 is given twice"),
  ],
)
def test_bad_run_arguments_raise_one_line_errors(arguments, message):
  with pytest.raises(ValueError, match=f"^{message}"):
    results_table.parse_runs(arguments)


def test_missing_physics_split_is_named(tmp_path):
  write_run(tmp_path / "run", 1.0)
  with pytest.raises(ValueError, match=r"eval.json has no physics numbers for split 'ood_x'"):
    results_table.run_numbers(str(tmp_path / "run"), "ood_x", "trajectory")


def test_physics_iq_scores_get_their_table(tmp_path):
  write_run(tmp_path / "guided", 1.0, physics_iq=0.4567)
  write_run(tmp_path / "guided1", 1.0, physics_iq=0.5)
  write_run(tmp_path / "plain", 1.0)
  arguments = [
    f"guided:0={tmp_path / 'guided'}",
    f"guided:1={tmp_path / 'guided1'}",
    f"plain:0={tmp_path / 'plain'}",
  ]
  table = results_table.results(results_table.parse_runs(arguments), "ood_v")
  assert table["runs"]["guided"]["0"]["ood_r/physics_iq"] == 0.4567
  lines = results_table.markdown(table).splitlines()
  assert lines[-4:] == [
    "| guided | 0 | 45.7 | 45.7 | 45.7 | 45.7 |",
    "| guided | 1 | 50.0 | 50.0 | 50.0 | 50.0 |",
    "| guided | spread | 9 % | 9 % | 9 % | 9 % |",  # (0.5 - 0.4567) / 0.47835
    "| plain | 0 | - | - | - | - |",
  ]
