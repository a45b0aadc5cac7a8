"""The study's composition tests (its section 5.4): does the model compose events it saw apart?

A composition scene (`sims.make("composition", kind=...)`) trains on videos of one event each
(a square moving, a ball bouncing off a wall, two balls colliding) and tests on videos where the
events happen together (split "test"). Per test case, each object's events come from the ground
truth: a frame whose true x velocity differs from the frame before by more than EVENT_CHANGE (the
study's collision index, |dv| > 0.1), named "contact" when the other object's velocity changes
at the same frame and "wall" otherwise, and numbered when an object has several of one kind
("blue contact 2"). An object that moves without any event "moves on".

The red and blue objects are parsed by colour from the frames (`sims.parsing.parse_attributes`)
and differenced over frame pairs that show the object in both frames while the true object is
fully in view. An event counts when it falls in the generated frames; it happens in the rollout
when the generated velocity after it (mean over the pairs up to the object's next event) is
nearer the true velocity after it than the true velocity before it. "moves on" happens when the
generated velocity is nearer the true one than rest. An object vanishes when a generated frame
misses it where the true object is active and in view. The same scoring of the true frames is
the parser's floor, and of objects that stand still after the context (copy_last) the
trivial one. The rollout's mean |v_gen - v_true| over the pairs before each event (from the
previous one) and after it (to the next) shows how well it keeps the speeds around the event.
"""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
import numpy as np
from etils import epath
from matplotlib.axes import Axes

import sims
from experiments.probes.base import Batch, KeptCase, Probe, Section, gif_lines

EVENT_CHANGE = 0.1  # world units / s
MOVING = 0.5  # a true speed above this is "moving" (world units / s)
OBJECTS = (("red", sims.RED), ("blue", sims.BLUE))


class Composition(Probe):
  """Per expected event of the test videos: how often the rollout shows it, and vanishings."""

  name = "composition"
  title = "Composition (the study's section 5.4)"

  def __init__(self, scene: sims.Scene, config: Any):
    super().__init__(scene, config)
    self.records: list[dict[str, Any]] = []
    self.failed_case = KeptCase()

  @classmethod
  def check(cls, scene: sims.Scene) -> None:
    if not isinstance(scene, sims.Composition):
      raise ValueError(f"probe {cls.name!r} needs the scene 'composition', not {scene.name!r}")

  def update(self, batch: Batch) -> None:
    if batch.split != "test":
      return
    context = self.config.video.context_frames
    true_vx = np.asarray(batch.traj.velocity[..., :2, 0])  # [n, T, 2] red, blue
    active = np.asarray(batch.traj.active[:, :2])
    radius = np.asarray(batch.traj.size[:, :2, 0])
    in_view = np.asarray(sims.parsing.fully_in_view(batch.traj.position[:, :, :2], radius))
    shown = in_view & active[:, None]
    generated = object_velocities(batch.prediction, shown)
    floor = object_velocities(batch.truth, shown)
    # copy_last: every object stands still after the context (and never vanishes).
    still = (np.where(np.isfinite(floor[0]), 0.0, np.nan), floor[1])
    sources = (("model", generated), ("floor", floor), ("copy_last", still))
    failures = np.zeros(len(true_vx))
    for case, obj in np.argwhere(active):
      color = OBJECTS[obj][0]
      for label, start, frame, next_frame in object_events(true_vx[case], obj, context):
        record = {"label": f"{color} {label}"}
        for source, (velocity, _) in sources:
          velocity = velocity[case, :, obj]
          record[source] = event_happens(true_vx[case, :, obj], velocity, frame, next_frame)
        # The rollout's velocity error over the pairs before the event and after it.
        error = np.abs(generated[0][case, :, obj] - true_vx[case, :-1, obj])
        record["error_before"] = _mean(error[max(start, context - 1) : frame - 1])
        record["error_after"] = _mean(error[frame : next_frame - 1])
        self.records.append(record)
        failures[case] += record["model"] is False
      expected = shown[case, context:, obj]
      vanished = {
        source: bool((expected & ~found[case, context:, obj]).any())
        for source, (_, found) in sources
      }
      self.records.append({"label": f"{color} vanishes", **vanished})
      failures[case] += vanished["model"]
    self.failed_case.offer(failures, batch)

  def numbers(self) -> dict[str, Any]:
    labels = sorted({r["label"] for r in self.records}, key=_label_order)
    events = {}
    for label in labels:
      rows = [r for r in self.records if r["label"] == label]
      scored = [r for r in rows if r["model"] is not None]
      events[label] = {"cases": len(rows), "scored": len(scored)}
      events[label]["happened"] = sum(bool(r["model"]) for r in scored)
      for source in ("floor", "copy_last"):  # "floor_scored", "copy_last_happened", ...
        events[label][f"{source}_scored"] = sum(r[source] is not None for r in rows)
        events[label][f"{source}_happened"] = sum(bool(r[source]) for r in rows)
      for side in ("before", "after"):  # mean |v_gen - v_true| over the cases' pairs
        errors = [r[f"error_{side}"] for r in rows if f"error_{side}" in r]
        events[label][f"error_{side}"] = _mean(np.asarray(errors, float))
    return {"kind": self.scene.kind, "events": events}

  def finish(self, out_dir: epath.Path, report_dir: str) -> Section:
    numbers = self.numbers()
    self.save_figure(numbers, out_dir, f"kind={numbers['kind']}", (5.4, 3.8))
    gif = self.failed_case.write_gif(out_dir, "composition_case.gif", self.config.eval.gif_scale)
    lines = [
      f"## {self.title}",
      "",
      f"Kind `{numbers['kind']}`, split test. Per event of the true videos that falls in the "
      "generated frames, how often the rollout shows it (its velocity after the event nearer "
      "the true one after than before; 'moves on': nearer the true velocity than rest), and how "
      "often an object vanishes; beside it the same scoring of the true frames (the parser's "
      "floor) and of copy_last (objects that stand still after the context).",
      "",
      "| event | shown by the rollout | parser on the truth | copy_last | velocity error before "
      "/ after |",
      "|---|---|---|---|---|",
    ]
    for label, entry in numbers["events"].items():
      if entry["scored"]:
        lines.append(
          f"| {label} | {_rate(entry['happened'], entry['scored'])} "
          f"| {_rate(entry['floor_happened'], entry['floor_scored'])} "
          f"| {_rate(entry['copy_last_happened'], entry['copy_last_scored'])} "
          f"| {_number(entry['error_before'])} / {_number(entry['error_after'])} |"
        )
    lines += [
      "",
      "The study: spatial composition works (the ball bounces and the square moves on), and so "
      "does temporal composition (collision, then the blue ball's rebound off the wall); without "
      "red-ball bounce videos the red ball sometimes vanishes after the collision.",
      "",
      f"![composition]({report_dir}/composition.png)",
      "",
    ]
    lines += gif_lines("The test rollout that misses the most events", report_dir, gif)
    return Section(numbers, lines)

  @staticmethod
  def draw(ax: Axes, numbers: dict[str, Any], title: str) -> None:
    events = {label: e for label, e in numbers["events"].items() if e["scored"]}
    x = np.arange(len(events))
    sources = (("", "rollout", "tab:blue"), ("floor_", "parser on the truth", "0.6"))
    for offset, (prefix, name, color) in zip((-0.27, 0.0), sources, strict=True):
      rates = [_share(e[f"{prefix}happened"], e[f"{prefix}scored"]) for e in events.values()]
      ax.bar(x + offset, rates, 0.27, label=name, color=color)
    still = [_share(e["copy_last_happened"], e["copy_last_scored"]) for e in events.values()]
    ax.bar(x + 0.27, still, 0.27, label="copy_last", color="tab:orange")
    ax.set_xticks(x, list(events), rotation=30, ha="right", fontsize=7)
    ax.set(ylabel="share of test cases", ylim=(0, 1.05))
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)

  @staticmethod
  def headline(numbers: dict[str, Any]) -> dict[str, str]:
    events = numbers["events"].items()
    return {label: _rate(e["happened"], e["scored"]) for label, e in events if e["scored"]}


