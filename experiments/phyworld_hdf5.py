"""Reads and writes the study's HDF5 video files (e.g. its released `collision_eval.hdf5`).

Each video has three streams: `video_streams`, the bytes of an MP4 (H.264, yuv420p, 5 fps) of
RGB frames; `position_streams`, ball positions per frame in world units (10 x 10 world, y up),
[T, K, 2], or [T, 2] for one ball; and `init_streams`, its parameters [P]: [r, v] for one ball,
[r1, r2, v1, v2] for a collision (v2 is the speed of the right ball, which moves left).

Layouts read:
  * stream-major, as released: the study's generator writes chunk files of up to 1000 videos and
    merges them, so each stream is a group of chunk datasets "00000", "00001", ...;
  * flat: one chunk file, with the three streams as datasets at the root;
  * chunk-major: groups "0", "1", ..., each holding the three streams.
Chunks are taken in numeric order of their names.

Orientation: the study draws each frame with row index increasing with y and then flips it, so
its MP4s hold normal images (row 0 at the top, y up), as `sims.render` makes; its evaluation
flips decoded frames back to compare rows with y. Frames are returned as stored, row 0 at the
top; `flip_vertical=True` gives the study's evaluation orientation instead.
"""

from __future__ import annotations

import io
import os
import re

import av
import h5py
import numpy as np
from PIL import Image

import sims
from experiments import velocity_probe

VIDEO, POSITION, PARAMS = "video_streams", "position_streams", "init_streams"
STREAMS = (VIDEO, POSITION, PARAMS)
FPS = 5


def read_phyworld_hdf5(
  path: str,
  resolution: int | None = None,
  limit: int | None = None,
  flip_vertical: bool = False,
) -> dict[str, np.ndarray]:
  """Decodes the first `limit` videos (all by default) of a file in the study's layout.

  Returns `frames` uint8 [N, T, H, W, 3] (resized to `resolution` x `resolution` by area
  averaging when smaller, bilinearly when larger), `position` float32 [N, T, K, 2] (K = 1 for
  one-ball files) and `params` float32 [N, P].
  """
  if not os.path.isfile(path):
    raise FileNotFoundError(f"no HDF5 file at {path}")
  if limit is not None and limit < 1:
    raise ValueError(f"limit must be positive, got {limit}")
  videos, positions, params = [], [], []
  with h5py.File(path, "r") as f:
    for chunk in _chunks(f, path):
      count = len(chunk[VIDEO]) if limit is None else min(len(chunk[VIDEO]), limit - len(videos))
      videos += [decode_mp4(data.tobytes(), resolution) for data in chunk[VIDEO][:count]]
      positions.append(chunk[POSITION][:count])
      params.append(chunk[PARAMS][:count])
      if len(videos) == limit:
        break
  if not videos:
    raise ValueError(f"{path} holds no videos")
  frames = np.stack(videos)
  position = np.concatenate(positions).astype(np.float32)
  if position.ndim == 3:  # one ball: [N, T, 2]
    position = position[:, :, None]
  return {
    "frames": np.ascontiguousarray(frames[:, :, ::-1]) if flip_vertical else frames,
    "position": position,
    "params": np.concatenate(params).astype(np.float32),
  }


def write_phyworld_hdf5(
  path: str,
  frames: np.ndarray,
  position: np.ndarray,
  params: np.ndarray,
  group_size: int = 1000,
) -> None:
  """Writes videos in the study's released (stream-major) layout, `group_size` per chunk.

  frames: uint8 [N, T, H, W, 3] with even H and W (row 0 at the top); position [N, T, K, 2],
  stored as [N, T, 2] when K = 1, as the study does; params [N, P].
  """
  frames, position, params = np.asarray(frames), np.asarray(position), np.asarray(params)
  if frames.dtype != np.uint8 or frames.ndim != 5 or frames.shape[-1] != 3:
    raise ValueError(f"frames must be uint8 [N, T, H, W, 3], got {frames.dtype} {frames.shape}")
  if position.ndim != 4 or position.shape[:2] != frames.shape[:2] or position.shape[-1] != 2:
    raise ValueError(
      f"position must be [N, T, K, 2] for frames {frames.shape}, got {position.shape}"
    )
  if params.ndim != 2 or len(params) != len(frames):
    raise ValueError(f"params must be [{len(frames)}, P], got {params.shape}")
  if position.shape[2] == 1:
    position = position[:, :, 0]
  with h5py.File(path, "w") as f:
    groups = {stream: f.create_group(stream) for stream in STREAMS}
    for index, start in enumerate(range(0, len(frames), group_size)):
      chunk, rows = f"{index:05d}", slice(start, start + group_size)
      videos = groups[VIDEO].create_dataset(
        chunk, shape=(len(frames[rows]),), dtype=h5py.vlen_dtype(np.uint8)
      )
      for i, video in enumerate(frames[rows]):
        videos[i] = np.frombuffer(encode_mp4(video), np.uint8)
      groups[POSITION].create_dataset(chunk, data=position[rows])
      groups[PARAMS].create_dataset(chunk, data=params[rows])


def encode_mp4(video: np.ndarray, fps: int = FPS) -> bytes:
  """H.264 (yuv420p) MP4 bytes of uint8 RGB frames [T, H, W, 3]; H and W must be even."""
  height, width = video.shape[1:3]
  if height % 2 or width % 2:
    raise ValueError(f"yuv420p video needs an even frame size, got {height} x {width}")
  buffer = io.BytesIO()
  with av.open(buffer, "w", format="mp4") as container:
    stream = container.add_stream("libx264", rate=fps)
    stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
    for frame in video:
      container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
    container.mux(stream.encode())  # flush the encoder's buffered frames
  return buffer.getvalue()


