"""The tables of docs/results.md from the eval.json of its runs, as markdown and JSON.

    python -m experiments.results_table baseline:0=W0 baseline:1=W0_seed1 \
        law_loss:0=W1 law_loss:1=W1_seed1 reward:0=W2 best_of_4:0=W0_best_of_4 \
        --json_out=docs/data/results.json

Each argument is RUN:SEED=WORKDIR. Per run and seed it prints the velocity errors of every split
(the study's mean-then-abs / the paper's mean |v - v_true|; then the study's code's, with each
OOD split's ratio to ID), Physics-IQ's score per split where the run has that probe
(`experiments/probes/physics_iq.py`), and the physics probe's numbers:
ID frame MSE, the ID residual of the task's first law (trajectory for free flight, momentum for
a collision; ground truth's in brackets) and, on `--physics_split`, the fit residual, that law's
residual, the fitted-velocity error and (where measured) how often the generated frames follow
the guide rather than the training speeds. A run with two or more seeds
gets a spread row: (max - min) / mean of each number over its seeds, in per cent. A run whose
metrics.jsonl logs "reward_mean" (reward fine-tuning) gets its first and last logged value.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Sequence

from absl import app, flags

_JSON_OUT = flags.DEFINE_string("json_out", None, "Also write the numbers to this JSON file.")
_PHYSICS_SPLIT = flags.DEFINE_string(
  "physics_split", "ood_v", "The OOD split whose physics-probe numbers the second table shows."
)

RUN_ARGUMENT = re.compile(r"^(?P<run>[A-Za-z0-9_]+):(?P<seed>[0-9]+)=(?P<workdir>.+)$")
VELOCITY = ("velocity_error_mean_then_abs", "velocity_error")
STUDY = "velocity_error_study"
PHYSICS = ("fit_residual", "fit_velocity_error")
PRIMARY_LAWS = ("trajectory", "momentum")  # the law shown where a task reports several


def parse_runs(arguments: Sequence[str]) -> dict[str, dict[str, str]]:
  """{run: {seed: workdir}} from RUN:SEED=WORKDIR arguments, in their order."""
  if not arguments:
    raise ValueError("give at least one run as RUN:SEED=WORKDIR, e.g. baseline:0=/tmp/physics_off")
  runs: dict[str, dict[str, str]] = {}
  for argument in arguments:
    match = RUN_ARGUMENT.match(argument)
    if match is None:
      raise ValueError(f"bad run argument {argument!r}; expected RUN:SEED=WORKDIR")
    seeds = runs.setdefault(match["run"], {})
    if match["seed"] in seeds:
      raise ValueError(f"run {match['run']!r} seed {match['seed']} is given twice")
    seeds[match["seed"]] = match["workdir"]
  return runs


def first_law(workdir: str) -> str:
  """The first law residual the physics probe reports in a run's eval.json ("trajectory" for free
  flight, "momentum" for a collision)."""
  with open(os.path.join(workdir, "eval.json")) as f:
    evaluation = json.load(f)
  physics = evaluation["splits"][evaluation["id_split"]].get("physics", {})
  laws = [name.removesuffix("_floor") for name in physics if name.endswith("_floor")]
  if not laws:
    raise ValueError(f"{workdir}/eval.json has no physics numbers (eval.physics_score)")
  return next((law for law in PRIMARY_LAWS if law in laws), laws[0])


def run_numbers(workdir: str, physics_split: str, law: str) -> dict[str, float]:
  """The numbers of one run: "SPLIT/METRIC" from its eval.json, "physics/METRIC" of
  `physics_split` (with the residual of `law`), and "reward_first" / "reward_last" where its
  metrics.jsonl has rewards."""
  path = os.path.join(workdir, "eval.json")
  with open(path) as f:
    evaluation = json.load(f)
  splits = evaluation["splits"]
  id_split = evaluation["id_split"]
  ordered = [id_split, *evaluation["ood_splits"]]
  if physics_split not in splits or "physics" not in splits[physics_split]:
    raise ValueError(f"{path} has no physics numbers for split {physics_split!r}")
  numbers = {f"{split}/{name}": splits[split][name] for split in ordered for name in VELOCITY}
  numbers.update({f"{split}/{STUDY}": splits[split][STUDY] for split in ordered})
  physics_iq = evaluation.get("probes", {}).get("physics_iq", {}).get("splits", {})
  numbers.update(
    {f"{split}/physics_iq": physics_iq[split]["score"] for split in ordered if split in physics_iq}
  )
  numbers["id/frame_mse"] = splits[id_split]["frame_mse"]
  physics = splits[physics_split]["physics"]
  for name in (law, f"{law}_floor"):
    numbers[f"id/{name}"] = splits[id_split]["physics"][name]
  numbers.update({f"physics/{name}": physics[name] for name in (*PHYSICS, law, f"{law}_floor")})
  if "follows_guide" in physics:
    numbers["physics/follows_guide"] = physics["follows_guide"]
  rewards = _logged(os.path.join(workdir, "metrics.jsonl"), "reward_mean")
  if rewards:
    numbers.update(reward_first=rewards[0], reward_last=rewards[-1])
  return numbers


def _logged(path: str, key: str) -> list[float]:
  """Every logged value of `key` in a metrics.jsonl (none if the file is missing)."""
  if not os.path.exists(path):
    return []
  with open(path) as f:
    records = [json.loads(line) for line in f if line.strip()]
  return [record[key] for record in records if key in record]


def spread_percent(values: Sequence[float]) -> float:
  """(max - min) / mean of `values`, in per cent."""
  mean = sum(values) / len(values)
  return 100.0 * (max(values) - min(values)) / mean if mean else math.nan


def results(runs: dict[str, dict[str, str]], physics_split: str) -> dict:
  """{"law": the law residual shown, "runs": {run: {seed: numbers}}, "spread_percent": {run:
  numbers}} (spread where a run has two or more seeds). Every run must report the same law."""
  laws = {first_law(workdir) for seeds in runs.values() for workdir in seeds.values()}
  if len(laws) > 1:
    raise ValueError(f"the runs report different laws {sorted(laws)}: compare one task at a time")
  law = laws.pop()
  numbers = {
    run: {seed: run_numbers(workdir, physics_split, law) for seed, workdir in seeds.items()}
    for run, seeds in runs.items()
  }
  spread = {}
  for run, seeds in numbers.items():
    if len(seeds) >= 2:
      names = set.intersection(*(set(values) for values in seeds.values()))
      spread[run] = {
        name: spread_percent([values[name] for values in seeds.values()]) for name in sorted(names)
      }
  return {"physics_split": physics_split, "law": law, "runs": numbers, "spread_percent": spread}


def markdown(table: dict) -> str:
  """The two tables of docs/results.md, with a spread row under each run that has seeds."""
  runs, spreads = table["runs"], table["spread_percent"]
  first = next(iter(next(iter(runs.values())).values()))
  splits = [name.split("/")[0] for name in first if name.endswith("/velocity_error")]

  def velocity_cells(values, form):
    return [
      f"{form(values[f'{s}/{VELOCITY[0]}'])} / {form(values[f'{s}/{VELOCITY[1]}'])}" for s in splits
    ]

  law = table["law"]
  follows = any("physics/follows_guide" in v for seeds in runs.values() for v in seeds.values())

  def physics_cells(values, form):
    cells = [
      form(values["id/frame_mse"], 5),
      f"{form(values[f'id/{law}'], 4)} ({form(values[f'id/{law}_floor'], 4)})",
      f"{form(values['physics/fit_residual'], 4)} / {form(values[f'physics/{law}'], 4)} "
      f"({form(values[f'physics/{law}_floor'], 4)}) / "
      f"{form(values['physics/fit_velocity_error'], 3)}",
    ]
    if follows:
      fraction = values.get("physics/follows_guide", math.nan)
      scale = 1 if form is percent else 100
      cells.append("-" if math.isnan(fraction) else f"{scale * fraction:.0f} %")
    return cells

  def number(value, digits=3):
    return f"{value:.{digits}f}"

  def percent(value, _digits=3):
    return f"{value:.0f} %"

  def rows(cells):
    lines = []
    for run, seeds in runs.items():
      for seed, values in seeds.items():
        lines.append(f"| {run} | {seed} | " + " | ".join(cells(values, number)) + " |")
      if run in spreads:
        lines.append(f"| {run} | spread | " + " | ".join(cells(spreads[run], percent)) + " |")
    return lines

  def study_cells(values, form):
    cells = [form(values[f"{s}/{STUDY}"]) for s in splits]
    if form is percent:  # a spread row: no ratios
      return cells
    first = values[f"{splits[0]}/{STUDY}"]
    return [cells[0]] + [
      # "-": no case passed the study's small-radius filter
      "-"
      if math.isnan(values[f"{s}/{STUDY}"])
      else f"{cell} ({values[f'{s}/{STUDY}'] / first:.1f} x)"
      for cell, s in zip(cells[1:], splits[1:], strict=True)
    ]

  def physics_iq_cells(values, form):
    scale = 1 if form is percent else 100  # spreads are per cent already
    return [
      form(scale * values[f"{s}/physics_iq"], 1) if f"{s}/physics_iq" in values else "-"
      for s in splits
    ]

  physics_split = table["physics_split"]
  lines = [
    "Velocity error (world units / s; the study's mean-then-abs / the paper's mean |v - v_true|)",
    "",
    "| run | seed | " + " | ".join(splits) + " |",
    "|---|---|" + "---|" * len(splits),
    *rows(velocity_cells),
    "",
    "Velocity error by the study's code (`velocity_error_study`), each OOD split's ratio to ID",
    "",
    "| run | seed | " + " | ".join(splits) + " |",
    "|---|---|" + "---|" * len(splits),
    *rows(study_cells),
    "",
    "Physics consistency and image quality",
    "",
    f"| run | seed | ID frame MSE | ID {law} (floor) | {physics_split}: fit residual / "
    f"{law} (floor) / fitted-v error |" + (" follows the guide |" if follows else ""),
    "|---|---|---|---|---|" + ("---|" if follows else ""),
    *rows(physics_cells),
  ]
  rewards = [
    f"| {run} | {seed} | {values['reward_first']:.3f} | {values['reward_last']:.3f} |"
    for run, seeds in runs.items()
    for seed, values in seeds.items()
    if "reward_first" in values
  ]
  if rewards:
    lines += ["", "| run | seed | first logged reward_mean | last |", "|---|---|---|---|", *rewards]
  if any(
    f"{splits[0]}/physics_iq" in values for seeds in runs.values() for values in seeds.values()
  ):
    lines += [
      "",
      "Physics-IQ score (x 100; 100: as close to the truth as a second simulated take)",
      "",
      "| run | seed | " + " | ".join(splits) + " |",
      "|---|---|" + "---|" * len(splits),
      *rows(physics_iq_cells),
    ]
  return "\n".join(lines) + "\n"


def main(argv: Sequence[str]) -> None:
  table = results(parse_runs(argv[1:]), _PHYSICS_SPLIT.value)
  print(markdown(table))
  text = json.dumps(table, indent=2, sort_keys=True)
  print(text)
  if _JSON_OUT.value:
    os.makedirs(os.path.dirname(os.path.abspath(_JSON_OUT.value)), exist_ok=True)
    with open(_JSON_OUT.value, "w") as f:
      f.write(text + "\n")


if __name__ == "__main__":
  app.run(main)
