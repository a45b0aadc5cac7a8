"""The Physics-IQ benchmark's scores of the rollouts (Motamed et al. 2025; the metrics are
`experiments/physics_iq.py`, where their departures from Physics-IQ's code are listed).

Per case, over the generated frames: the spatial, spatiotemporal and weighted spatial IoU of
the rollout's motion masks against the truth's, and the frames' MSE. Physics-IQ normalises them
by the physical variance: the same four numbers between two real recordings of one scene. Ours
is a second simulated "take": the case's initial state rebuilt from the first frame of its
trajectory, every moving object's initial position moved by PERTURBATION world units (a random
direction per case and object, deterministic from the split and case number), simulated with the
scene's own `rollout`, drawn by `sims.render` at the truth's resolution and rounded to 8-bit
levels like the truth. Per split, the metrics are averaged over the cases and combined into
Physics-IQ's score (`physics_iq.physics_iq_score`: the original and the "stable" score, x 100).

Where the take exists: ball scenes (`sims.Trajectory`: a BallState from frame 0), PHYRE scenes
(`sims.Phyre` and its ambiguity tasks: a BodyState from frame 0, only the dynamic bodies moved;
jax2d simulates the take, so it costs a second simulation of each batch) and the composition
scenes (a CompositionState: the dynamic slots are the objects, the others the walls). For any
other scene the variance is reported unavailable and so is the score. A case's take is also
discarded (and counted) where its context frames differ from the truth's by more than
TAKE_CONTEXT_MSE: then the truth was not drawn by `sims.render` (the study's own eval files), and
a re-render would measure the renderers' difference, not physics.

Ball scenes are deterministic and not chaotic: their take is almost the truth (IoUs near 1, MSE
near 0), so their score is the model's metrics against a near-perfect reference; that is
expected. PHYRE's contacts can amplify the perturbation.

Cost: three videos' masks per case (truth, rollout, take), made on the host CPU at 4 x the
resolution: about 0.03 / 0.16 / 0.6 s per 32-frame video at 32 / 64 / 128 px on one busy core.
"""

from __future__ import annotations

import zlib
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from etils import epath
from matplotlib.axes import Axes

import sims
from experiments import physics_iq as piq
from experiments.probes.base import Batch, KeptCase, Probe, Section, gif_lines
from sims.composition import CompositionState
from sims.core import BOX
from sims.phyre import BodyState

PERTURBATION = 1e-3  # world units: how far the variance take moves each initial position
# The largest MSE of a take's context frames against the truth's for the take to count: the
# perturbation changes a few 8-bit levels at most, a different renderer whole edge pixels.
TAKE_CONTEXT_MSE = 1e-4
LABELS = {
  "spatial_iou": "spatial IoU",
  "spatiotemporal_iou": "spatiotemporal IoU",
  "weighted_spatial_iou": "weighted spatial IoU",
  "mse": "MSE",
}


