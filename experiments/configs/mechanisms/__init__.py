"""Configs of the study's mechanism experiments (its section 5): one file per experiment."""

from __future__ import annotations

import ml_collections

from experiments.configs import common

SIZES = ("cpu", "study")


def mechanism_config(
  task: str, size: str, probes: tuple[str, ...], data: str = "300K", seed: int = 0
) -> ml_collections.ConfigDict:
  """A mechanism experiment's base: the quickstart's CPU recipe, or the study's DiT-B at 128 x
  128 and 32 frames on the `data` grid; baselines copy_last and extrapolate; the named probes;
  `seed` for the data, the model and the evaluation cases."""
  common.check_arg("size", size, SIZES)
  if size == "cpu":
    config = common.cpu_law_config(task)
  else:
    config = common.law_config(task, size="B", data=data)
  config.eval.update(probes=probes, baselines=("copy_last", "extrapolate"))
  config.seed = seed
  return config
