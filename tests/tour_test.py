"""docs/tour.py runs as a script, writes its pictures and checks its own claims."""

import os
import re
import subprocess
import sys

import pytest

TOUR = os.path.join(os.path.dirname(__file__), os.pardir, "docs", "tour.py")
PICTURES = ("scenes", "splits", "by_hand", "gradient", "fit", "phyre", "bounce3d", "movi", "holes")


@pytest.mark.slow
def test_tour_runs_and_writes_its_pictures(tmp_path):
  result = subprocess.run(
    [sys.executable, TOUR, "--out", str(tmp_path)],
    capture_output=True,
    text=True,
    timeout=900,
    check=False,
  )
  assert result.returncode == 0, result.stderr[-3000:]
  assert result.stdout.rstrip().endswith("tour done")
  for name in PICTURES:
    path = tmp_path / f"{name}.png"
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", path
  (error,) = re.findall(r"gradient relative error (\S+)", result.stdout)
  assert float(error) < 0.01
  drifts = re.search(r"momentum drift (\S+), energy drift (\S+)", result.stdout)
  assert max(float(drifts[1]), float(drifts[2])) < 1e-5
