"""The scaling comparison: eval.json loading, OOD pooling, duplicates, the report and its errors."""

import json
import logging
import math
import os

import numpy as np
import pytest
from PIL import Image

from experiments import compare


def split(error, floor, count):
  """A split record whose compared metric (the study's code) is `error`, with floor `floor` over
  `count` cases (ours differ, so that a table built from them would be wrong)."""
  return {
    "velocity_error": error / 0.9,
    "velocity_error_mean_then_abs": error * 2,
    "floor": floor * 3,
    "floor_mean_then_abs": floor * 2,
    "count": 7,
    "velocity_error_study": error,
    "floor_study": floor,
    "count_study": count,
  }


def evaluation(task, model_size, dataset_size, step, id_error, ood):
  """An eval.json record; `ood` maps split name -> (error, floor, count)."""
  return {
    "task": task,
    "model_size": model_size,
    "dataset_size": dataset_size,
    "step": step,
    "resolution": 128,
    "splits": {
      "id": split(id_error, 0.0100, 50),
      "ood_v_low": split(9.0, 9.0, 10),  # a sub-level, not listed in ood_splits
      **{name: split(*numbers) for name, numbers in ood.items()},
    },
    "id_split": "id",
    "ood_splits": list(ood),
  }


def write_run(root, name, record):
  workdir = os.path.join(root, name)
  os.makedirs(workdir)
  if record is not None:
    with open(os.path.join(workdir, "eval.json"), "w") as f:
      json.dump(record, f)
  return workdir


@pytest.fixture
def runs_root(tmp_path):
  root = str(tmp_path / "runs")
  # OOD = (0.30 * 100 + 0.50 * 300) / 400 = 0.45; floor (0.011 * 100 + 0.015 * 300) / 400 = 0.014.
  # ood_rv has no scored case (NaN error) and must not count.
  write_run(
    root,
    "uniform_S_30K",
    evaluation(
      "uniform_motion",
      "S",
      "30K",
      100_000,
      0.020,
      {"ood_r": (0.30, 0.011, 100), "ood_v": (0.50, 0.015, 300), "ood_rv": (math.nan, 0.9, 0)},
    ),
  )
  write_run(
    root,
    "uniform_S_300K",
    evaluation("uniform_motion", "S", "300K", 100_000, 0.016, {"ood_v": (0.25, 0.012, 80)}),
  )
  write_run(
    root,
    "uniform_B_30K",
    evaluation("uniform_motion", "B", "30K", 100_000, 0.017, {"ood_v": (0.40, 0.012, 80)}),
  )
  write_run(
    root,
    "collision_S_30K",
    evaluation("collision", "S", "30K", 100_000, 0.030, {"ood_v1": (0.20, 0.008, 60)}),
  )
  write_run(
    root,
    "collision_S_30K_early",
    evaluation("collision", "S", "30K", 50_000, 0.090, {"ood_v1": (0.70, 0.008, 60)}),
  )
  write_run(root, "uniform_L_3M_unfinished", None)
  return root


def test_table_pools_ood_by_count_and_keeps_the_later_duplicate(runs_root, caplog):
  with caplog.at_level(logging.WARNING):
    runs = compare.load_runs([os.path.join(runs_root, "*")])
    table = compare.scaling_table(runs)
  assert len(runs) == 5
  assert "uniform_L_3M_unfinished: no eval.json" in caplog.text
  assert "collision_S_30K_early (step 50000)" in caplog.text

  cell = table["uniform_motion"]["S"]["30K"]
  assert cell["id"] == pytest.approx(0.020)
  assert cell["ood"] == pytest.approx(0.45)
  assert cell["id_floor"] == pytest.approx(0.010)
  assert cell["ood_floor"] == pytest.approx(0.014)
  assert cell["step"] == 100_000
  assert table["uniform_motion"]["S"]["300K"]["ood"] == pytest.approx(0.25)
  assert table["uniform_motion"]["B"]["30K"]["ood"] == pytest.approx(0.40)
  kept = {"id": 0.030, "ood": 0.20, "id_floor": 0.010, "ood_floor": 0.008, "step": 100_000}
  assert table["collision"] == {"S": {"30K": pytest.approx(kept)}}


def test_duplicate_with_lower_step_listed_last_is_dropped(runs_root):
  names = ["collision_S_30K_early", "collision_S_30K"]
  runs = compare.load_runs([os.path.join(runs_root, name) for name in names])
  assert compare.scaling_table(runs)["collision"]["S"]["30K"]["id"] == pytest.approx(0.030)


