"""Calibration of `experiments.rater`: the rollout type it gives ground truth, its mild
degradations, another trial of the same task and corrupted ground truth.

    python -m benchmarks.rater_calibration [--videos 70] [--frames 16]

One video per template (10000 + i for i < --videos, task 0, 1 context frame, frame k at k / 3 s)
is rolled out in `sims.make("phyre")`, and a second trial of each (the same template and task,
another red-ball action from another key). Each condition is rated against the first trial's
ground truth at 64 px (all videos), 128 px (every 2nd) and 256 px (every 7th; the uncorrupted
conditions only, rating at 256 px taking ~3 s a video); 32 px is unsupported (PHYRE's bars are
under a pixel thick). Conditions: "truth", "8bit" (rounded to 1 / 255), "blur" (Gaussian, sigma
0.5 px), "other_trial", and corruptions of ground truth from frame CUT on (CORRUPTIONS). Prints
one JSON object: per resolution and condition the videos rated and the fraction of each type
(and of each check).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from scipy import ndimage

import sims
from experiments import rater
from sims import phyre

CONTEXT = 1
CUT = 6  # the first corrupted frame
FAR = -100.0  # a position whose body is outside the frame
SHIFT = 0.8  # world units the teleported red ball jumps by
STATIC_SHIFT = 0.6  # world units static bodies are moved down by
SQUASH = (0.6, 1.0)  # the size factors of a squashed body
RED_SLOT = phyre.KIND_SLOTS[phyre.RED_BALL][0]
RESOLUTIONS = {64: 1, 128: 2, 256: 7}  # resolution: every how many videos are rated
UNCORRUPTED = ("truth", "8bit", "blur", "other_trial")
# Mild degradations of a good model's frames [n, T, H, W, 3].
DEGRADATIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
  "8bit": lambda frames: np.round(frames * 255) / 255,
  "blur": lambda frames: ndimage.gaussian_filter(frames, (0, 0, 0.5, 0.5, 0)),
}


def rollouts(
  videos: int, frames: int, seed: int = 0
) -> tuple[sims.BodyTrajectory, sims.BodyTrajectory]:
  """Ground truth of task 0 of templates 10000.. and another trial of each (another key)."""
  scene = sims.make("phyre")
  templates = np.arange(phyre.FIRST_TEMPLATE, phyre.FIRST_TEMPLATE + videos)
  params = jnp.asarray(np.stack([templates, np.zeros_like(templates)], -1), jnp.int32)
  trials = [
    scene.rollout(scene.place(jax.random.split(jax.random.key(seed + k), videos), params), frames)
    for k in (0, 1)
  ]
  return trials[0], trials[1]


def _moved(traj: sims.BodyTrajectory, position: np.ndarray) -> sims.BodyTrajectory:
  return traj.replace(position=jnp.asarray(position, jnp.float32))


def vanish(traj: sims.BodyTrajectory) -> sims.BodyTrajectory:
  """The red ball leaves the frame."""
  position = np.array(traj.position)
  position[:, CUT:, RED_SLOT] = FAR
  return _moved(traj, position)


def teleport(traj: sims.BodyTrajectory) -> sims.BodyTrajectory:
  """The red ball jumps by SHIFT towards the middle and goes on from there."""
  position = np.array(traj.position)
  x = position[:, CUT:, RED_SLOT, 0]
  position[:, CUT:, RED_SLOT, 0] = x + np.where(x[:, :1] < 5.0, SHIFT, -SHIFT)
  return _moved(traj, position)


def freeze(traj: sims.BodyTrajectory) -> sims.BodyTrajectory:
  """The red ball stops where it is at CUT - 1."""
  position = np.array(traj.position)
  position[:, CUT:, RED_SLOT] = position[:, CUT - 1 : CUT, RED_SLOT]
  return _moved(traj, position)


def move_static(traj: sims.BodyTrajectory) -> sims.BodyTrajectory:
  """Static bodies move down by STATIC_SHIFT."""
  position = np.array(traj.position)
  static = ~np.asarray(traj.dynamic)[:, None, :]
  position[:, CUT:, :, 1] -= np.where(static, STATIC_SHIFT, 0.0)
  return _moved(traj, position)


def pass_through(traj: sims.BodyTrajectory) -> sims.BodyTrajectory:
  """The red ball sits on the centre of the largest other body."""
  position = np.array(traj.position)
  size = np.asarray(traj.size)
  area = np.where(np.asarray(traj.active), size[..., 0] * size[..., 1], 0.0)
  area[:, RED_SLOT] = 0.0
  largest = area.argmax(-1)
  videos = np.arange(len(largest))
  position[:, CUT:, RED_SLOT] = position[videos, CUT:, largest]
  return _moved(traj, position)


def squash(traj: sims.BodyTrajectory) -> sims.BodyTrajectory:
  """The largest dynamic body (the red ball where none is larger) shrinks by SQUASH."""
  size = np.array(traj.size)
  dynamic = np.asarray(traj.active) & np.asarray(traj.dynamic)
  largest = np.where(dynamic, size[..., 0] * size[..., 1], 0.0).argmax(-1)
  size[np.arange(len(largest)), largest] *= SQUASH
  return traj.replace(size=jnp.asarray(size))


def _spliced(truth: np.ndarray, traj: sims.BodyTrajectory, resolution: int) -> np.ndarray:
  frames = np.asarray(sims.render(traj, resolution))
  return np.concatenate([truth[:, :CUT], frames[:, CUT:]], 1)


def appear(truth: np.ndarray) -> np.ndarray:
  """A gray square (0.6 world units) from CUT on where no ink comes near."""
  videos = truth.copy()
  size = videos.shape[2]
  side = round(0.6 * size / sims.WORLD_SIZE)
  for video in videos:
    empty = ndimage.distance_transform_edt(np.all(video[CUT:] == 1.0, axis=(0, -1)))
    inner = empty[side : size - side, side : size - side]
    row, col = np.unravel_index(np.argmax(inner), inner.shape)
    video[
      CUT:, row + side // 2 : row + side // 2 + side, col + side // 2 : col + side // 2 + side
    ] = phyre.GRAY
  return videos


TRAJECTORY_CORRUPTIONS: dict[str, Callable[[sims.BodyTrajectory], sims.BodyTrajectory]] = {
  "vanished": vanish,
  "squashed": squash,
  "static_moved": move_static,
  "passed_through": pass_through,
  "frozen": freeze,
  "teleported": teleport,
}
CORRUPTIONS = ("appeared", *TRAJECTORY_CORRUPTIONS)


def conditions(
  truth_traj: sims.BodyTrajectory, other_traj: sims.BodyTrajectory, resolution: int
) -> dict[str, np.ndarray]:
  """Ground truth and each condition's videos [n, T, H, W, 3]."""
  truth = np.asarray(sims.render(truth_traj, resolution))
  videos = {
    "truth": truth,
    **{name: degrade(truth) for name, degrade in DEGRADATIONS.items()},
    "other_trial": np.asarray(sims.render(other_traj, resolution)),
    "appeared": appear(truth),
  }
  for name, corrupt in TRAJECTORY_CORRUPTIONS.items():
    videos[name] = _spliced(truth, corrupt(truth_traj), resolution)
  return videos


