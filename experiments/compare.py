"""Gathers evaluated runs into the study's scaling table (its Figure 3) and plot.

Each run's workdir holds `eval.json`, written by our evaluation: per split the mean velocity error
over the scored cases, the parser floor on the ground-truth frames and the number of scored cases.

- The metric is `velocity_error_study`, the study's evaluation code reproduced
  (`velocity_probe`: x only, 8-bit frames, its frame masks, its small-radius filter,
  |mean v_x - mean v_x,true|, and its renderer's pixel grid, which reads every speed 1/256 too
  slow), so that ours and its published numbers (Figure 3, its ground-truth floors) are alike.
  Its floor is `floor_study`, its case count `count_study`.
- ID of a run: the metric on its `id_split`.
- OOD of a run: the count-weighted mean of the metric over its `ood_splits` (splits with no
  scored case are left out), i.e. the error over all its OOD cases pooled, as the study's "out"
  bucket pools its OOD levels. The OOD floor is pooled the same way.

    python -m experiments.main --mode=compare --workdir=OUT --runs='DIR1,DIR2,glob*'

writes `OUT/scaling.md` (ours beside the study's numbers) and `OUT/scaling.png`. Runs of a
mechanism experiment (an `eval.json` with probe numbers, `experiments.probes`) are drawn side by
side instead, one image per probe (`OUT/<probe>.png`, e.g. Figure 5's five panels), with their
headline numbers in `OUT/mechanisms.md`.
"""

from __future__ import annotations

import glob
import json
import math
import os
import re
from collections.abc import Sequence
from typing import Any

from absl import logging
from matplotlib import lines, ticker
from matplotlib.figure import Figure

EVAL_FILE = "eval.json"
METRIC, FLOOR, COUNT = "velocity_error_study", "floor_study", "count_study"
Run = dict[str, Any]
Cell = dict[str, float]
Table = dict[str, dict[str, dict[str, Cell]]]  # task -> model size -> dataset size -> cell

STUDY_TASKS = ("uniform_motion", "collision", "parabola")
STUDY_DATASET_SIZES = ("30K", "300K", "3M")
# The order of worldmodel.dit.SIZES: tiny CPU sizes, then the study's DiT-S/B/L/XL.
MODEL_SIZE_ORDER = ("micro", "tiny", "small", "S", "B", "L", "XL")
MODEL_COLORS = {"S": "tab:blue", "B": "tab:orange", "L": "tab:green", "XL": "tab:red"}

# (ID, OOD) velocity error per model size at 30K, 300K, 3M videos. The parabola numbers are
# read off the figure; the others are printed in it.
_STUDY_ROWS = {
  "uniform_motion": {
    "S": ((0.0221, 0.4349), (0.0184, 0.2929), (0.0149, 0.2875)),
    "B": ((0.0166, 0.4330), (0.0148, 0.3281), (0.0138, 0.3583)),
    "L": ((0.0150, 0.3783), (0.0140, 0.3847), (0.0124, 0.4270)),
  },
  "collision": {
    "S": ((0.0267, 0.1873), (0.0241, 0.2000), (0.0227, 0.1525)),
    "B": ((0.0302, 0.2411), (0.0193, 0.1663), (0.0181, 0.2106)),
    "L": ((0.0240, 0.2700), (0.0158, 0.1725), (0.0153, 0.1613)),
  },
  "parabola": {
    "S": ((0.0509, 0.3065), (0.0493, 0.2847), (0.0472, 0.3067)),
    "B": ((0.0430, 0.3165), (0.0381, 0.3759), (0.0358, 0.2881)),
    "L": ((0.0379, 0.3144), (0.0345, 0.3515), (0.0331, 0.3375)),
  },
}
# The study's Figure 3: task -> model size -> dataset size -> {"id", "ood"} velocity error.
STUDY_FIGURE3: dict[str, dict[str, dict[str, Cell]]] = {
  task: {
    size: {
      data: {"id": id_error, "ood": ood_error}
      for data, (id_error, ood_error) in zip(STUDY_DATASET_SIZES, cells, strict=True)
    }
    for size, cells in rows.items()
  }
  for task, rows in _STUDY_ROWS.items()
}
# The study's parser error on its 256 x 256 ground-truth frames (no OOD floor for the parabola),
# mostly the bias of its pixel grid, which `floor_study` reproduces.
STUDY_FLOORS: dict[str, dict[str, float | None]] = {
  "uniform_motion": {"id": 0.0099, "ood": 0.0114},
  "collision": {"id": 0.0117, "ood": 0.0078},
  "parabola": {"id": 0.0210, "ood": None},
}


