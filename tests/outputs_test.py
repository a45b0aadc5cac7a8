"""Run files written through experiments.outputs, locally and as on an object store."""

import imageio.v2 as imageio
import matplotlib.pyplot as plt
import numpy as np

from experiments import outputs


def test_append_line_appends_locally_and_rewrites_on_object_stores(tmp_path, monkeypatch):
  local = outputs.path(tmp_path, "local.jsonl")
  remote = outputs.path(tmp_path, "remote.jsonl")
  for line in ("a", "b", "c"):
    outputs.append_line(local, line)
  monkeypatch.setattr(outputs, "is_local", lambda target: False)
  for line in ("a", "b", "c"):
    outputs.append_line(remote, line)
  assert local.read_text() == remote.read_text() == "a\nb\nc\n"
  monkeypatch.undo()
  assert outputs.is_local(local) and not outputs.is_local(outputs.path("gs://bucket/run"))


def test_pictures_round_trip(tmp_path):
  folder = outputs.make_dirs(outputs.path(tmp_path, "report", "nested"))
  image = np.arange(4 * 6 * 3, dtype=np.uint8).reshape(4, 6, 3) * 3
  outputs.write_png(folder / "a.png", image)
  np.testing.assert_array_equal(imageio.imread(str(folder / "a.png")), image)
  frames = np.stack([np.full((8, 8, 3), value, np.uint8) for value in (0, 128, 255)])
  outputs.write_gif(folder / "a.gif", frames)
  read = np.asarray(imageio.mimread(str(folder / "a.gif")))
  assert read.shape[0] == 3 and abs(int(read[1, 0, 0, 0]) - 128) <= 2
  figure, axes = plt.subplots()
  axes.plot([0, 1], [0, 1])
  outputs.save_figure(figure, folder / "plot.png")
  plt.close(figure)
  assert imageio.imread(str(folder / "plot.png")).shape[-1] in (3, 4)