def decode_mp4(data: bytes, resolution: int | None = None) -> np.ndarray:
  """uint8 RGB frames [T, H, W, 3] of MP4 bytes, optionally resized to a square `resolution`."""
  with av.open(io.BytesIO(data)) as container:
    frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
  if resolution is not None and frames[0].shape[:2] != (resolution, resolution):
    frames = [_resize(frame, resolution) for frame in frames]
  return np.stack(frames)


def _resize(frame: np.ndarray, resolution: int) -> np.ndarray:
  shrink = resolution < max(frame.shape[:2])
  method = Image.Resampling.BOX if shrink else Image.Resampling.BILINEAR
  return np.asarray(Image.fromarray(frame).resize((resolution, resolution), method))


def _chunks(f: h5py.Group, path: str) -> list[dict[str, h5py.Dataset]]:
  """The file's chunks in order, each as {stream name: dataset of its videos}."""
  present = [stream for stream in STREAMS if stream in f]
  if present:
    missing = [stream for stream in STREAMS if stream not in f]
    if missing:
      raise KeyError(f"{path} has no dataset {', '.join(missing)} (top level: {', '.join(f)})")
    if all(isinstance(f[stream], h5py.Dataset) for stream in STREAMS):
      return [_checked({stream: f[stream] for stream in STREAMS}, path)]
    if not all(isinstance(f[stream], h5py.Group) for stream in STREAMS):
      raise ValueError(f"{path} mixes datasets and groups among {', '.join(STREAMS)}")
    names = _numeric_order(f[VIDEO])
    for stream in STREAMS:
      absent = sorted(set(names) - set(f[stream]))
      if absent:
        raise KeyError(f"{path} has no dataset {stream}/{absent[0]}")
    return [_checked({s: f[s][name] for s in STREAMS}, f"{path}:{name}") for name in names]
  groups = [name for name in _numeric_order(f) if isinstance(f[name], h5py.Group)]
  if not groups:
    raise KeyError(f"{path} has no {', '.join(STREAMS)} (top level: {', '.join(f) or 'empty'})")
  return [chunk for name in groups for chunk in _chunks(f[name], f"{path}:{name}")]


def _checked(chunk: dict[str, h5py.Dataset], where: str) -> dict[str, h5py.Dataset]:
  lengths = {stream: len(dataset) for stream, dataset in chunk.items()}
  if len(set(lengths.values())) != 1:
    raise ValueError(f"{where} has streams of different lengths: {lengths}")
  return chunk


def _numeric_order(group: h5py.Group) -> list[str]:
  """Member names sorted by the integers in them ("2" before "10"), then by name."""
  return sorted(group, key=lambda name: ([int(d) for d in re.findall(r"\d+", name)], name))


def to_eval_splits(
  scene: sims.Scene, data: dict[str, np.ndarray]
) -> dict[str, dict[str, np.ndarray]]:
  """The study's videos sorted into our splits, as `eval_sets.write_eval_set` arrays.

  A case is "id" when every parameter lies in the training range, else the OOD level whose
  parameter set is exactly the out-of-range ones (cases matching no level are dropped). The
  initial velocities follow from the parameters (ball 1 moves right at v1, ball 2 left at v2);
  the velocity of frame k > 0 is (position[k] - position[k - 1]) / FRAME_DT.
  """
  params, position = data["params"].astype(np.float32), data["position"].astype(np.float32)
  names = scene.param_names
  out_of_range = np.stack(
    [~bands.contains_id(params[:, i]) for i, bands in enumerate(scene.space.bands)], -1
  )
  level_of = {"": "id"}
  for split, table in scene.space.splits.items():
    if split.startswith("ood_") and not split.endswith(("_low", "_high", "_cross")):
      level_of[",".join(n for n, mode in zip(names, table[0], strict=True) if mode)] = split
  labels = np.asarray(
    [
      level_of.get(",".join(n for n, out in zip(names, row, strict=True) if out), "")
      for row in out_of_range
    ]
  )
  radius = params[:, list(velocity_probe.radius_columns(scene))]
  speed_columns = list(velocity_probe.speed_columns(scene))
  start_velocity = np.zeros(position.shape[:1] + position.shape[2:], np.float32)
  start_velocity[:, :, 0] = params[:, speed_columns] * np.where(
    np.arange(len(speed_columns)) % 2, -1, 1
  )
  velocity = np.concatenate([start_velocity[:, None], np.diff(position, axis=1) / sims.FRAME_DT], 1)
  num_balls = position.shape[2]
  colors = np.asarray(
    [sims.RED, sims.BLUE][:num_balls] if num_balls == 2 else [sims.RED], np.float32
  )
  splits = {}
  for split in sorted(set(labels) - {""}):
    rows = labels == split
    splits[split] = {
      "frames": data["frames"][rows],
      "params": params[rows],
      "position": position[rows],
      "velocity": velocity[rows],
      "radius": radius[rows],
      "color": np.broadcast_to(colors, (int(rows.sum()), num_balls, 3)).copy(),
      "shape": np.zeros((int(rows.sum()), num_balls), np.int32),
      "level": np.asarray(velocity_probe.sublevels(scene, params[rows], split)),
    }
  return splits
