"""Writing a run's files (config, metrics, report, pictures) to a local or `gs://` workdir.

A multi-host job keeps its workdir on storage that every host sees, a Cloud Storage bucket on a
TPU pod; `etils.epath` opens both kinds of path (gs:// through gcsfs).
"""

from __future__ import annotations

import io

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
