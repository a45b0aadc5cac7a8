"""The study's visual ambiguity (its section 5.5): do sub-pixel differences decide the outcome?

The ambiguity tasks (`sims.make("phyre", templates="ambiguity")`, `sims.phyre_ambiguity`) drop
a red ball onto two static balls with a gap (it passes or is blocked) or onto one static ball
(it rolls off left or right), each template scanning one quantity over 101 tasks whose outcome
flips once. Per case, the outcome rule (`phyre_ambiguity.outcome`) is applied to the true red
ball, to the red ball parsed by colour from the true frames (the parser's floor) and from the
rollout (the study's thresholds, `sims.parsing.hard_parse`); the rollout is right when its
outcome is the truth's. The study: the generated videos look plausible, but near the flip
pixel-level differences decide, often wrongly.
"""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
import numpy as np
from etils import epath
from matplotlib.axes import Axes

import sims
from experiments.probes.base import Batch, KeptCase, Probe, Section, gif_lines
from sims import phyre_ambiguity


class Ambiguity(Probe):
  """Per ambiguity template: the rollout's outcome against the truth's along the scan."""

  name = "ambiguity"
  title = "Visual ambiguity (the study's section 5.5)"

  def __init__(self, scene: sims.Scene, config: Any):
    super().__init__(scene, config)
    self.params, self.truth, self.floor, self.generated, self.lost = [], [], [], [], []
    self.wrong_case = KeptCase()

  @classmethod
  def check(cls, scene: sims.Scene) -> None:
    if not isinstance(scene, phyre_ambiguity.PhyreAmbiguity):
      raise ValueError(
        f"probe {cls.name!r} needs sims.make('phyre', templates='ambiguity'), not {scene.name!r}"
      )

  def update(self, batch: Batch) -> None:
    params = batch.params.astype(np.int32)
    red = sims.phyre.KIND_SLOTS[sims.phyre.RED_BALL][0]
    truth = np.asarray(phyre_ambiguity.outcome(batch.traj.position[:, :, red], params))
    floor, _ = parsed_outcome(batch.truth, params)
    generated, lost = parsed_outcome(batch.prediction, params)
    for name, values in (
      ("params", params),
      ("truth", truth),
      ("floor", floor),
      ("generated", generated),
      ("lost", lost),
    ):
      getattr(self, name).append(values)
    self.wrong_case.offer(np.where(generated != truth, 1.0, 0.0), batch)

  def numbers(self) -> dict[str, Any]:
    params, truth, floor, generated, lost = (
      np.concatenate(parts) if parts else np.zeros(0)
      for parts in (self.params, self.truth, self.floor, self.generated, self.lost)
    )
    templates = {}
    for template in phyre_ambiguity.AMBIGUITY_TEMPLATES:
      mine = params[:, 0] == template if len(params) else np.zeros(0, bool)
      if not mine.any():
        continue
      _, scanned = phyre_ambiguity.ambiguity_scan(params[mine])
      templates[str(template)] = {
        "scan": phyre_ambiguity.SCAN_NAMES[template],
        "outcome": phyre_ambiguity.OUTCOME_NAMES[template],
        "cases": int(mine.sum()),
        "accuracy": float(np.mean(generated[mine] == truth[mine])),
        "floor_accuracy": float(np.mean(floor[mine] == truth[mine])),
        "majority_accuracy": float(max(truth[mine].mean(), 1 - truth[mine].mean())),
        "red_lost": int(lost[mine].sum()),
        "task": params[mine, 1].tolist(),
        "value": [float(v) for v in scanned],
        "truth": truth[mine].astype(bool).tolist(),
        "generated": generated[mine].astype(bool).tolist(),
      }
    return {"templates": templates}

  def finish(self, out_dir: epath.Path, report_dir: str) -> Section:
    numbers = self.numbers()
    self.save_figure(numbers, out_dir, "ambiguity scans", (5.4, 3.6))
    gif = self.wrong_case.write_gif(out_dir, "ambiguity_case.gif", self.config.eval.gif_scale)
    lines = [
      f"## {self.title}",
      "",
      "Per ambiguity template: the share of scanned tasks whose rollout ends as the truth does "
      "(the red ball parsed by colour, the outcome rule of `sims.phyre_ambiguity`), beside the "
      "same rule on the parsed true frames and the share of the truth's more common outcome "
      "(what always guessing it scores).",
      "",
      "| template | scans | outcome | cases | rollout right | parser on the truth | majority "
      "| red ball lost |",
      "|---|---|---|---|---|---|---|---|",
    ]
    for template, entry in numbers["templates"].items():
      lines.append(
        f"| {template} | {entry['scan']} | {entry['outcome']} | {entry['cases']} "
        f"| {100 * entry['accuracy']:.0f}% | {100 * entry['floor_accuracy']:.0f}% "
        f"| {100 * entry['majority_accuracy']:.0f}% | {entry['red_lost']} |"
      )
    lines += [
      "",
      "The study: the rollouts look plausible, but near the flip sub-pixel differences decide "
      "the outcome, and often wrongly.",
      "",
      f"![ambiguity]({report_dir}/ambiguity.png)",
      "",
    ]
    lines += gif_lines("A rollout with the wrong outcome", report_dir, gif)
    return Section(numbers, lines)

  @staticmethod
  def draw(ax: Axes, numbers: dict[str, Any], title: str) -> None:
    for row, entry in enumerate(numbers["templates"].values()):
      task = np.asarray(entry["task"])
      truth, generated = np.asarray(entry["truth"]), np.asarray(entry["generated"])
      right = truth == generated
      ax.scatter(task[right], np.full(right.sum(), row), c="tab:green", s=12, label=None)
      ax.scatter(task[~right], np.full((~right).sum(), row), c="tab:red", marker="x", s=14)
      flips = np.flatnonzero(np.diff(truth.astype(int))) if len(truth) > 1 else []
      for index in flips:
        flip = 0.5 * (task[index] + task[index + 1])
        ax.plot([flip, flip], [row - 0.35, row + 0.35], color="0.6", lw=1.0)
      ax.text(
        104, row, f"{entry['outcome']}: {100 * entry['accuracy']:.0f}%", va="center", fontsize=7
      )
    labels = [f"{t}\n{e['scan']}" for t, e in numbers["templates"].items()]
    ax.set_yticks(range(len(labels)), labels, fontsize=7)
    ax.set(xlabel="scan point (task)", xlim=(-2, 130))
    ax.set_title(f"{title}: green right, red wrong; grey bars the true flips", fontsize=8)

  @staticmethod
  def headline(numbers: dict[str, Any]) -> dict[str, str]:
    return {
      template: f"{100 * entry['accuracy']:.0f}% (floor {100 * entry['floor_accuracy']:.0f}%)"
      for template, entry in numbers["templates"].items()
    }


def parsed_outcome(frames: np.ndarray, params: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """The outcome [n] of the red ball parsed by colour from videos [n, T, H, W, 3], and whether
  the red ball is missing from every frame after the first [n]."""
  parsed = sims.parsing.hard_parse(jnp.asarray(frames), colors=(sims.RED,))
  found = np.asarray(parsed.found[..., 0])
  position = np.where(found[..., None], np.asarray(parsed.position[:, :, 0]), np.nan)
  return np.asarray(phyre_ambiguity.outcome(position, params)), ~found[:, 1:].any(1)
