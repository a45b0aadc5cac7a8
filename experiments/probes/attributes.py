"""The study's attribute priority (its section 5.3): which attribute does the model keep when a
test case pairs two attributes in a way training never did?

A run trains on one pairing's two combinations (`sims.make(..., pairing=NAME)`, `sims.pairings`)
and is evaluated on the swapped ones (split "swapped"). `sims.parsing.parse_attributes` reads
every generated frame in which the true object is fully in view: the object is the palette
colour covering the most pixels, and its shape, size (radius from area) and position are that
colour's. Per case, the generated colour and shape are the majority over those frames, the size
their median radius and the velocity the mean forward-difference x velocity of the object.

Each swapped case differs from each training combination in one of the two bound attributes,
so a rollout either keeps an attribute, bends it to the value of the training combination that
shares the other attribute ("to training"), or does something else (a third shape, a vanished
object). For a continuous attribute (size, velocity) "to training" means the generated value
crossed into the training partner's range; the mean shift (generated - conditioned) per
swapped combination is the study's drift measure. The attribute kept in more
rollouts wins the pair; `across_runs` orders the attributes from the pairs of several runs.
"""

from __future__ import annotations

import itertools
from typing import Any

import jax.numpy as jnp
import numpy as np
from etils import epath
from matplotlib.axes import Axes

import sims
from experiments.probes.base import Batch, KeptCase, Probe, Section, gif_lines
from sims import pairings

# The study: colour > size > velocity > shape (pairwise; 0 exceptions in 1,400 colour-shape
# tests), and its mean drifts of the continuous attributes [digitised].
STUDY_ORDER = ("color", "size", "velocity", "shape")
STUDY_SHIFTS = {
  "color_size": {"red large": -0.021, "blue small": -0.008},
  "color_velocity": {"blue slow": 0.33, "red fast": -0.13},
}
OUTCOMES = ("kept", "to training", "other")
_COLUMN = {"size": "radius", "velocity": "speed", "color": "color", "shape": "shape"}
# Where a continuous attribute's two ranges meet in every pairing that binds it.
_THRESHOLDS = {"size": 1.05, "velocity": 2.5}


def combination_label(combination: pairings.Combination, attributes: tuple[str, str]) -> str:
  """A swapped combination named by its bound attributes' values, e.g. "blue slow"."""
  words = {
    "color": combination.color,
    "shape": combination.shape,
    "size": "small" if combination.radius[1] <= 1.05 else "large",
    "velocity": "slow" if combination.speed[1] <= 2.5 else "fast",
  }
  return " ".join(words[a] for a in attributes)