def load_runs(workdirs: Sequence[str]) -> list[Run]:
  """One summary per workdir with an `eval.json`; entries may be glob patterns.

  A directory without `eval.json` is skipped with a warning; a malformed file raises a one-line
  ValueError naming it. Each summary has the run's labels, "id", "ood", "id_floor", "ood_floor".
  """
  runs = []
  for path in _eval_files(workdirs):
    if not _probes_only(path):
      runs.append(_summarize(path))
  return runs


def _eval_files(workdirs: Sequence[str]) -> list[str]:
  """The `eval.json` path of each distinct workdir that has one (the others skipped, warned)."""
  paths = []
  for workdir in dict.fromkeys(_expand(workdirs)):
    path = os.path.join(workdir, EVAL_FILE)
    if not os.path.isfile(path):
      logging.warning("skipping %s: no %s", workdir, EVAL_FILE)
      continue
    paths.append(path)
  return paths


def _read(path: str) -> Any:
  """The JSON in `path`, or a one-line ValueError naming the file."""
  try:
    with open(path) as f:
      return json.load(f)
  except (OSError, ValueError) as error:
    raise ValueError(f"malformed {path}: {str(error).splitlines()[0]}") from None


def _probes_only(path: str) -> bool:
  """Whether an eval.json is a mechanism run's: probe numbers and no OOD split to scale."""
  evaluation = _read(path)
  return (
    isinstance(evaluation, dict)
    and bool(evaluation.get("probes"))
    and not evaluation.get("ood_splits")
  )


def load_probe_runs(workdirs: Sequence[str]) -> list[tuple[str, dict[str, Any]]]:
  """(label, probe numbers) of every run whose eval.json has probe numbers, ordered by label:
  the run's preset (e.g. "fig5_panel3"), direction, pairing, kind and seed other than 0 where
  it has them, else its workdir."""
  runs = []
  for path in _eval_files(workdirs):
    evaluation = _read(path)
    found = evaluation.get("probes") if isinstance(evaluation, dict) else None
    if found:
      runs.append((_probe_label(path, evaluation), found))
  return sorted(runs, key=lambda run: run[0])


def _probe_label(path: str, evaluation: dict[str, Any]) -> str:
  numbers = next(iter(evaluation["probes"].values()))
  keys = ("preset", "direction", "pairing", "kind")
  parts = [str(numbers[key]) for key in keys if numbers.get(key)]
  if evaluation.get("seed"):
    parts.append(f"seed {evaluation['seed']}")
  return ", ".join(parts) or os.path.basename(os.path.dirname(path))


def write_probe_comparison(runs: Sequence[tuple[str, dict[str, Any]]], out_dir: str) -> str:
  """Per probe, its figure of every run side by side (`<probe>.png`) and a table of its headline
  numbers; returns the path of `mechanisms.md`."""
  from experiments import probes  # the probe classes draw their own panels

  os.makedirs(out_dir, exist_ok=True)
  lines = ["# Mechanism experiments", ""]
  names = _ordered({name for _, found in runs for name in found}, tuple(probes.PROBES))
  for name in names:
    probe = probes.PROBES[name]
    panels = [(label, found[name]) for label, found in runs if name in found]
    figure = Figure(figsize=(4.4 * len(panels), 4.0))
    for index, (label, numbers) in enumerate(panels):
      probe.draw(figure.add_subplot(1, len(panels), index + 1), numbers, label)
    figure.tight_layout()
    figure.savefig(os.path.join(out_dir, f"{name}.png"), dpi=100)
    headlines = [probe.headline(numbers) for _, numbers in panels]
    columns = list(dict.fromkeys(c for row in headlines for c in row))
    lines += [
      f"## {probe.title}",
      "",
      "| run | " + " | ".join(columns) + " |",
      "|---|" + "---|" * len(columns),
      *(
        f"| {label} | " + " | ".join(row.get(c, "-") for c in columns) + " |"
        for (label, _), row in zip(panels, headlines, strict=True)
      ),
      "",
      *probe.across_runs(panels),
      f"![{name}]({name}.png)",
      "",
    ]
  markdown = os.path.join(out_dir, "mechanisms.md")
  with open(markdown, "w") as f:
    f.write("\n".join(lines))
  return markdown


def _expand(entries: Sequence[str]) -> list[str]:
  paths = []
  for entry in entries:
    if not glob.has_magic(entry):
      paths.append(os.path.normpath(entry))
      continue
    matches = sorted(path for path in glob.glob(entry) if os.path.isdir(path))
    if not matches:
      logging.warning("pattern %r matches no directory", entry)
    paths += [os.path.normpath(path) for path in matches]
  return paths