def object_velocities(frames: np.ndarray, shown: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """The red and blue objects' x velocities per frame pair [n, T - 1, 2] (NaN where a pair does
  not show the object while `shown` [n, T, 2]), and where each is found [n, T, 2]."""
  colors = tuple(color for _, color in OBJECTS)
  parsed = sims.parsing.parse_attributes(jnp.asarray(frames), colors=colors)
  found = np.asarray(parsed.found)
  x = np.asarray(parsed.position[..., 0])
  usable = found & shown
  both = usable[:, 1:] & usable[:, :-1]
  return np.where(both, np.diff(x, axis=1) / sims.FRAME_DT, np.nan), found


def object_events(true_vx: np.ndarray, obj: int, context: int) -> list[tuple[str, int, int, int]]:
  """The events (label, previous event's frame or 0, frame, next event's frame or T) of object
  `obj` in one true video [T, 2] that fall in the generated frames (frame >= context); "moves
  on" (frame = context) for a moving object without events."""
  change = np.abs(np.diff(true_vx, axis=0)) > EVENT_CHANGE  # [T - 1, 2]: frame k + 1 changed
  frames = [k + 1 for k in np.flatnonzero(change[:, obj])]
  num_frames = len(true_vx)
  if not frames:
    moving = abs(true_vx[context, obj]) > MOVING
    return [("moves on", 0, context, num_frames)] if moving else []
  events, seen = [], {}
  for index, frame in enumerate(frames):
    kind = "contact" if change[frame - 1, 1 - obj] else "wall"
    seen[kind] = seen.get(kind, 0) + 1
    label = kind if seen[kind] == 1 else f"{kind} {seen[kind]}"
    next_frame = frames[index + 1] if index + 1 < len(frames) else num_frames
    if frame >= context:
      events.append((label, frames[index - 1] if index else 0, frame, next_frame))
  return events


def event_happens(
  true_vx: np.ndarray, velocity: np.ndarray, frame: int, next_frame: int
) -> bool | None:
  """Whether the velocities per frame pair [T - 1] after an event at `frame` (pairs frame ..
  next_frame - 2) are nearer the true velocity after it than before it; "moves on" events
  (no change at `frame`) compare with rest. None if no pair there shows the object."""
  after = velocity[frame : max(frame, next_frame - 1)]
  after = after[np.isfinite(after)]
  if not len(after):
    return None
  before = true_vx[frame - 1] if abs(true_vx[frame] - true_vx[frame - 1]) > EVENT_CHANGE else 0.0
  return bool(abs(after.mean() - true_vx[frame]) < abs(after.mean() - before))


def _mean(values: np.ndarray) -> float | None:
  finite = values[np.isfinite(values)]
  return float(finite.mean()) if len(finite) else None


def _label_order(label: str) -> tuple[int, str]:
  return (0 if label.startswith("red") else 1, label)


def _number(value: float | None) -> str:
  return "-" if value is None else f"{value:.2f}"


def _share(count: int, total: int) -> float:
  return count / max(total, 1)


def _rate(count: int, total: int) -> str:
  return f"{100 * _share(count, total):.0f}% ({count} of {total})"