def test_a_workdir_given_twice_is_loaded_once(runs_root):
  workdir = os.path.join(runs_root, "uniform_B_30K")
  assert (
    len(compare.load_runs([workdir, workdir + "/", os.path.join(runs_root, "uniform_B*")])) == 1
  )


def test_run_writes_markdown_beside_the_study_and_a_png(runs_root, tmp_path):
  out_dir = str(tmp_path / "compare")
  runs_arg = f"{runs_root}/uniform_*, {runs_root}/collision_S_30K,{runs_root}/collision_S_30K_early"
  (markdown_path,) = compare.run(runs_arg, out_dir)
  assert markdown_path == os.path.join(out_dir, "scaling.md")
  with open(markdown_path) as f:
    markdown = f.read()
  uniform, collision = markdown.split("## uniform_motion")[1].split("## collision")
  assert "| model | 30K | 300K |" in uniform
  assert "| DiT-S | 0.0200 / 0.4500 | 0.0160 / 0.2500 |" in uniform
  assert "| DiT-B | 0.0170 / 0.4000 | — |" in uniform
  assert "(ours): ID 0.0100, OOD 0.0120–0.0140." in uniform
  assert "| DiT-S | 0.0221 / 0.4349 | 0.0184 / 0.2929 | 0.0149 / 0.2875 |" in uniform
  assert "(study): ID 0.0099, OOD 0.0114." in uniform
  assert "| DiT-S | 0.0300 / 0.2000 |" in collision
  assert "| DiT-L | 0.0240 / 0.2700 | 0.0158 / 0.1725 | 0.0153 / 0.1613 |" in collision
  assert "0.0900" not in markdown.split("## Runs")[0]  # the step-50000 duplicate is not shown
  runs_table = markdown.split("## Runs")[1]
  assert runs_table.count("| yes |") == 4
  assert (
    "| 50000 | 128 | ood_v1 | `" + os.path.join(runs_root, "collision_S_30K_early") in runs_table
  )
  assert runs_table.count("| no: a later step shares the cell |") == 1

  with Image.open(os.path.join(out_dir, "scaling.png")) as image:
    assert image.format == "PNG"
    width, height = image.size
    pixels = np.asarray(image.convert("L"), np.float32)
  assert width >= 1000 and 600 <= height < width  # two task rows of panels
  assert os.path.getsize(os.path.join(out_dir, "scaling.png")) > 20_000
  assert pixels.std() > 10  # not a blank canvas


def test_study_figure3_has_every_cell():
  for task in compare.STUDY_TASKS:
    assert list(compare.STUDY_FIGURE3[task]) == ["S", "B", "L"]
    for cells in compare.STUDY_FIGURE3[task].values():
      assert list(cells) == ["30K", "300K", "3M"]
      assert all(cell["id"] < cell["ood"] < 0.5 for cell in cells.values())
  assert compare.STUDY_FIGURE3["parabola"]["B"]["300K"] == {"id": 0.0381, "ood": 0.3759}


def test_run_without_any_eval_json_raises(runs_root, tmp_path):
  with pytest.raises(ValueError, match=r"no run with eval\.json") as error:
    compare.run(f"{runs_root}/uniform_L_3M_unfinished,{tmp_path}/nothing_*", str(tmp_path / "o"))
  assert "\n" not in str(error.value)


@pytest.mark.parametrize(
  "content, message",
  [
    ("{not json", "Expecting property name"),
    (json.dumps({"task": "collision"}), "missing key 'splits'"),
    (
      json.dumps(evaluation("collision", "S", "30K", 1, 0.1, {}) | {"ood_splits": ["ood_x"]}),
      "split 'ood_x' is not in splits",
    ),
    (
      json.dumps(evaluation("collision", 7, "30K", 1, 0.1, {"ood_v1": (0.2, 0.01, 5)})),
      "model_size must be a non-empty string, got 7",
    ),
  ],
)
def test_malformed_eval_json_is_a_one_line_error_naming_the_file(tmp_path, content, message):
  workdir = write_run(str(tmp_path), "bad", None)
  path = os.path.join(workdir, "eval.json")
  with open(path, "w") as f:
    f.write(content)
  with pytest.raises(ValueError, match=message) as error:
    compare.load_runs([workdir])
  assert str(error.value).startswith(f"malformed {path}: ")
  assert "\n" not in str(error.value)
