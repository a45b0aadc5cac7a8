"""The same evaluation cases rolled out by several trained runs, in one GIF.

    python -m experiments.side_by_side --split=ood_v --cases=4 --out=/tmp/ood_v.gif \
        none=/tmp/grounded/none render=/tmp/grounded/render

Each argument is NAME=WORKDIR of a trained run (its config.json and newest checkpoint). Row i
is the split's case i: the ground truth on the left, then each run's rollout in the order given,
sampled with the key its own evaluation uses, so each column repeats that run's report. The runs
must share the task, the video shape and the evaluation cases (the seed and eval settings);
the names are printed left to right.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence

import jax
import ml_collections
import numpy as np
from absl import app, flags
from etils import epath

from experiments import evaluate, outputs, train
from experiments.configs import common

_SPLIT = flags.DEFINE_string("split", "ood_v", "The evaluation split whose cases are shown.")
_CASES = flags.DEFINE_integer("cases", 4, "How many of its first cases.")
_OUT = flags.DEFINE_string("out", None, "The GIF to write.", required=True)
_SCALE = flags.DEFINE_integer("scale", 4, "Pixels per frame pixel.")


def load_config(workdir: str) -> ml_collections.ConfigDict:
  """The config a run saved (config.json) over today's defaults, so that settings added since
  the run keep their defaults."""
  path = os.path.join(workdir, "config.json")
  if not os.path.exists(path):
    raise ValueError(f"{workdir!r} has no config.json: not a trained run's workdir")
  with open(path) as f:
    saved = json.load(f)
  config = common.law_config(saved["task"])
  config.update_from_flattened_dict(dict(_flatten(saved)))
  return config


def _flatten(tree: dict, prefix: str = "") -> list[tuple[str, object]]:
  """("a.b", value) pairs of a nested dict's leaves, lists as tuples."""
  items = []
  for key, value in tree.items():
    if isinstance(value, dict) and value:
      items += _flatten(value, f"{prefix}{key}.")
    else:
      items.append((f"{prefix}{key}", tuple(value) if isinstance(value, list) else value))
  return items


def rollouts(workdir: str, split: str, num_cases: int) -> tuple[np.ndarray, np.ndarray]:
  """The ground truth and the run's rollouts [num_cases, T, H, W, 3] of a split's first cases,
  as its evaluation draws them."""
  config = load_config(workdir)
  experiment = train.make_experiment(config).for_evaluation()
  experiment.scene.check_split(split)
  _, params = train.restore_params(experiment, workdir)
  cases = evaluate.eval_cases(experiment, split)
  _, frames = evaluate.simulated_split(experiment, cases)
  # The evaluation's first batch (padded as it pads), whose first cases are shown.
  batch = np.minimum(np.arange(config.eval.batch_size), cases.radius.shape[0] - 1)
  truth = frames(batch)
  key = jax.random.fold_in(evaluate.rollout_key(config, split), 0)
  prediction = evaluate.make_predictor(experiment)(params, truth, key)
  return np.asarray(truth[:num_cases]), np.asarray(prediction[:num_cases])


def main(argv: Sequence[str]) -> None:
  runs = [argument.split("=", 1) for argument in argv[1:]]
  if not runs or any(len(run) != 2 for run in runs):
    raise ValueError(f"give runs as NAME=WORKDIR, got {argv[1:]}")
  columns = []
  for _, workdir in runs:
    truth, prediction = rollouts(workdir, _SPLIT.value, _CASES.value)
    if columns and not np.array_equal(truth, columns[0]):
      raise ValueError(f"{workdir!r} evaluates other {_SPLIT.value} cases than the first run")
    columns += [truth] if not columns else []
    columns.append(prediction)
  outputs.write_gif(epath.Path(_OUT.value), outputs.video_grid(columns, _SCALE.value))
  print(f"{_OUT.value}: truth | " + " | ".join(name for name, _ in runs))


if __name__ == "__main__":
  app.run(main)
