"""experiments/configs/world3d.py: its recipes, its bad input, and a tiny 3-D run end to end."""

import json
import os

import pytest

from experiments import train
from experiments.configs import world3d
from tests import runs


def test_cpu_and_study_recipes():
  cpu = world3d.get_config("scene=rolling3d,size=tiny")
  assert (cpu.video.resolution, cpu.video.num_frames, cpu.data.dataset_size) == (
    64,
    8,
    "continuous",
  )
  assert cpu.eval.splits == ("id", "ood_speed", "ood_size", "ood_friction")
  assert cpu.eval.probes == ("velocity3d",) and cpu.eval.baselines == ("copy_last",)
  assert cpu.objective.flow.prediction == "residual" and cpu.model.context_input == "held"
  study = world3d.get_config()
  assert (study.task, study.video.resolution, study.video.num_frames) == ("bounce3d", 128, 32)
  assert (study.data.dataset_size, study.model.size, study.video.context_frames) == ("30K", "B", 3)
  movi = world3d.get_config("scene=movi,size=tiny,resolution=96,frames=12")
  assert movi.eval.probes == () and (movi.video.resolution, movi.video.num_frames) == (96, 12)
  experiment = train.make_experiment(cpu)
  assert experiment.scene.name == "rolling3d" and experiment.video_shape == (8, 64, 64)


def test_bad_arguments_are_one_line_errors():
  with pytest.raises(ValueError, match="unknown scene 'cube3d'; valid: bounce3d, rolling3d"):
    world3d.get_config("scene=cube3d")
  with pytest.raises(ValueError, match="unknown config argument 'camera'"):
    world3d.get_config("camera=far")
  config = world3d.get_config("scene=bounce3d,size=tiny")
  config.eval.baselines = ("blank",)
  with pytest.raises(ValueError, match="unknown baseline for scene 'bounce3d' 'blank'"):
    train.make_experiment(config)


@pytest.mark.slow
def test_a_tiny_3d_run_trains_and_reports_the_velocity_probe(tmp_path):
  runs.run_main(
    tmp_path,
    "--config=experiments/configs/world3d.py:scene=bounce3d,size=micro,resolution=32,frames=6",
    "--config.num_steps=3",
    "--config.eval.splits=('id','ood_speed')",
    "--config.eval.num_cases=2",
    "--config.eval.batch_size=2",
    micro=False,
    timeout=600,
  )
  with open(os.path.join(tmp_path, "eval.json")) as f:
    numbers = json.load(f)["probes"]["velocity3d"]
  assert set(numbers) == {"id", "ood_speed"} and numbers["id"]["cases"] == 2
  # Launched at 3.5-5 m/s, at most 45 degrees up: at least 2.4 m/s through the clip.
  assert numbers["ood_speed"]["true_speed"] > 2.4
  report = (tmp_path / "report.md").read_text()
  assert "## Velocity probe in 3-D" in report and (tmp_path / "report" / "velocity3d.png").exists()
