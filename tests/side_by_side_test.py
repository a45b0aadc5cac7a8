"""experiments.side_by_side repeats each run's evaluation rollouts, the same cases side by side."""

import imageio.v2 as imageio
import numpy as np
import pytest
import runs

from experiments import side_by_side

pytestmark = pytest.mark.slow  # trains and evaluates a run first


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
  workdir = tmp_path_factory.mktemp("run")
  runs.run_main(workdir, "--config.num_steps=3", "--config.eval.gif_scale=1")
  return str(workdir)


def test_the_columns_are_the_evaluations_own_rollouts(trained):
  truth, prediction = side_by_side.rollouts(trained, "ood_v", 2)
  # The evaluation's filmstrip: per case a row of true frames above a row of generated ones,
  # each frame padded by 2 grey pixels, rows followed by 6 white ones (experiments.outputs).
  strip = imageio.imread(f"{trained}/report/ood_v_filmstrip.png")[..., :3]
  size, frames = truth.shape[2], truth.shape[1]
  for case in range(2):
    top = case * (2 * (size + 2) + 6)
    for row, video in ((top, truth), (top + size + 2, prediction)):
      for t in range(frames):
        shown = strip[row : row + size, t * (size + 2) : t * (size + 2) + size]
        expected = (np.clip(video[case, t], 0, 1) * 255).round().astype(np.uint8)
        np.testing.assert_array_equal(shown, expected)


def test_bad_arguments_are_one_line_errors(tmp_path, trained):
  with pytest.raises(ValueError, match=r"has no config.json: not a trained run's workdir"):
    side_by_side.rollouts(str(tmp_path), "ood_v", 2)
  with pytest.raises(ValueError, match=r"unknown split .*'ood_x'"):
    side_by_side.rollouts(trained, "ood_x", 2)
