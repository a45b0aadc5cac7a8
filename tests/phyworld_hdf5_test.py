"""The study's HDF5 layout: MP4 round trips from `sims` videos, layouts, resizing and errors."""

import h5py
import jax
import numpy as np
import pytest

import sims
from experiments import phyworld_hdf5
from experiments.phyworld_hdf5 import PARAMS, POSITION, STREAMS, VIDEO

NUM_VIDEOS, NUM_FRAMES, RES = 6, 8, 64


def sims_videos(name):
  scene = sims.make(name)
  state = scene.sample(jax.random.key(0), NUM_VIDEOS, "id")
  traj = scene.rollout(state, NUM_FRAMES)
  frames = (np.asarray(sims.render(traj, RES)) * 255).round().astype(np.uint8)
  return frames, np.asarray(traj.position), np.asarray(scene.params_of(state))


@pytest.fixture(scope="module", params=["uniform_motion", "collision"])
def written(request, tmp_path_factory):
  path = str(tmp_path_factory.mktemp("hdf5") / f"{request.param}_eval.hdf5")
  frames, position, params = sims_videos(request.param)
  phyworld_hdf5.write_phyworld_hdf5(path, frames, position, params, group_size=3)
  return path, frames, position, params


def red_centroids(frames):
  """(column, row) centroids of the pixels the study's parser calls red, [..., 2]."""
  red = (frames[..., 0] > 127) & (frames[..., 1] < 127) & (frames[..., 2] < 127)
  total = red.sum((-2, -1))
  columns = (red.sum(-2) * np.arange(red.shape[-1])).sum(-1) / total
  rows = (red.sum(-1) * np.arange(red.shape[-2])).sum(-1) / total
  return np.stack([columns, rows], -1)


def test_round_trip_keeps_states_exactly_and_frames_closely(written):
  path, frames, position, params = written
  read = phyworld_hdf5.read_phyworld_hdf5(path)
  assert read["frames"].shape == frames.shape and read["frames"].dtype == np.uint8
  np.testing.assert_array_equal(read["position"], position)
  np.testing.assert_array_equal(read["params"], params)
  # H.264 at 64 x 64 measures 0.7 (one ball) to 1.3 (two balls) mean grey levels of error.
  assert np.abs(read["frames"].astype(np.float32) - frames).mean() < 2.0
  # The red ball (ball 0) stays where its world position puts it: row 0 at the top, y up.
  pixel = sims.WORLD_SIZE / RES
  x, y = position[:, :, 0, 0], position[:, :, 0, 1]
  expected = np.stack([x / pixel - 0.5, (sims.WORLD_SIZE - y) / pixel - 0.5], -1)
  assert np.abs(red_centroids(read["frames"]) - expected).max() < 0.5  # measured: 0.26


def test_file_has_the_study_layout(written):
  path, frames, position, params = written
  with h5py.File(path, "r") as f:
    assert sorted(f) == sorted(STREAMS)
    for stream in STREAMS:
      assert list(f[stream]) == ["00000", "00001"]
    assert f[VIDEO]["00001"].dtype == h5py.vlen_dtype(np.uint8)
    video = f[VIDEO]["00001"][2].tobytes()
    stored_position = f[POSITION]["00000"][()]
    np.testing.assert_array_equal(f[PARAMS]["00001"][()], params[3:])
  assert video[4:8] == b"ftyp"  # an MP4 container
  np.testing.assert_array_equal(phyworld_hdf5.decode_mp4(video).shape, frames[5].shape)
  num_balls = position.shape[2]
  expected = position[:3, :, 0] if num_balls == 1 else position[:3]  # one ball: [n, T, 2]
  np.testing.assert_array_equal(stored_position, expected)


@pytest.mark.parametrize("layout", ["flat", "stream_major", "chunk_major"])
def test_every_layout_reads_in_numeric_chunk_order(written, tmp_path, layout):
  path = written[0]
  expected = phyworld_hdf5.read_phyworld_hdf5(path)
  other = str(tmp_path / f"{layout}.hdf5")
  with h5py.File(path, "r") as f, h5py.File(other, "w") as g:
    chunks = [{s: f[s][name] for s in STREAMS} for name in ("00000", "00001")]
    if layout == "flat":
      for stream in STREAMS:
        data = np.concatenate([chunk[stream][()] for chunk in chunks])
        g.create_dataset(stream, data=data, dtype=f[stream]["00000"].dtype)
    else:  # "2" holds the first videos: "10" would come first in text order.
      for name, chunk in zip(("2", "10"), chunks, strict=True):
        for stream in STREAMS:
          where = f"{stream}/{name}" if layout == "stream_major" else f"{name}/{stream}"
          g.create_dataset(where, data=chunk[stream][()], dtype=chunk[stream].dtype)
  read = phyworld_hdf5.read_phyworld_hdf5(other)
  for field in ("frames", "position", "params"):
    np.testing.assert_array_equal(read[field], expected[field], err_msg=field)


def test_limit_resolution_and_flip(written):
  path, _, position, _ = written
  full = phyworld_hdf5.read_phyworld_hdf5(path)
  first = phyworld_hdf5.read_phyworld_hdf5(path, limit=4)  # spans both chunks
  np.testing.assert_array_equal(first["frames"], full["frames"][:4])
  np.testing.assert_array_equal(first["position"], position[:4])
  assert len(first["params"]) == 4
  half = phyworld_hdf5.read_phyworld_hdf5(path, resolution=32)["frames"]
  blocks = full["frames"].reshape(NUM_VIDEOS, NUM_FRAMES, 32, 2, 32, 2, 3).mean((3, 5))
  assert half.shape == (NUM_VIDEOS, NUM_FRAMES, 32, 32, 3)
  assert np.abs(half - blocks).max() <= 1.0  # area averaging, up to rounding
  double = phyworld_hdf5.read_phyworld_hdf5(path, resolution=128, limit=1)["frames"]
  assert double.shape == (1, NUM_FRAMES, 128, 128, 3)
  np.testing.assert_allclose(double.mean(), full["frames"][0].mean(), atol=0.5)
  flipped = phyworld_hdf5.read_phyworld_hdf5(path, flip_vertical=True)["frames"]
  np.testing.assert_array_equal(flipped, full["frames"][:, :, ::-1])


def test_errors_name_what_is_missing(written, tmp_path):
  path, frames, position, params = written
  with pytest.raises(FileNotFoundError, match=r"no HDF5 file at .*nope\.hdf5"):
    phyworld_hdf5.read_phyworld_hdf5(str(tmp_path / "nope.hdf5"))
  partial = str(tmp_path / "partial.hdf5")
  with h5py.File(path, "r") as f, h5py.File(partial, "w") as g:
    for stream in (VIDEO, POSITION):
      g.create_dataset(stream, data=f[stream]["00000"][()], dtype=f[stream]["00000"].dtype)
  with pytest.raises(KeyError, match=r"partial\.hdf5 has no dataset init_streams"):
    phyworld_hdf5.read_phyworld_hdf5(partial)
  with h5py.File(tmp_path / "empty.hdf5", "w"):
    pass
  with pytest.raises(KeyError, match="has no video_streams, position_streams, init_streams"):
    phyworld_hdf5.read_phyworld_hdf5(str(tmp_path / "empty.hdf5"))
  with pytest.raises(ValueError, match="even frame size"):
    phyworld_hdf5.write_phyworld_hdf5(
      str(tmp_path / "odd.hdf5"), frames[:, :, :63, :63], position, params
    )