def applicable(truth_traj: sims.BodyTrajectory) -> dict[str, np.ndarray]:
  """Videos [n] bool where a corruption changes what happens: static bodies exist to move; the
  red ball moves on after CUT to be frozen (by over 0.3)."""
  position = np.asarray(truth_traj.position)
  static = np.asarray(truth_traj.active) & ~np.asarray(truth_traj.dynamic)
  red = position[:, CUT - 1 :, RED_SLOT]
  return {
    "static_moved": static.any(-1),
    "frozen": np.linalg.norm(red - red[:, :1], axis=-1).max(-1) > 0.3,
  }


def _take(traj: sims.BodyTrajectory, rows: np.ndarray) -> sims.BodyTrajectory:
  return jax.tree.map(lambda field: field[rows], traj)


def calibrate(videos: int, frames: int) -> dict[str, dict[str, dict[str, float]]]:
  truth_traj, other_traj = rollouts(videos, frames)
  result = {}
  for resolution, every in RESOLUTIONS.items():
    rows = np.arange(0, videos, every)
    truth_part, other_part = _take(truth_traj, rows), _take(other_traj, rows)
    masks = applicable(truth_part)
    names = UNCORRUPTED if resolution == 256 else (*UNCORRUPTED, *CORRUPTIONS)
    videos_of = conditions(truth_part, other_part, resolution)
    table = {}
    for name in names:
      keep = masks.get(name, np.ones(len(rows), bool))
      report = rater.rate(videos_of["truth"][keep], videos_of[name][keep], CONTEXT)
      table[name] = {k: round(v, 3) for k, v in rater.rates(report).items()}
    result[str(resolution)] = table
  return result


def main(argv: Sequence[str] | None = None) -> dict:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--videos", type=int, default=70)
  parser.add_argument("--frames", type=int, default=16)
  args = parser.parse_args(argv)
  result = calibrate(args.videos, args.frames)
  print(json.dumps(result, indent=1))
  return result


if __name__ == "__main__":
  main()
