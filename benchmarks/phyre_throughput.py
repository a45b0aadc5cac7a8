"""Videos per second of the `phyre` scene (simulator + sims.render) next to PHYRE's own engine.

    python -m benchmarks.phyre_throughput --batch 4,16,64 --resolution 64,256 --frames 32

JAX side, for each of `--simulators`: `scene.sample` + the simulator (`engine`: the scene's own,
`sims.phyre.simulate`, SOLVER_ITERATIONS iterations; `stock_jax2d`: the same world stepped by
jax2d's `PhysicsEngine`, 20 iterations, the engine before it), 60 Hz, 20 steps per frame, jitted
as one function per batch size, and `sims.render` jitted per batch size and resolution; each is
compiled ahead of time and timed with `block_until_ready`, best of `--repeats`. The two stages
do not fuse, so a pipeline's rate is batch / (simulate seconds + render seconds).
`simulate_cores` is the process CPU time over the wall time of the timed simulations: XLA may
use more than one core, while the reference below runs in one thread.

Reference side: PHYRE cannot be installed here (its wheels need Python 3.6), so this measures
its engine, stock C++ Box2D 2.3 through pybox2d, on the very scenes the JAX side sampled, at
PHYRE's settings: PHYRE's metre scale (6 pixels per metre on the 512-pixel scene), gravity
-9.8, density 0.25, friction 0.5, restitution 0.2, angular damping 0.01, 5-pixel static walls,
`world.Step(1/60, 15, 20)`, 20 steps per frame, one world per video in one thread, with the jar
and the standing sticks as one body of several fixtures as in PHYRE. Each video is then drawn by
a hard-edged numpy raster (pixel centres inside discs and boxes) at the same resolution. Not
counted: PHYRE's task (de)serialization, its C++ renderer and the study's mp4 encoding. Both
parts are timed (best of `--repeats`) on `--reference_videos` videos. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence

import Box2D
import jax
import numpy as np

import sims
from benchmarks.sim_throughput import best_seconds, compile_ahead, machine_info
from sims import phyre

METRES_PER_UNIT = phyre.SCENE_PIXELS / phyre.WORLD_SIZE / phyre.PIXELS_PER_METRE
DENSITY = 0.25
WALL_PIXELS = 5.0
VELOCITY_ITERATIONS = 15
POSITION_ITERATIONS = 20


def _welded_groups() -> list[list[int]]:
  """Slots simulated as one body: the jar's parts, the sticks, and every other slot alone."""
  welded = [list(phyre.KIND_SLOTS["dynamic_jar"]), list(phyre.KIND_SLOTS["dynamic_standingsticks"])]
  alone = sorted(set(range(phyre.NUM_SLOTS)) - {slot for group in welded for slot in group})
  return [[slot] for slot in alone] + welded