def _summarize(path: str) -> Run:
  """The run summary of one `eval.json`, or a one-line ValueError naming the file."""
  evaluation = _read(path)
  try:
    if not isinstance(evaluation, dict):
      raise TypeError(f"expected a JSON object, got {type(evaluation).__name__}")
    splits, ood_splits = evaluation["splits"], evaluation["ood_splits"]
    if not ood_splits or not isinstance(ood_splits, list):
      raise ValueError("ood_splits must be a non-empty list")
    for name in (evaluation["id_split"], *ood_splits):
      if name not in splits:
        raise ValueError(f"split {name!r} is not in splits")
    id_numbers = splits[evaluation["id_split"]]
    ood_numbers = [splits[name] for name in ood_splits]
    return {
      "workdir": os.path.dirname(path),
      "task": _label(evaluation, "task"),
      "model_size": _label(evaluation, "model_size"),
      "dataset_size": _label(evaluation, "dataset_size"),
      "step": int(evaluation["step"]),
      "resolution": int(evaluation["resolution"]),
      "ood_splits": list(ood_splits),
      "id": float(id_numbers[METRIC]),
      "ood": _pooled(ood_numbers, METRIC),
      "id_floor": float(id_numbers[FLOOR]),
      "ood_floor": _pooled(ood_numbers, FLOOR),
    }
  except KeyError as error:
    raise ValueError(f"malformed {path}: missing key {error}") from None
  except (OSError, TypeError, ValueError) as error:
    message = str(error).splitlines()[0] if str(error) else type(error).__name__
    raise ValueError(f"malformed {path}: {message}") from None


def _label(evaluation: dict[str, Any], key: str) -> str:
  value = evaluation[key]
  if not isinstance(value, str) or not value:
    raise ValueError(f"{key} must be a non-empty string, got {value!r}")
  return value


def _pooled(splits: list[dict[str, Any]], key: str) -> float:
  """Count-weighted mean of `key` over splits with scored cases (NaN if none has one)."""
  scored = [(int(numbers[COUNT]), float(numbers[key])) for numbers in splits]
  total = sum(count for count, _ in scored if count > 0)
  if not total:
    return math.nan
  return sum(count * value for count, value in scored if count > 0) / total


def scaling_table(runs: Sequence[Run]) -> Table:
  """Nested task -> model size -> dataset size -> {"id", "ood", "id_floor", "ood_floor", "step"}.

  Where two runs share a cell the one with the higher step is kept (the first on a tie), with a
  warning naming both.
  """
  return _tabulate(_latest_runs(runs))


def _latest_runs(runs: Sequence[Run]) -> list[Run]:
  """The runs left after keeping, per (task, model size, dataset size), the highest step."""
  kept: dict[tuple[str, str, str], Run] = {}
  for candidate in runs:
    key = (candidate["task"], candidate["model_size"], candidate["dataset_size"])
    previous = kept.setdefault(key, candidate)
    if previous is candidate:
      continue
    later = candidate["step"] > previous["step"]
    winner, loser = (candidate, previous) if later else (previous, candidate)
    kept[key] = winner
    logging.warning(
      "%s DiT-%s %s: two runs, keeping %s (step %d) over %s (step %d)",
      *key,
      winner["workdir"],
      winner["step"],
      loser["workdir"],
      loser["step"],
    )
  return list(kept.values())


def _tabulate(runs: Sequence[Run]) -> Table:
  table: Table = {}
  for r in runs:
    table.setdefault(r["task"], {}).setdefault(r["model_size"], {})[r["dataset_size"]] = {
      name: r[name] for name in ("id", "ood", "id_floor", "ood_floor", "step")
    }
  return table


def write_comparison(runs: Sequence[Run], out_dir: str) -> str:
  """Writes `scaling.md` and `scaling.png` (ours beside the study) to `out_dir`; returns the .md."""
  os.makedirs(out_dir, exist_ok=True)
  latest = _latest_runs(runs)
  table = _tabulate(latest)
  tasks = _ordered(table, STUDY_TASKS)
  _plot(table, tasks, os.path.join(out_dir, "scaling.png"))
  markdown = os.path.join(out_dir, "scaling.md")
  with open(markdown, "w") as f:
    f.write("\n".join(_markdown(table, tasks, runs, latest)) + "\n")
  return markdown


