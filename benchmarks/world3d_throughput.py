"""Videos per second of the 3-D scenes: JAX (MJX + ray caster) next to MuJoCo C + a numpy renderer.

    python -m benchmarks.world3d_throughput --scenes bounce3d,rolling3d,collision3d,movi \
        --batch 4,16 --resolution 64 --frames 32

JAX side, per scene and batch size: `scene.sample` + `scene.rollout` (brax's MJX pipeline, 80
steps a frame) jitted as one function, and `sims.render` (the differentiable ray caster,
`sims.world3d.render`) jitted on its own; each compiled ahead of time and timed with
`block_until_ready`, best of `--repeats`. A pipeline's rate is batch / (simulate + render
seconds); the best batch size is compared.

Reference side, on `--reference_videos` training scenes: MuJoCo's C engine (`mujoco.mj_step`,
float64, one model per video, one thread) on the same MJCF and parameters
(`sims.world3d.engine.mujoco_model` and `run_mujoco`; building the models, partly with eager JAX
conversions, is reported as `setup_s_per_video` and not counted in the rate), then
`numpy_render`: one hard-edged ray per pixel through the same camera, spheres in closed form and
cubes by a slab test, the checkered floor point-sampled, Lambertian light plus ambient and hard
shadows toward the same light. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from collections.abc import Sequence

import jax
import mujoco
import numpy as np

import sims
from benchmarks.sim_throughput import best_seconds, compile_ahead, machine_info
from sims.world3d.render import (
  AMBIENT,
  DEFAULT_CAMERA,
  DEFAULT_LIGHT,
  DIFFUSE,
  FLOOR_GREYS,
  SKY,
  TILE,
  camera_basis,
  rotation_matrix,
)

with contextlib.redirect_stdout(sys.stderr):  # mujoco.mjx's notes on optional backends
  from sims.world3d import CUBE, engine

SCENES = ("bounce3d", "rolling3d", "collision3d", "movi")


def _camera_rays(resolution: int) -> tuple[np.ndarray, np.ndarray]:
  """The default camera's eye [3] and unit ray directions [H, W, 3] (row 0 at the top)."""
  eye, forward, right, up, half = camera_basis(DEFAULT_CAMERA, np)
  centres = ((np.arange(resolution) + 0.5) / resolution * 2 - 1) * half
  rays = forward + centres[None, :, None] * right - centres[:, None, None] * up
  return eye.astype(np.float64), rays / np.linalg.norm(rays, axis=-1, keepdims=True)


def _hits(
  origin, direction, centres, rotations, sizes, is_cube
) -> tuple[np.ndarray, np.ndarray | None]:
  """Nearest positive distances [..., K] of rays to spheres and cubes (inf where missed), and the
  body-frame normal [..., K, 3] of the cube face each ray enters (None without cubes); rotations
  [K, 3, 3] (body -> world) are only read for cubes. Each shape's test runs only if the scene has
  that shape."""
  offset = origin[..., None, :] - centres  # [..., K, 3]
  t, face = np.full(offset.shape[:-1], np.inf), None
  if not is_cube.all():
    b = np.sum(offset * direction[..., None, :], -1)
    disc = b**2 - (np.sum(offset**2, -1) - sizes**2)
    root = -b - np.sqrt(np.maximum(disc, 0.0))
    t = np.where((disc > 0) & (root > 1e-6), root, np.inf)
  if is_cube.any():  # the slab test in each body's frame
    local_origin = np.einsum("...ki,kij->...kj", offset, rotations)
    local_direction = np.einsum("...i,kij->...kj", direction, rotations)
    safe = np.where(np.abs(local_direction) < 1e-12, 1e-12, local_direction)
    low, high = (-sizes[:, None] - local_origin) / safe, (sizes[:, None] - local_origin) / safe
    near = np.minimum(low, high)
    entry, exit_ = near.max(-1), np.maximum(low, high).min(-1)
    t = np.where(is_cube, np.where((entry <= exit_) & (entry > 1e-6), entry, np.inf), t)
    face = np.eye(3)[near.argmax(-1)] * -np.sign(local_direction)
  return t, face