class PhysicsIQ(Probe):
  """Physics-IQ's four metrics of the rollouts and of a perturbed second take, and its score."""

  name = "physics_iq"
  title = "Physics-IQ (Motamed et al. 2025)"

  def __init__(self, scene: sims.Scene, config: Any):
    super().__init__(scene, config)
    self.model: dict[str, list[dict[str, np.ndarray]]] = {}
    self.take: dict[str, list[dict[str, np.ndarray]]] = {}
    self.notes: dict[str, str] = {}
    self.worst = KeptCase()

  @classmethod
  def check(cls, scene: sims.Scene) -> None:
    if not isinstance(scene, sims.Scene):
      raise ValueError(f"probe {cls.name!r} needs a sims scene, not {type(scene).__name__}")

  def update(self, batch: Batch) -> None:
    context = self.config.video.context_frames
    truth, prediction = np.asarray(batch.truth), np.asarray(batch.prediction)
    truth_masks = piq.generated_masks(truth, context)
    model = piq.compare(
      truth[:, context:],
      truth_masks,
      prediction[:, context:],
      piq.generated_masks(prediction, context),
    )
    self.model.setdefault(batch.split, []).append(model)
    self.worst.offer(-model["spatiotemporal_iou"], batch)
    take, note = variance_take(self.scene, batch)
    if take is None:
      self.notes.setdefault(batch.split, note)
      return
    variance = piq.compare(
      truth[:, context:], truth_masks, take[:, context:], piq.generated_masks(take, context)
    )
    seen = max(context, 1)
    context_mse = piq.frame_mse(take[:, :seen], truth[:, :seen])
    variance["valid"] = context_mse <= TAKE_CONTEXT_MSE
    self.take.setdefault(batch.split, []).append(variance)

  def numbers(self) -> dict[str, Any]:
    splits = {}
    for split, batches in self.model.items():
      model = {m: np.concatenate([b[m] for b in batches]) for m in piq.METRICS}
      entry: dict[str, Any] = {
        "cases": len(model["mse"]),
        "model": {m: float(np.mean(v)) for m, v in model.items()},
        "variance": None,
        "variance_cases": 0,
        "variance_note": self.notes.get(split),
      }
      takes = self.take.get(split, [])
      valid = np.concatenate([b["valid"] for b in takes]) if takes else np.zeros(0, bool)
      entry["variance_cases"] = int(valid.sum())
      if valid.any():
        entry["variance"] = {
          m: float(np.mean(np.concatenate([b[m] for b in takes])[valid])) for m in piq.METRICS
        }
        entry.update(piq.physics_iq_score(entry["model"], entry["variance"]))
      if not valid.all():  # some takes were made but discarded
        entry["variance_note"] = (
          f"{int((~valid).sum())} of {len(valid)} takes discarded: their context frames differ "
          "from the truth's (the truth is not drawn by sims.render)"
        )
      splits[split] = entry
    return {
      "perturbation": PERTURBATION,
      "mask": {
        "upsample": piq.UPSAMPLE,
        "blur": "5-tap [1, 4, 6, 4, 1] / 16",
        "background_rate": piq.BACKGROUND_RATE,
        "threshold": piq.THRESHOLD,
        "structure": list(piq.STRUCTURE.shape),
      },
      "splits": splits,
    }

  def finish(self, out_dir: epath.Path, report_dir: str) -> Section:
    numbers = self.numbers()
    self.save_figure(numbers, out_dir, self.scene.name, (5.6, 3.8))
    gif = self.worst.write_gif(out_dir, "physics_iq_case.gif", self.config.eval.gif_scale)
    lines = [
      f"## {self.title}",
      "",
      "Physics-IQ's metrics over the generated frames (`experiments/physics_iq.py`): motion "
      "masks by a running-average background, their spatial, spatiotemporal and weighted "
      "spatial IoU against the truth's, and the frames' MSE. The physical variance is a second "
      f"simulated take of each case, its initial positions moved by {PERTURBATION:g} world "
      "units; the score divides each IoU by the take's and subtracts the take's MSE from the "
      "model's (Physics-IQ's score, x 100; 'stable' clips each term first; 100: as close to the "
      "truth as a second take).",
      "",
      "| split | video | cases | spatial IoU | spatiotemporal IoU | weighted spatial IoU | MSE "
      "| Physics-IQ score (stable) |",
      "|---|---|---|---|---|---|---|---|",
    ]
    for split, entry in numbers["splits"].items():
      lines.append(
        f"| {split} | model | {entry['cases']} | {_cells(entry['model'])} | {_score(entry)} |"
      )
      if entry["variance"] is not None:
        lines.append(
          f"| {split} | variance take | {entry['variance_cases']} | {_cells(entry['variance'])} | |"
        )
    lines.append("")
    for split, entry in numbers["splits"].items():
      if entry["variance_note"]:
        lines += [
          f"{split}: physical variance unavailable or partial: {entry['variance_note']}.",
          "",
        ]
      elif _near_identical(entry["variance"]):
        lines += [
          f"{split}: the variance take is nearly the truth itself (a deterministic, non-chaotic "
          "scene), so the score measures the model against a near-perfect reference.",
          "",
        ]
    lines += [f"![physics_iq]({report_dir}/physics_iq.png)", ""]
    lines += gif_lines("The rollout with the lowest spatiotemporal IoU", report_dir, gif)
    return Section(numbers, lines)

  @staticmethod
  def headline(numbers: dict[str, Any]) -> dict[str, str]:
    return {f"Physics-IQ {split}": _score(entry) for split, entry in numbers["splits"].items()}

  @staticmethod
  def draw(ax: Axes, numbers: dict[str, Any], title: str) -> None:
    splits = numbers["splits"]
    bars = [(s, k) for s in splits for k in ("model", "variance")]
    width = 0.8 / max(len(bars), 1)
    mse_ax = ax.twinx()
    colors = {split: f"C{i}" for i, split in enumerate(splits)}
    for index, (split, kind) in enumerate(bars):
      values = splits[split][kind]
      if values is None:
        continue
      offset = (index - (len(bars) - 1) / 2) * width
      style = {
        "width": width,
        "color": colors[split],
        "alpha": 1.0 if kind == "model" else 0.45,
        "hatch": None if kind == "model" else "//",
      }
      label = f"{split} {'model' if kind == 'model' else 'variance take'}"
      ious = [values[m] for m in piq.IOU_METRICS]
      ax.bar(np.arange(3) + offset, ious, label=label, **style)
      mse_ax.bar(3 + offset, values["mse"], **style)
    ax.set_xticks(range(4), [LABELS[m].replace(" IoU", "\nIoU") for m in piq.METRICS], fontsize=8)
    ax.axvline(2.5, color="0.6", lw=0.8)
    ax.set_ylim(0, 1.35)  # room for the legend above the bars
    ax.set_yticks(np.linspace(0.0, 1.0, 6))
    top = max([e[k]["mse"] for e in splits.values() for k in ("model", "variance") if e[k]] or [0])
    mse_ax.set_ylim(0, 1.35 * top if top > 0 else 1.0)
    ax.set_ylabel("IoU (higher is better)")
    mse_ax.set_ylabel("MSE (lower is better)")
    scores = ", ".join(f"{s} {_score(e)}" for s, e in splits.items())
    ax.set_title(f"{title}: Physics-IQ {scores}", fontsize=9)
    ax.legend(fontsize=7, loc="upper center", ncol=2)