def run(runs_arg: str, out_dir: str) -> list[str]:
  """Compares the runs of a comma-separated list of workdirs and glob patterns: the scaling
  table of the law runs, the side-by-side probes of the mechanism runs; returns the .md files."""
  entries = [entry.strip() for entry in runs_arg.split(",") if entry.strip()]
  runs, probe_runs = load_runs(entries), load_probe_runs(entries)
  if not runs and not probe_runs:
    raise ValueError(f"no run with {EVAL_FILE} in --runs={runs_arg!r}; evaluate the runs first")
  written = [write_comparison(runs, out_dir)] if runs else []
  if probe_runs:
    written.append(write_probe_comparison(probe_runs, out_dir))
  return written


def _ordered(names, preferred: Sequence[str]) -> list[str]:
  """`names` in the order of `preferred`, then the others alphabetically."""
  return sorted(names, key=lambda name: _rank(name, preferred))


def _rank(name: str, preferred: Sequence[str]) -> tuple[int, str]:
  return (preferred.index(name) if name in preferred else len(preferred), name)


def _run_order(r: Run) -> tuple:
  """Runs by task, model size, dataset size (as in the tables), then the later step first."""
  return (
    _rank(r["task"], STUDY_TASKS),
    _rank(r["model_size"], MODEL_SIZE_ORDER),
    _dataset_count(r["dataset_size"]) or math.inf,
    r["dataset_size"],
    -r["step"],
  )


def _dataset_count(label: str) -> float | None:
  """The number of videos of a dataset-size label like "300K" or "3M" (None for "continuous")."""
  match = re.fullmatch(r"(\d+(?:\.\d+)?)([KM]?)", label)
  if match is None:
    return None
  return float(match[1]) * {"": 1, "K": 1e3, "M": 1e6}[match[2]]


def _dataset_sizes(labels) -> list[str]:
  """Dataset-size labels by number of videos; non-numeric ones last."""
  return sorted(labels, key=lambda label: (_dataset_count(label) or math.inf, label))


def _format(value: float | None) -> str:
  return "n/a" if value is None or math.isnan(value) else f"{value:.4f}"


def _span(values: list[float]) -> str:
  """One number, or "low–high" where the runs disagree at the shown precision."""
  values = [value for value in values if not math.isnan(value)]
  if not values:
    return "n/a"
  low, high = _format(min(values)), _format(max(values))
  return low if low == high else f"{low}–{high}"


def _grid(cells: dict[str, dict[str, Cell]], sizes: list[str], columns: list[str]) -> list[str]:
  """A markdown table: one row per model size, "ID / OOD" per dataset size."""
  rows = [f"| model | {' | '.join(columns)} |", "|---" * (len(columns) + 1) + "|"]
  for size in sizes:
    entries = [cells[size].get(column) for column in columns]
    shown = [f"{_format(cell['id'])} / {_format(cell['ood'])}" if cell else "—" for cell in entries]
    rows.append(f"| DiT-{size} | {' | '.join(shown)} |")
  return rows


def _markdown(table: Table, tasks: list[str], runs: Sequence[Run], latest: list[Run]) -> list[str]:
  out = [
    "# Scaling: velocity error by model size and dataset size",
    "",
    "Cells are ID / OOD velocity error, ours scored by the study's evaluation code with its",
    "pixel grid (`velocity_error_study`), so that both are alike. A run's OOD is the",
    "count-weighted mean over its OOD splits (all OOD cases pooled), as the study pools its OOD",
    "levels. Where two runs share a cell, the one with the higher step is shown.",
    "",
    "![scaling](scaling.png)",
  ]
  for task in tasks:
    cells = table[task]
    task_runs = [r for r in runs if r["task"] == task]
    ood_splits = list(dict.fromkeys(name for r in task_runs for name in r["ood_splits"]))
    kept = [cell for row in cells.values() for cell in row.values()]
    out += [
      "",
      f"## {task}",
      "",
      f"Ours (OOD splits: {', '.join(ood_splits)}):",
      "",
      *_grid(
        cells,
        _ordered(cells, MODEL_SIZE_ORDER),
        _dataset_sizes({data for row in cells.values() for data in row}),
      ),
      "",
      f"Ground-truth parser floor (ours): ID {_span([c['id_floor'] for c in kept])}, "
      f"OOD {_span([c['ood_floor'] for c in kept])}.",
    ]
    if task in STUDY_FIGURE3:
      floors = STUDY_FLOORS[task]
      out += [
        "",
        "The study (Kang et al., 2024, Figure 3):",
        "",
        *_grid(STUDY_FIGURE3[task], list(STUDY_FIGURE3[task]), list(STUDY_DATASET_SIZES)),
        "",
        f"Ground-truth parser floor (study): ID {_format(floors['id'])}, "
        f"OOD {_format(floors['ood'])}.",
      ]
    else:
      out += ["", "The study has no numbers for this task."]
  out += [
    "",
    "## Runs",
    "",
    "| task | model | data | step | resolution | OOD splits | workdir | in the table |",
    "|---|---|---|---|---|---|---|---|",
  ]
  for r in sorted(runs, key=_run_order):
    shown = "yes" if any(r is kept for kept in latest) else "no: a later step shares the cell"
    out.append(
      f"| {r['task']} | DiT-{r['model_size']} | {r['dataset_size']} | {r['step']} | "
      f"{r['resolution']} | {', '.join(r['ood_splits'])} | `{r['workdir']}` | {shown} |"
    )
  return out