def box2d_rollout(state: dict[str, np.ndarray], num_frames: int) -> tuple[np.ndarray, np.ndarray]:
  """Simulates one scene (numpy fields of one BodyState example) in pybox2d at PHYRE's settings.

  Returns slot positions [T, K, 2] and angles [T, K] in world units, frame 0 being the state.
  """
  world = Box2D.b2World(gravity=(0.0, -9.8), doSleep=False)
  size = phyre.SCENE_PIXELS / phyre.PIXELS_PER_METRE
  wall = WALL_PIXELS / phyre.PIXELS_PER_METRE
  for centre, half in (
    ((size / 2, -wall / 2), (size / 2, wall / 2)),
    ((size / 2, size + wall / 2), (size / 2, wall / 2)),
    ((-wall / 2, size / 2), (wall / 2, size / 2)),
    ((size + wall / 2, size / 2), (wall / 2, size / 2)),
  ):
    world.CreateStaticBody(position=centre).CreatePolygonFixture(
      box=half, friction=phyre.FRICTION, restitution=phyre.RESTITUTION
    )
  position = state["position"] * METRES_PER_UNIT
  half = state["size"] * METRES_PER_UNIT
  angle = state["angle"]
  bodies = []  # (body, slots, their centres and angles in the body's frame)
  for group in _welded_groups():
    group = [slot for slot in group if state["active"][slot]]
    if not group:
      continue
    origin, turn = position[group[0]], angle[group[0]]
    make = world.CreateDynamicBody if state["dynamic"][group[0]] else world.CreateStaticBody
    body = make(
      position=(float(origin[0]), float(origin[1])),
      angle=float(turn),
      angularDamping=phyre.ANGULAR_DAMPING,
    )
    c, s = np.cos(-turn), np.sin(-turn)
    offsets = position[group] - origin
    centres = [(float(c * x - s * y), float(s * x + c * y)) for x, y in offsets]
    turns = [float(angle[slot] - turn) for slot in group]
    for slot, centre, local_turn in zip(group, centres, turns, strict=True):
      material = {
        "density": DENSITY if state["dynamic"][slot] else 0.0,
        "friction": phyre.FRICTION,
        "restitution": phyre.RESTITUTION,
      }
      if state["shape"][slot] == sims.core.BOX:
        box = (float(half[slot, 0]), float(half[slot, 1]), centre, local_turn)
        body.CreatePolygonFixture(box=box, **material)
      else:
        body.CreateCircleFixture(radius=float(half[slot, 0]), pos=centre, **material)
    bodies.append((body, group, centres, turns))
  positions = np.repeat(state["position"][None], num_frames, 0)
  angles = np.repeat(state["angle"][None], num_frames, 0)
  for frame in range(1, num_frames):
    for _ in range(phyre.STEPS_PER_FRAME):
      world.Step(1.0 / phyre.PHYSICS_HZ, VELOCITY_ITERATIONS, POSITION_ITERATIONS)
    for body, group, centres, turns in bodies:
      for slot, centre, local_turn in zip(group, centres, turns, strict=True):
        positions[frame, slot] = np.asarray(body.GetWorldPoint(centre)) / METRES_PER_UNIT
        angles[frame, slot] = body.angle + local_turn
  return positions, angles


def numpy_raster(
  state: dict[str, np.ndarray], positions: np.ndarray, angles: np.ndarray, resolution: int
) -> np.ndarray:
  """Hard-edged uint8 frames [T, H, W, 3]: a pixel takes the colour of the last slot covering
  its centre (white elsewhere), slots painted in order."""
  step = phyre.WORLD_SIZE / resolution
  xs = (np.arange(resolution) + 0.5) * step
  ys = xs[::-1]
  frames = np.full((len(positions), resolution, resolution, 3), 255, np.uint8)
  colors = np.round(state["color"] * 255).astype(np.uint8)
  for slot in np.nonzero(state["active"])[0]:
    dx = xs[None, None, :] - positions[:, slot, 0, None, None]
    dy = ys[None, :, None] - positions[:, slot, 1, None, None]
    hx, hy = state["size"][slot]
    if state["shape"][slot] == sims.core.BOX:
      c, s = np.cos(angles[:, slot])[:, None, None], np.sin(angles[:, slot])[:, None, None]
      inside = (np.abs(c * dx + s * dy) <= hx) & (np.abs(c * dy - s * dx) <= hy)
    else:
      inside = dx**2 + dy**2 <= hx**2
    frames[inside] = colors[slot]
  return frames


def _time_reference(states: list[dict], num_frames: int, resolutions: Sequence[int], repeats: int):
  simulate_s = best_seconds(
    lambda _: [box2d_rollout(state, num_frames) for state in states], repeats
  )
  rollouts = [box2d_rollout(state, num_frames) for state in states]
  raster_s = {
    resolution: best_seconds(
      lambda _, res=resolution: [
        numpy_raster(state, *rollout, res) for state, rollout in zip(states, rollouts, strict=True)
      ],
      repeats,
    )
    for resolution in resolutions
  }
  return simulate_s, raster_s


SIMULATORS = {
  "engine": lambda state, num_frames: phyre.simulate(state, num_frames),
  "stock_jax2d": lambda state, num_frames: phyre.simulate_with_jax2d(state, num_frames),
}


