"""A probe that scores fewer than half of its cases says so in the log, eval.json and report.md."""

import json
import logging

import pytest
from flax import nnx

from experiments import evaluate, train
from experiments.configs import quickstart


def evaluate_micro(workdir, context_frames):
  """eval.json and report.md of an untrained micro model on 2 ID cases of 6 frames."""
  config = quickstart.get_config()
  config.video.update(resolution=16, num_frames=6, context_frames=context_frames)
  config.model.size = "micro"
  config.eval.update(splits=("id",), num_cases=2, batch_size=2, sample_steps=1)
  config.eval.physics_score = False
  params = nnx.state(train.build_model(config, config.seed), nnx.Param)
  evaluate.run(config, str(workdir), params=params)
  return json.loads((workdir / "eval.json").read_text()), (workdir / "report.md").read_text()


@pytest.mark.slow  # two evaluations, ~25 s each on 2 busy cores
def test_a_probe_that_scores_few_cases_warns_loudly(tmp_path, caplog):
  # With 5 context frames of 6 no generated frame pair is left to score.
  with caplog.at_level(logging.WARNING):
    evaluation, report = evaluate_micro(tmp_path / "few", context_frames=5)
  numbers = evaluation["splits"]["id"]
  assert (numbers["cases"], numbers["count"]) == (2, 0)
  warning = "the velocity probe scored only 0 of 2 id cases"
  assert numbers["warning"].startswith(warning)
  assert f"**Warning: {warning}" in report
  assert warning in caplog.text
  evaluation, report = evaluate_micro(tmp_path / "all", context_frames=2)
  assert evaluation["splits"]["id"]["count"] == 2
  assert "warning" not in evaluation["splits"]["id"] and "Warning" not in report