def _plot(table: Table, tasks: list[str], path: str) -> None:
  """Figure 3 layout: per task an ID and an OOD panel, error against dataset size, log-log."""
  figure = Figure(figsize=(10, 3.2 * len(tasks) + 0.6), layout="constrained")
  axes = figure.subplots(len(tasks), 2, squeeze=False)
  all_sizes = _ordered(
    {size for task in tasks for size in (*table[task], *STUDY_FIGURE3.get(task, {}))},
    MODEL_SIZE_ORDER,
  )
  spare = iter(("tab:purple", "tab:brown", "tab:pink", "tab:olive", "tab:cyan"))
  colors = {size: MODEL_COLORS.get(size) or next(spare, "black") for size in all_sizes}
  for row, task in zip(axes, tasks, strict=True):
    ours, study = table[task], STUDY_FIGURE3.get(task, {})
    for ax, split in zip(row, ("id", "ood"), strict=True):
      ticks = set()
      for source, style in ((study, dict(ls="--", marker="s", ms=4, alpha=0.6)), (ours, {})):
        for size, cells in source.items():
          points = [(_dataset_count(data), cell[split]) for data, cell in cells.items()]
          points = sorted((x, y) for x, y in points if x is not None)
          if points:
            x, y = zip(*points, strict=True)
            ax.plot(x, y, color=colors[size], **({"marker": "o", "lw": 2} | style))
            ticks.update(x)
      floors = [cell[f"{split}_floor"] for cells in ours.values() for cell in cells.values()]
      floors = [value for value in floors if not math.isnan(value)]
      if floors:
        ax.axhline(sum(floors) / len(floors), color="grey", lw=1.5)
      study_floor = STUDY_FLOORS.get(task, {}).get(split)
      if study_floor is not None:
        ax.axhline(study_floor, color="grey", lw=1.5, ls="--", alpha=0.6)
      _style_axes(ax, sorted(ticks))
      ax.set_title(f"{task}: {'ID' if split == 'id' else 'OOD'}")
    row[0].set_ylabel("velocity error")
  for ax in axes[-1]:
    ax.set_xlabel("training videos")
  handles = [
    lines.Line2D([], [], color=colors[size], lw=2, label=f"DiT-{size}") for size in all_sizes
  ]
  handles += [
    lines.Line2D([], [], color="black", marker="o", lw=2, label="ours"),
    lines.Line2D([], [], color="black", marker="s", ms=4, ls="--", alpha=0.6, label="study"),
    lines.Line2D([], [], color="grey", lw=1.5, label="GT parser floor"),
  ]
  figure.legend(handles=handles, loc="outside upper center", ncol=len(handles), frameon=False)
  figure.savefig(path, dpi=120)


def _style_axes(ax, ticks: list[float]) -> None:
  """Log axes: the dataset sizes as x ticks, plain-number y ticks (denser within one decade)."""
  ax.set_xscale("log")
  ax.set_yscale("log")
  if ticks:
    ax.set_xticks(ticks, [_short(tick) for tick in ticks])
    ax.set_xlim(ticks[0] / 1.6, ticks[-1] * 1.6)
  ax.xaxis.set_minor_locator(ticker.NullLocator())
  low, high = ax.get_ylim()
  subs = (1.0, 2.0, 5.0) if high / low > 10 else (1.0, 1.5, 2.0, 3.0, 5.0, 7.0)
  ax.yaxis.set_major_locator(ticker.LogLocator(subs=subs))
  ax.yaxis.set_major_formatter(ticker.FuncFormatter(lambda value, _: f"{value:g}"))
  ax.yaxis.set_minor_formatter(ticker.NullFormatter())
  ax.grid(True, which="major", alpha=0.3)


def _short(count: float) -> str:
  """3e4 -> "30K", 3e6 -> "3M"."""
  for unit, scale in (("M", 1e6), ("K", 1e3)):
    if count >= scale:
      return f"{count / scale:g}{unit}"
  return f"{count:g}"