class AttributePriority(Probe):
  """Per bound attribute of the swapped cases: kept, bent to training, other; and the drifts."""

  name = "attributes"
  title = "Attribute priority (the study's section 5.3)"

  def __init__(self, scene: sims.Scene, config: Any):
    super().__init__(scene, config)
    self.pairing_name = scene.pairing
    self.pairing = pairings.get(scene.pairing)
    self.generated, self.floor, self.params = [], [], []
    self.train_kept: dict[str, list[np.ndarray]] = {}
    self.bent_case = KeptCase()

  @classmethod
  def check(cls, scene: sims.Scene) -> None:
    if getattr(scene, "pairing", None) is None:
      raise ValueError(
        f"probe {cls.name!r} needs a scene made with pairing= (sims.pairings), not {scene.name!r}"
      )

  def update(self, batch: Batch) -> None:
    if batch.split not in ("swapped", "train"):
      return
    in_view = np.asarray(sims.parsing.fully_in_view(batch.traj.position, batch.traj.radius))[..., 0]
    scored = in_view & (np.arange(in_view.shape[1]) >= self.config.video.context_frames)
    generated = case_attributes(batch.prediction, scored)
    if batch.split == "train":
      for attribute, kept in self._kept(batch.params, generated).items():
        self.train_kept.setdefault(attribute, []).append(kept)
      return
    self.generated.append(generated)
    self.floor.append(case_attributes(batch.truth, scored))
    self.params.append(batch.params)
    outcome = self._outcomes(batch.params, generated)
    bent = np.any([o == 1 for o in outcome.values()], axis=0)
    self.bent_case.offer(np.where(bent, 1.0, 0.0), batch)

  def _outcomes(
    self, params: np.ndarray, generated: dict[str, np.ndarray]
  ) -> dict[str, np.ndarray]:
    """Per bound attribute, each case's outcome: 0 kept, 1 to training, 2 other."""
    columns = {name: i for i, name in enumerate(self.scene.param_names)}
    result = {}
    for attribute in self.pairing.attributes:
      conditioned = params[:, columns[_COLUMN[attribute]]]
      value = generated[attribute]
      if attribute in ("color", "shape"):
        partner = np.array([self._training_value(attribute, row) for row in params])
        outcome = np.where(value == conditioned, 0, np.where(value == partner, 1, 2))
      else:
        threshold = _THRESHOLDS[attribute]
        crossed = (value > threshold) != (conditioned > threshold)
        outcome = np.where(np.isfinite(value), crossed.astype(int), 2)
      result[attribute] = outcome
    return result

  def _kept(self, params: np.ndarray, generated: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Per bound attribute, whether each case's rollout keeps its conditioned value (for a
    continuous attribute: stays on its side of the pairing's threshold)."""
    columns = {name: i for i, name in enumerate(self.scene.param_names)}
    kept = {}
    for attribute in self.pairing.attributes:
      conditioned, value = params[:, columns[_COLUMN[attribute]]], generated[attribute]
      if attribute in ("color", "shape"):
        kept[attribute] = value == conditioned
      else:
        threshold = _THRESHOLDS[attribute]
        kept[attribute] = np.isfinite(value) & ((value > threshold) == (conditioned > threshold))
    return kept

  def _training_value(self, attribute: str, row: np.ndarray) -> float:
    """The value of `attribute` in the training combination that shares the other bound
    attribute's value with the case `row`."""
    case = self._combination(row, self.pairing.swapped)
    (other,) = (a for a in self.pairing.attributes if a != attribute)
    for combination in self.pairing.train:
      if _value(combination, other) == _value(case, other):
        return float(combination.labels[0 if attribute == "color" else 1])
    raise AssertionError(f"no training combination shares {other} with {case}")

  @staticmethod
  def _combination(row: np.ndarray, combinations) -> pairings.Combination:
    for combination in combinations:
      if np.all(row >= combination.lo - 1e-6) and np.all(row <= combination.hi + 1e-6):
        return combination
    raise ValueError(f"case {row} is in none of {combinations}")

  def numbers(self) -> dict[str, Any]:
    params = np.concatenate(self.params) if self.params else np.zeros((0, 4))
    generated, floor = (_stack(parts) for parts in (self.generated, self.floor))
    attributes = self.pairing.attributes
    outcome, floor_outcome = self._outcomes(params, generated), self._outcomes(params, floor)
    labels = [
      combination_label(self._combination(row, self.pairing.swapped), attributes) for row in params
    ]
    combos = [combination_label(c, attributes) for c in self.pairing.swapped]
    columns = {name: i for i, name in enumerate(self.scene.param_names)}
    per_attribute = {}
    for attribute in attributes:
      entry = {
        "counts": _counts(outcome[attribute]),
        "floor_counts": _counts(floor_outcome[attribute]),
        "by_combination": {
          combo: _counts(outcome[attribute][np.asarray(labels) == combo]) for combo in combos
        },
      }
      if attribute in ("size", "velocity"):
        shift = generated[attribute] - params[:, columns[_COLUMN[attribute]]]
        entry["mean_shift"] = {
          combo: _nanmean(shift[np.asarray(labels) == combo]) for combo in combos
        }
        entry["floor_mean_shift"] = _nanmean(
          floor[attribute] - params[:, columns[_COLUMN[attribute]]]
        )
      train = np.concatenate(self.train_kept.get(attribute, [np.zeros(0, bool)]))
      entry["train_kept"] = {"kept": int(train.sum()), "cases": len(train)}
      per_attribute[attribute] = entry
    kept = {a: per_attribute[a]["counts"]["kept"] for a in attributes}
    winner = "tie" if kept[attributes[0]] == kept[attributes[1]] else max(kept, key=kept.get)
    vanished = int(np.sum(~np.isfinite(generated["size"])))
    return {
      "pairing": self.pairing_name,
      "attributes": list(attributes),
      "cases": len(params),
      "vanished": vanished,
      "winner": winner,
      "per_attribute": per_attribute,
      "study_shift": STUDY_SHIFTS.get(self.pairing_name, {}),
    }

  def finish(self, out_dir: epath.Path, report_dir: str) -> Section:
    numbers = self.numbers()
    self.save_figure(numbers, out_dir, self.pairing_name, (5.4, 3.8))
    gif = self.bent_case.write_gif(out_dir, "attributes_case.gif", self.config.eval.gif_scale)
    a, b = numbers["attributes"]
    lines = [
      f"## {self.title}",
      "",
      f"Pairing `{self.pairing_name}`: trained on "
      f"{', '.join(combination_label(c, (a, b)) for c in self.pairing.train)}; tested on the "
      f"swapped {', '.join(combination_label(c, (a, b)) for c in self.pairing.swapped)} "
      f"({numbers['cases']} cases, {numbers['vanished']} with the object gone). Per bound "
      "attribute: kept, bent to the training combination's value, or other; the same parser on "
      "the true frames in brackets, and on rollouts of the training combinations (no conflict: "
      "what the model and the parser keep there bounds what a conflict can show).",
      "",
      "| attribute | combination | kept | to training | other | mean shift |",
      "|---|---|---|---|---|---|",
    ]
    for attribute in (a, b):
      entry = numbers["per_attribute"][attribute]
      for combo, counts in entry["by_combination"].items():
        shift = entry.get("mean_shift", {}).get(combo)
        lines.append(
          f"| {attribute} | {combo} | {_cell(counts, 'kept')} | {_cell(counts, 'to training')} "
          f"| {_cell(counts, 'other')} | {'' if shift is None else f'{shift:+.3f}'} |"
        )
      floor = entry["floor_counts"]
      lines.append(f"| {attribute} | all (floor) | ({_cell(floor, 'kept')}) | | | |")
      train = entry["train_kept"]
      if train["cases"]:
        share = f"{100 * train['kept'] / train['cases']:.0f}% ({train['kept']})"
        lines.append(f"| {attribute} | training combinations | {share} | | | |")
    lines += [
      "",
      f"Kept more often: **{numbers['winner']}**. The study: colour > size > velocity > shape "
      "(0 exceptions in 1,400 colour-shape cases); for the ring pairing colour > shape no longer "
      "holds. Its drifts: "
      + (
        ", ".join(f"{k} {v:+.3f}" for k, v in numbers["study_shift"].items())
        or "none given for this pairing"
      )
      + ".",
      "",
      f"![attributes]({report_dir}/attributes.png)",
      "",
    ]
    lines += gif_lines("A rollout that bends an attribute to training", report_dir, gif)
    return Section(numbers, lines)

  @staticmethod
  def draw(ax: Axes, numbers: dict[str, Any], title: str) -> None:
    bars = [
      (f"{attribute}\n{combo}", counts)
      for attribute in numbers["attributes"]
      for combo, counts in numbers["per_attribute"][attribute]["by_combination"].items()
    ]
    bottom = np.zeros(len(bars))
    for outcome, color in zip(OUTCOMES, ("tab:green", "tab:red", "0.6"), strict=True):
      share = np.array([_share(counts, outcome) for _, counts in bars])
      ax.bar(range(len(bars)), share, bottom=bottom, color=color, label=outcome)
      bottom += share
    ax.set_xticks(range(len(bars)), [label for label, _ in bars], fontsize=7)
    ax.set(ylabel="share of rollouts", ylim=(0, 1))
    ax.set_title(f"{title}: {numbers['winner']} kept more", fontsize=9)
    ax.legend(fontsize=7, loc="lower right")

  @staticmethod
  def headline(numbers: dict[str, Any]) -> dict[str, str]:
    def kept(attribute: str) -> str:
      entry = numbers["per_attribute"][attribute]
      train = entry.get("train_kept", {}).get("cases")
      trained = f"; training {100 * entry['train_kept']['kept'] / train:.0f}%" if train else ""
      return f"{attribute} {_cell(entry['counts'], 'kept')}{trained}"

    first, second = (kept(a) for a in numbers["attributes"])
    return {
      "pairing": numbers["pairing"],
      "kept more": numbers["winner"],
      "first attribute kept": first,
      "second attribute kept": second,
      "object gone": str(numbers["vanished"]),
    }

  @staticmethod
  def across_runs(panels: list[tuple[str, dict[str, Any]]]) -> list[str]:
    """The attribute ordering implied by the pairs' winners, beside the study's."""
    return ["Derived ordering: " + attribute_order([n for _, n in panels]), ""]


def attribute_order(runs: list[dict[str, Any]]) -> str:
  """Attributes ranked by pairwise wins over the runs' pairings (colour-ring excluded: it tests
  the pixel hypothesis, not the ranking), beside the study's colour > size > velocity > shape;
  "=" joins attributes with equal wins."""
  wins: dict[str, int] = {}
  for numbers in runs:
    if numbers["pairing"] == "color_ring":
      continue
    for attribute in numbers["attributes"]:
      wins.setdefault(attribute, 0)
    if numbers["winner"] != "tie":
      wins[numbers["winner"]] += 1
  ranked = sorted(wins, key=lambda a: -wins[a])
  groups = [list(g) for _, g in itertools.groupby(ranked, key=lambda a: wins[a])]
  ours = " > ".join(" = ".join(group) for group in groups) or "no pairing runs"
  return f"{ours} (study: {' > '.join(STUDY_ORDER)})"


def case_attributes(frames: np.ndarray, scored: np.ndarray) -> dict[str, np.ndarray]:
  """Per video [n, T, H, W, 3], over its `scored` frames [n, T]: the majority colour (PALETTE
  index) and shape (SHAPES index), the median radius and the mean x velocity of the object (the
  palette colour with the most area in each frame); NaN where the object is never found."""
  parsed = sims.parsing.parse_attributes(jnp.asarray(frames), colors=pairings.PALETTE)
  area = np.where(np.asarray(parsed.found), np.asarray(parsed.area), 0.0)  # [n, T, K]
  color = np.argmax(area, -1)  # [n, T]
  seen = scored & (area.max(-1) > 0)

  def own(field: np.ndarray) -> np.ndarray:
    index = color.reshape(*color.shape, 1, *(1,) * (field.ndim - 3))
    return np.take_along_axis(field, index, axis=2)[:, :, 0]

  shape, radius = own(np.asarray(parsed.shape)), own(np.asarray(parsed.radius))
  x = own(np.asarray(parsed.position))[..., 0]
  pair = seen[:, 1:] & seen[:, :-1] & (color[:, 1:] == color[:, :-1])
  velocity = np.diff(x, axis=1) / sims.FRAME_DT
  with np.errstate(invalid="ignore"):
    mean_velocity = np.where(pair, velocity, 0).sum(1) / pair.sum(1)
  return {
    "color": _majority(color, seen, len(pairings.PALETTE)),
    "shape": _majority(shape, seen, len(sims.SHAPES)),
    "size": np.array(
      [np.median(r[s]) if s.any() else np.nan for r, s in zip(radius, seen, strict=True)]
    ),
    "velocity": mean_velocity,
  }


def _majority(values: np.ndarray, mask: np.ndarray, classes: int) -> np.ndarray:
  """[n] the most frequent class per row under `mask`; NaN for rows with nothing."""
  votes = np.stack([((values == c) & mask).sum(1) for c in range(classes)], -1)
  return np.where(mask.any(1), votes.argmax(-1), np.nan)


def _value(combination: pairings.Combination, attribute: str):
  return {
    "color": combination.color,
    "shape": combination.shape,
    "size": combination.radius,
    "velocity": combination.speed,
  }[attribute]


def _stack(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
  keys = ("color", "shape", "size", "velocity")
  return {k: np.concatenate([p[k] for p in parts]) if parts else np.zeros(0) for k in keys}


def _counts(outcome: np.ndarray) -> dict[str, int]:
  return {name: int(np.sum(outcome == i)) for i, name in enumerate(OUTCOMES)}


def _share(counts: dict[str, int], outcome: str) -> float:
  return counts[outcome] / max(sum(counts.values()), 1)


def _cell(counts: dict[str, int], outcome: str) -> str:
  return f"{100 * _share(counts, outcome):.0f}% ({counts[outcome]})"


def _nanmean(values: np.ndarray) -> float | None:
  finite = values[np.isfinite(values)]
  return float(finite.mean()) if len(finite) else None