def numpy_render(
  positions: np.ndarray,
  orientations: np.ndarray,
  shapes: np.ndarray,
  sizes: np.ndarray,
  colors: np.ndarray,
  active: np.ndarray,
  resolution: int,
) -> np.ndarray:
  """uint8 frames [T, H, W, 3] of spheres and cubes (positions [T, K, 3], orientations
  [T, K, 4], shapes, sizes, active [K], colours [K, 3]); inactive slots are not drawn."""
  eye, rays = _camera_rays(resolution)
  light = np.asarray(DEFAULT_LIGHT, np.float64)
  light /= np.linalg.norm(light)
  floor_t = np.where(rays[..., 2] < 0, -eye[2] / np.minimum(rays[..., 2], -1e-9), np.inf)
  floor_point = eye + np.where(np.isfinite(floor_t), floor_t, 0.0)[..., None] * rays
  tile = (np.floor(floor_point[..., 0] / TILE) + np.floor(floor_point[..., 1] / TILE)) % 2
  floor_albedo = np.where(tile == 0, FLOOR_GREYS[1], FLOOR_GREYS[0])[..., None]
  shown = np.asarray(active, bool)
  is_cube, sizes, colors = np.asarray(shapes)[shown] == CUBE, sizes[shown], colors[shown]
  frames = np.empty((len(positions), resolution, resolution, 3), np.uint8)
  for k, (centres, turns) in enumerate(
    zip(positions[:, shown], orientations[:, shown], strict=True)
  ):
    rotations = rotation_matrix(turns.astype(np.float64), np) if is_cube.any() else None
    hits, faces = _hits(eye, rays, centres, rotations, sizes, is_cube)  # [H, W, K]
    nearest = hits.argmin(-1)
    body_t = hits.min(-1)
    on_body = body_t < floor_t
    t = np.where(on_body, body_t, floor_t)
    point = eye + np.where(np.isfinite(t), t, 0.0)[..., None] * rays
    body_normal = (point - centres[nearest]) / sizes[nearest][..., None]  # spheres'
    if faces is not None:
      face = np.take_along_axis(faces, nearest[..., None, None], -2)[..., 0, :]
      cube_normal = np.einsum("...ij,...j->...i", rotations[nearest], face)
      body_normal = np.where(is_cube[nearest][..., None], cube_normal, body_normal)
    normal = np.where(on_body[..., None], body_normal, [0.0, 0.0, 1.0])
    albedo = np.where(on_body[..., None], colors[nearest], floor_albedo)
    blocked, _ = _hits(point + 1e-4 * normal, light, centres, rotations, sizes, is_cube)
    shadowed = np.isfinite(blocked).any(-1)
    shade = AMBIENT + DIFFUSE * np.maximum(normal @ light, 0.0) * ~shadowed
    color = np.where(np.isfinite(t)[..., None], albedo * shade[..., None], SKY)
    frames[k] = np.round(np.clip(color, 0.0, 1.0) * 255)
  return frames


def _time_jax(scene, batches: Sequence[int], resolution: int, num_frames: int, repeats: int):
  keys = [jax.random.key(repeat) for repeat in range(repeats)]
  rates = {}
  for batch in batches:

    def simulate(key, batch=batch):
      return scene.rollout(scene.sample(key, batch, "train"), num_frames)

    simulate_fn, simulate_compile_s = compile_ahead(simulate, keys[0])
    simulate_s = best_seconds(lambda repeat, fn=simulate_fn: fn(keys[repeat]), repeats)
    traj = simulate_fn(keys[0])
    draw_fn, draw_compile_s = compile_ahead(lambda t: sims.render(t, resolution), traj)
    draw_s = best_seconds(lambda _, fn=draw_fn, t=traj: fn(t), repeats)
    rates[f"batch{batch}"] = {
      "videos_per_s": round(batch / (simulate_s + draw_s), 3),
      "simulate_s": round(simulate_s, 4),
      "render_s": round(draw_s, 4),
      "compile_s": round(simulate_compile_s + draw_compile_s, 2),
    }
  return rates