def _cells(values: dict[str, float]) -> str:
  return " | ".join(f"{values[m]:.2e}" if m == "mse" else f"{values[m]:.3f}" for m in piq.METRICS)


def _score(entry: dict[str, Any]) -> str:
  if entry.get("score") is None:
    return "n/a (no variance take)"
  return f"{100 * entry['score']:.1f} ({100 * entry['score_stable']:.1f})"


def _near_identical(variance: dict[str, float] | None) -> bool:
  if variance is None:
    return False
  return min(variance[m] for m in piq.IOU_METRICS) > 0.98 and variance["mse"] < 1e-5


def variance_take(scene: sims.Scene, batch: Batch) -> tuple[np.ndarray | None, str | None]:
  """The batch's second simulated take (frames [b, T, H, W, 3], 8-bit levels), or None and why
  the scene has none."""
  state = initial_state(scene, batch.traj, np.asarray(batch.params))
  if state is None:
    return None, f"the initial state of scene {scene.name!r} cannot be rebuilt from its trajectory"
  moved = np.asarray(movable(state))
  shift = perturbations(batch.split, batch.index, moved.shape[1]) * moved[..., None]
  state = state.replace(position=state.position + jnp.asarray(shift, state.position.dtype))
  traj = scene.rollout(state, batch.truth.shape[1])
  frames = np.asarray(sims.render(traj, batch.truth.shape[2]))
  return np.round(frames * 255.0) / 255.0, None


def initial_state(scene: sims.Scene, traj: Any, params: np.ndarray) -> Any:
  """The state `scene.rollout` started the trajectory from (its first frame), or None where the
  scene's state cannot be rebuilt from its trajectory."""
  first = jax.tree.map(lambda x: x[:, 0], traj)
  if isinstance(traj, sims.Trajectory):
    return sims.BallState(first.position, first.velocity, traj.radius, traj.color, traj.shape)
  if isinstance(scene, sims.Phyre):
    n = traj.position.shape[0]
    columns = params.shape[1] if params.ndim == 2 else 0
    template, task = (params[:, 0], params[:, 1]) if columns == 2 else (np.zeros(n), np.zeros(n))
    return BodyState(
      position=first.position,
      angle=first.angle,
      velocity=first.velocity,
      angular_velocity=first.angular_velocity,
      shape=traj.shape,
      size=traj.size,
      color=traj.color,
      dynamic=traj.dynamic,
      active=traj.active,
      template=jnp.asarray(template, jnp.int32),
      task=jnp.asarray(task, jnp.int32),
    )
  if isinstance(scene, sims.Composition):
    objects = int(np.asarray(traj.dynamic[0]).sum())
    body, wall = slice(0, objects), slice(objects, None)
    return CompositionState(
      position=first.position[:, body],
      velocity=first.velocity[:, body],
      radius=traj.size[:, body, 0],
      color=traj.color[:, body],
      shape=jnp.where(traj.shape[:, body] == BOX, sims.SQUARE, sims.CIRCLE).astype(jnp.int32),
      active=traj.active[:, body],
      wall_x=first.position[:, wall, 0],
      wall_half_width=traj.size[:, wall, 0],
      wall_active=traj.active[:, wall],
      event=jnp.asarray(np.round(params[:, 0]), jnp.int32),
    )
  return None


def movable(state: Any) -> np.ndarray:
  """[n, K] the objects whose initial position the take moves: every ball; dynamic, active
  bodies (PHYRE); active objects (composition)."""
  if isinstance(state, BodyState):
    return np.asarray(state.dynamic & state.active)
  if isinstance(state, CompositionState):
    return np.asarray(state.active)
  return np.ones(state.position.shape[:2], bool)


def perturbations(split: str, index: np.ndarray, objects: int) -> np.ndarray:
  """[n, objects, 2] displacements of length PERTURBATION in a random direction, drawn per case
  from its split and case number (so they do not depend on the batching)."""
  salt = zlib.crc32(split.encode())
  angles = np.array(
    [np.random.default_rng([salt, int(i)]).uniform(0.0, 2 * np.pi, objects) for i in index]
  ).reshape(len(index), objects)
  return PERTURBATION * np.stack([np.cos(angles), np.sin(angles)], -1)