def _time_jax(
  simulator: str, batches: Sequence[int], resolutions: Sequence[int], num_frames: int, repeats: int
) -> dict[str, dict[str, float]]:
  """Rates of sample + one simulator + sims.render, by batch size and resolution."""
  scene = sims.make("phyre")
  keys = [jax.random.key(repeat) for repeat in range(repeats)]
  rates = {}
  for batch in batches:

    def simulate(key, batch=batch):
      return SIMULATORS[simulator](scene.sample(key, batch, "train"), num_frames)

    simulate_fn, simulate_compile_s = compile_ahead(simulate, keys[0])
    wall, cpu = time.perf_counter(), time.process_time()
    simulate_s = best_seconds(lambda repeat, fn=simulate_fn: fn(keys[repeat]), repeats)
    cores = (time.process_time() - cpu) / (time.perf_counter() - wall)
    traj = simulate_fn(keys[0])
    for resolution in resolutions:
      draw_fn, draw_compile_s = compile_ahead(lambda t, res=resolution: sims.render(t, res), traj)
      draw_s = best_seconds(lambda _, fn=draw_fn, t=traj: fn(t), repeats)
      rates[f"batch{batch}_res{resolution}"] = {
        "videos_per_s": round(batch / (simulate_s + draw_s), 3),
        "simulate_s": round(simulate_s, 4),
        "simulate_cores": round(cores, 2),
        "render_s": round(draw_s, 4),
        "compile_s": round(simulate_compile_s + draw_compile_s, 2),
      }
  return rates


def benchmark(
  simulators: Sequence[str],
  batches: Sequence[int],
  resolutions: Sequence[int],
  num_frames: int,
  reference_videos: int,
  repeats: int,
) -> dict[str, object]:
  """Rates of each JAX pipeline and of Box2D + numpy, in videos per second, by batch size and
  resolution; each JAX simulator's best rate over batch sizes as a fraction of Box2D's."""
  jax_rates = {
    simulator: _time_jax(simulator, batches, resolutions, num_frames, repeats)
    for simulator in simulators
  }
  state = sims.make("phyre").sample(jax.random.key(123), reference_videos, "train")
  fields = ("position", "angle", "shape", "size", "color", "dynamic", "active")
  states = [
    {name: np.asarray(getattr(state, name)[video]) for name in fields}
    for video in range(reference_videos)
  ]
  simulate_s, raster_s = _time_reference(states, num_frames, resolutions, repeats)
  reference = {
    f"res{resolution}": {
      "videos_per_s": round(reference_videos / (simulate_s + raster_s[resolution]), 3),
      "simulate_s_per_video": round(simulate_s / reference_videos, 5),
      "raster_s_per_video": round(raster_s[resolution] / reference_videos, 5),
    }
    for resolution in resolutions
  }
  ratios = {
    simulator: {
      f"res{resolution}": round(
        max(
          rate["videos_per_s"] for key, rate in rates.items() if key.endswith(f"_res{resolution}")
        )
        / reference[f"res{resolution}"]["videos_per_s"],
        4,
      )
      for resolution in resolutions
    }
    for simulator, rates in jax_rates.items()
  }
  return {"jax": jax_rates, "box2d_numpy": reference, "jax_over_box2d": ratios}


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument(
    "--simulators", default=",".join(SIMULATORS), help=f"comma-separated, of {list(SIMULATORS)}"
  )
  parser.add_argument("--batch", default="4,16,64", help="comma-separated videos per JAX call")
  parser.add_argument("--resolution", default="64,256", help="comma-separated frame sizes")
  parser.add_argument("--frames", type=int, default=sims.NUM_FRAMES)
  parser.add_argument("--reference_videos", type=int, default=16, help="videos per Box2D run")
  parser.add_argument("--repeats", type=int, default=3, help="timed runs; the best is kept")
  return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> dict[str, object]:
  """Runs the benchmark, prints it as one JSON object and returns it."""
  args = parse_args(argv)
  simulators = args.simulators.split(",")
  unknown = sorted(set(simulators) - set(SIMULATORS))
  if unknown:
    raise ValueError(f"unknown simulators {unknown}; allowed: {list(SIMULATORS)}")
  batches = [int(b) for b in args.batch.split(",")]
  resolutions = [int(r) for r in args.resolution.split(",")]
  settings = {
    "simulators": args.simulators,
    "batch": args.batch,
    "resolution": args.resolution,
    "frames": args.frames,
    "steps_per_frame": phyre.STEPS_PER_FRAME,
    "solver_iterations": {
      "engine": phyre.SOLVER_ITERATIONS,
      "stock_jax2d": phyre.engine.JAX2D_SOLVER_ITERATIONS,
    },
    "reference_videos": args.reference_videos,
    "repeats": args.repeats,
  }
  report = {
    "machine": machine_info(),
    "settings": settings,
    **benchmark(simulators, batches, resolutions, args.frames, args.reference_videos, args.repeats),
  }
  print(json.dumps(report, indent=2))
  return report


if __name__ == "__main__":
  main()