def _time_reference(scene, videos: int, resolution: int, num_frames: int, repeats: int):
  state = scene.with_materials(scene.sample(jax.random.key(123), videos, "train"))
  examples = [
    jax.tree.map(lambda x, i=i: np.asarray(x[i], np.float64), state) for i in range(videos)
  ]

  start = time.perf_counter()
  models = [engine.mujoco_model(scene.layout, e) for e in examples]
  setup_s = time.perf_counter() - start
  initial = [mujoco.MjData(model) for model, _ in models]
  for (_, data), copy in zip(models, initial, strict=True):
    copy.qpos[:], copy.qvel[:] = data.qpos, data.qvel

  def simulate(_):
    runs = []
    for (model, data), first in zip(models, initial, strict=True):
      mujoco.mj_copyData(data, model, first)  # every repeat starts from the initial state
      runs.append(engine.run_mujoco(scene.layout, model, data, num_frames))
    return runs

  simulate_s = best_seconds(simulate, repeats)
  positions = simulate(0)

  def draw(_):
    return [
      numpy_render(p, q, e.shape, e.size, e.color, e.active, resolution)
      for (p, q), e in zip(positions, examples, strict=True)
    ]

  render_s = best_seconds(draw, repeats)
  return {
    "videos_per_s": round(videos / (simulate_s + render_s), 3),
    "setup_s_per_video": round(setup_s / videos, 5),
    "simulate_s_per_video": round(simulate_s / videos, 5),
    "render_s_per_video": round(render_s / videos, 5),
  }


def benchmark(
  names: Sequence[str],
  batches: Sequence[int],
  resolution: int,
  num_frames: int,
  reference_videos: int,
  repeats: int,
) -> dict[str, object]:
  """Both pipelines' rates per scene, and the best JAX rate over Mujoco C + numpy's."""
  report = {}
  for name in names:
    scene = sims.make(name)
    jax_rates = _time_jax(scene, batches, resolution, num_frames, repeats)
    reference = _time_reference(scene, reference_videos, resolution, num_frames, repeats)
    best = max(rate["videos_per_s"] for rate in jax_rates.values())
    report[name] = {
      "jax": jax_rates,
      "mujoco_c_numpy": reference,
      "jax_over_reference": round(best / reference["videos_per_s"], 4),
    }
  return report


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--scenes", default=",".join(SCENES))
  parser.add_argument("--batch", default="4,16", help="comma-separated videos per JAX call")
  parser.add_argument("--resolution", type=int, default=64)
  parser.add_argument("--frames", type=int, default=sims.NUM_FRAMES)
  parser.add_argument("--reference_videos", type=int, default=4, help="videos per MuJoCo run")
  parser.add_argument("--repeats", type=int, default=3, help="timed runs; the best is kept")
  return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> dict[str, object]:
  """Runs the benchmark, prints it as one JSON object and returns it."""
  args = parse_args(argv)
  names = args.scenes.split(",")
  for name in names:
    sims.check_choice("scene", name, SCENES)
  start = time.perf_counter()
  scenes = benchmark(
    names,
    [int(b) for b in args.batch.split(",")],
    args.resolution,
    args.frames,
    args.reference_videos,
    args.repeats,
  )
  report = {
    "machine": machine_info(),
    "settings": {k: getattr(args, k) for k in vars(args)},
    "scenes": scenes,
    "wall_s": round(time.perf_counter() - start, 1),
  }
  print(json.dumps(report, indent=2))
  return report


if __name__ == "__main__":
  main()
