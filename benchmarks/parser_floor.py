"""The parser floor: the velocity error of ground-truth frames, by scene, resolution and length.

    python -m benchmarks.parser_floor > docs/data/parser_floor.json

For each scene, resolution and clip length, `--cases` in-distribution cases (`Scene.sample`, key
0, split "id") are simulated, rendered, rounded to 8 bits (as eval sets and the study's videos
hold them) and scored by `velocity_probe` as if they were generated from 3 context frames. Each
floor is a split mean, as a report shows it:

- "floor" and "floor_mean_then_abs": ours (2-D, per ball): the mean over frame pairs of
  |v - v_true| and |mean v - mean v_true|;
- "floor_study_our_grid": the study's evaluation code on our frames;
- "floor_study": the same with its renderer's pixel grid (render width 256), the number that a
  report's "study's code" column shows, comparable with the study's published ground-truth
  floors (0.0099 uniform motion, 0.0117 collision, 0.0210 parabola, from 256 x 256 videos).

The study's grid reads every speed 1/256 too slow, so its floor is about mean |v_x| / 256 plus
the parser noise. 8 frames at 32 x 32 are the quickstart's clips, 32 frames the study's. Prints
one JSON object.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

import sims
from experiments import velocity_probe
from sims import parsing

CONTEXT_FRAMES = 3
CHUNK = 32  # cases rendered at a time


def floors(name: str, num_cases: int, resolution: int, num_frames: int) -> dict[str, float]:
  """The floors of one scene's ID cases at one resolution and clip length."""
  scene = sims.make(name, num_frames=num_frames)
  traj = scene.rollout(scene.sample(jax.random.key(0), num_cases, "id"), num_frames)
  collision = scene.num_objects == 2
  errors, own_grid = None, []
  for start in range(0, num_cases, CHUNK):
    chunk = jax.tree.map(lambda x, start=start: x[start : start + CHUNK], traj)
    frames = jnp.round(sims.render(chunk, resolution) * 255.0) / 255.0
    found = velocity_probe.case_errors(scene, chunk, frames, frames, CONTEXT_FRAMES, "id")
    errors = found if errors is None else errors.concatenate(found)
    colors = tuple(map(tuple, np.asarray(chunk.color[0])))
    parsed = parsing.study_parse(frames, colors).position[..., 0]
    kept = velocity_probe.study_frames(chunk.position, chunk.radius, collision)
    own_grid.append(velocity_probe.study_errors(chunk.position[..., 0], parsed, kept, collision))
  summary = velocity_probe.summarize(scene, errors)
  on_our_grid = dataclasses.replace(errors, velocity_error_study=np.concatenate(own_grid))
  return {
    "scene": name,
    "resolution": resolution,
    "frames": num_frames,
    "floor": summary["floor"],
    "floor_mean_then_abs": summary["floor_mean_then_abs"],
    "count": summary["count"],
    "floor_study_our_grid": velocity_probe.summarize(scene, on_our_grid)["velocity_error_study"],
    "floor_study": summary["floor_study"],
    "count_study": summary["count_study"],
  }


def main(argv: Sequence[str] | None = None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--cases", type=int, default=256)
  parser.add_argument("--scenes", default="uniform_motion,parabola,collision")
  parser.add_argument("--resolutions", default="32,64,128")
  parser.add_argument("--frames", default="8,32")
  args = parser.parse_args(argv)
  rows = [
    floors(name, args.cases, int(resolution), int(num_frames))
    for name in args.scenes.split(",")
    for num_frames in args.frames.split(",")
    for resolution in args.resolutions.split(",")
  ]
  record = {
    "cases": args.cases,
    "scenes": args.scenes,
    "resolutions": args.resolutions,
    "frames": args.frames,
    "context_frames": CONTEXT_FRAMES,
    "jax": jax.__version__,
    "floors": rows,
  }
  print(json.dumps(record, indent=2))


if __name__ == "__main__":
  main()
