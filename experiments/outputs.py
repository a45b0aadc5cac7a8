"""Writing a run's files (config, metrics, report, pictures) to a local or `gs://` workdir.

A multi-host job keeps its workdir on storage that every host sees, a Cloud Storage bucket on a
TPU pod; `etils.epath` opens both kinds of path (gs:// through gcsfs).
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import imageio.v2 as imageio
import numpy as np
from etils import epath


def path(workdir: str | epath.Path, *parts: str) -> epath.Path:
  """`workdir / parts...` as an epath.Path (a local path or a gs:// URL)."""
  return epath.Path(workdir).joinpath(*parts)


def is_local(target: epath.Path) -> bool:
  return "://" not in str(target)


def make_dirs(target: epath.Path) -> epath.Path:
  target.mkdir(parents=True, exist_ok=True)
  return target


def append_line(target: epath.Path, line: str) -> None:
  """Appends one line; object stores, which cannot append, get the whole file rewritten."""
  if is_local(target):
    with target.open("a") as f:
      f.write(line + "\n")
    return
  before = target.read_text() if target.exists() else ""
  target.write_text(before + line + "\n")


def write_bytes(target: epath.Path, data: bytes) -> None:
  with target.open("wb") as f:
    f.write(data)


def write_png(target: epath.Path, image: np.ndarray) -> None:
  buffer = io.BytesIO()
  imageio.imwrite(buffer, image, format="png")
  write_bytes(target, buffer.getvalue())


def write_gif(target: epath.Path, frames: np.ndarray, frame_ms: int = 200) -> None:
  """A looping GIF of uint8 frames [T, H, W, 3]."""
  buffer = io.BytesIO()
  imageio.mimsave(buffer, list(frames), format="gif", duration=frame_ms, loop=0)
  write_bytes(target, buffer.getvalue())


def save_figure(figure, target: epath.Path, dpi: int = 120) -> None:
  """Saves a matplotlib figure as PNG."""
  buffer = io.BytesIO()
  figure.savefig(buffer, format="png", dpi=dpi)
  write_bytes(target, buffer.getvalue())


def to_uint8(frames: np.ndarray, scale: int) -> np.ndarray:
  frames = np.asarray(frames)
  if scale > 1:
    frames = frames.repeat(scale, axis=-3).repeat(scale, axis=-2)
  return (np.clip(frames, 0.0, 1.0) * 255).round().astype(np.uint8)


def side_by_side(truth: np.ndarray, prediction: np.ndarray, scale: int) -> np.ndarray:
  """[T, rows * H, 2 * W + gap, 3] uint8: each case's ground truth (left) and prediction."""
  return video_grid([truth, prediction], scale)


def video_grid(videos: Sequence[np.ndarray], scale: int) -> np.ndarray:
  """[T, rows * H, columns * W + gaps, 3] uint8: row i holds case i of each of `videos` ([n, T,
  H, W, 3] each), left to right, with grey gaps."""
  columns = [to_uint8(video, scale) for video in videos]
  gap = np.full((*columns[0].shape[:3], 4, 3), 128, np.uint8)
  rows = np.concatenate([part for column in columns for part in (column, gap)][:-1], axis=3)
  separator = np.full((rows.shape[0], rows.shape[1], 4, *rows.shape[3:]), 128, np.uint8)
  rows = np.concatenate([rows, separator], axis=2)
  return np.concatenate(list(rows), axis=1)


def filmstrip(truth: np.ndarray, prediction: np.ndarray, scale: int) -> np.ndarray:
  """One image: per case, a row of ground-truth frames above a row of predicted frames."""
  pair = np.stack([to_uint8(truth, scale), to_uint8(prediction, scale)], axis=1)  # [n,2,T,H,W,3]
  pair = np.pad(pair, ((0, 0), (0, 0), (0, 0), (0, 2), (0, 2), (0, 0)), constant_values=128)
  n, _, t, h, w, c = pair.shape
  rows = pair.transpose(0, 1, 3, 2, 4, 5).reshape(n, 2 * h, t * w, c)
  rows = np.pad(rows, ((0, 0), (0, 6), (0, 0), (0, 0)), constant_values=255)
  return rows.reshape(n * (2 * h + 6), t * w, c)
