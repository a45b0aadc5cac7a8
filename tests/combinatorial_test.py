"""The combinatorial task: its config, the Table 2 probe, and a run from training to report."""

import json
import os

import jax.numpy as jnp
import numpy as np
import pytest
import runs

import sims
from experiments import combinatorial_probe
from experiments.configs import combinatorial
from sims import phyre

RES, FRAMES = 32, 4


def falling_ball_video(n=3):
  """Ground truth of n scenes: a red ball falling past a gray box onto a black bar."""
  t = np.arange(FRAMES) / 3.0
  red = np.stack([np.full(FRAMES, 3.0), 8.0 - 1.2 * t**2], -1)
  position = np.stack(
    [red, np.broadcast_to([6.5, 6.0], red.shape), np.broadcast_to([5.0, 2.0], red.shape)], 1
  )
  traj = sims.BodyTrajectory(
    position=jnp.asarray(np.broadcast_to(position, (n, *position.shape)), jnp.float32),
    angle=jnp.zeros((n, FRAMES, 3)),
    velocity=jnp.zeros((n, FRAMES, 3, 2)),
    angular_velocity=jnp.zeros((n, FRAMES, 3)),
    shape=jnp.asarray([[0, 1, 1]] * n),
    size=jnp.asarray([[[0.8, 0.8], [1.0, 1.0], [4.0, 0.3]]] * n),
    color=jnp.asarray([[phyre.RED, phyre.GRAY, phyre.BLACK]] * n),
    dynamic=jnp.asarray([[True, True, False]] * n),
    active=jnp.ones((n, 3), bool),
  )
  return np.asarray(sims.render(traj, RES))


def test_config_arguments():
  config = combinatorial.get_config("templates=6,size=tiny,resolution=64,frames=8")
  assert config.task == "phyre" and config.data.dataset_size == "6"
  assert config.scene_options.templates == "6"
  assert (config.video.context_frames, config.video.num_frames, config.video.resolution) == (
    1,
    8,
    64,
  )
  assert tuple(config.model.patch_size) == (2, 8, 8)
  assert (config.batch_size, config.model.dtype, config.num_steps) == (16, "float32", 1500)
  assert config.data.cache == 1024 and combinatorial.get_config().data.cache == 0
  assert tuple(config.eval.splits) == ("in_template", "out_of_template")
  study = combinatorial.get_config()
  assert (study.video.resolution, study.video.num_frames, study.model.size) == (256, 32, "B")
  assert tuple(study.model.patch_size) == (2, 16, 16)  # 4096 tokens
  assert (study.batch_size, study.model.dtype, study.eval.num_cases) == (256, "bfloat16", 500)
  with pytest.raises(ValueError, match=r"unknown templates '7'; valid: 6, 30, 60"):
    combinatorial.get_config("templates=7")
  with pytest.raises(ValueError, match=r"unknown config argument 'data'"):
    combinatorial.get_config("data=3M")


def test_split_scores_of_the_truth_and_of_blank_frames():
  truth = falling_ball_video()
  templates = np.asarray([10060, 10060, 10061])
  perfect = combinatorial_probe.SplitScores(("psnr", "ssim", "lpips"), 1, batch_size=2)
  perfect.add(truth, truth, templates)
  summary = perfect.summary()
  assert summary["cases"] == 3 and summary["type1_rate"] == 1.0 and summary["type3_count"] == 0
  assert summary["psnr"] == 100.0 and summary["psnr_generated"] == 100.0  # the study's cap
  np.testing.assert_allclose([summary["ssim"], summary["lpips"]], [1.0, 0.0], atol=1e-5)
  blank = combinatorial_probe.SplitScores(("psnr", "ssim"), 1, batch_size=2)
  washed_out = truth.copy()
  washed_out[:, 1:] = 1.0  # every object vanishes after the context frame
  blank.add(truth[:2], washed_out[:2], templates[:2])
  blank.add(truth[2:], washed_out[2:], templates[2:])
  summary = blank.summary()
  assert summary["vanished_rate"] == 1.0 and summary["type3_rate"] == 1.0
  assert summary["psnr_generated"] < 20 < summary["psnr"]  # the copied frame scores 100 dB
  table = blank.per_template()
  assert sorted(table) == [10060, 10061] and table[10060]["cases"] == 2
  assert table[10061]["type3_rate"] == 1.0


def test_table_lines_put_ours_beside_the_studys():
  ours = {
    "in_template": dict(fvd=30.0, ssim=0.9, psnr=28.0, lpips=0.05, type3_rate=0.1),
    "out_of_template": dict(fvd=40.0, ssim=0.8, psnr=25.0, lpips=0.08, type3_rate=0.5),
  }
  lines = combinatorial_probe.table_lines(ours, combinatorial_probe.study_rows("B", "60"), "ours")
  assert lines[2] == (
    "| ours | 30.000 / 40.000 | 0.900 / 0.800 | 28.000 / 25.000 | 0.050 / 0.080 "
    "| 10% / 50% automatic (ours) |"
  )
  assert lines[3].startswith("| the study | 18.400 / 21.400 | 0.967 / 0.949 |")
  assert lines[3].endswith("| 3% / 24% human (study) |")
  assert combinatorial_probe.study_rows("S", "60") is None
  for split, psnr in (("in_template", 21.0), ("out_of_template", 20.5)):
    blank = dict(fvd=90.0, ssim=0.7, psnr=psnr, lpips=0.2, type3_rate=1.0)
    ours[split]["baselines"] = {"blank": blank}
  lines = combinatorial_probe.table_lines(ours, None, "ours")
  assert lines[3] == (
    "| blank (baseline) | 90.000 / 90.000 | 0.700 / 0.700 | 21.000 / 20.500 | 0.200 / 0.200 "
    "| 100% / 100% automatic (ours) |"
  )


@pytest.mark.slow
def test_training_and_the_table_2_report(tmp_path):
  workdir = str(tmp_path / "run")
  runs.run_main(
    workdir,
    f"--config=experiments/configs/combinatorial.py:templates=6,resolution={RES},frames={FRAMES}",
    "--config.model.size=micro",
    "--config.batch_size=8",
    "--config.num_steps=2",
    "--config.log_every_steps=1",
    "--config.eval.sample_steps=2",
    "--config.eval.num_cases=4",
    "--config.eval.grid_points=1",
    "--config.eval.metrics=('psnr','ssim','lpips')",
    "--config.eval.batch_size=4",
    "--config.eval.probes=('physics_iq',)",
    micro=False,
    timeout=900,
  )
  with open(os.path.join(workdir, "eval.json")) as f:
    evaluation = json.load(f)
  assert evaluation["id_split"] == "in_template"
  assert evaluation["ood_splits"] == ["out_of_template"]
  for split in ("in_template", "out_of_template"):
    numbers = evaluation["splits"][split]
    assert numbers["cases"] == 4
    assert numbers["type1_count"] + numbers["type2_count"] + numbers["type3_count"] == 4
    blank, copied = numbers["baselines"]["blank"], numbers["baselines"]["copy_last"]
    assert blank.keys() == copied.keys() == set(numbers) - {"baselines", "beats_copy_last"}
    assert blank["vanished_rate"] == 1.0 and blank["type3_rate"] == 1.0
    assert copied["psnr_generated"] > blank["psnr_generated"]
    assert numbers["psnr_generated"] < numbers["psnr"]
  physics_iq = evaluation["probes"]["physics_iq"]["splits"]
  for split in ("in_template", "out_of_template"):  # the probes see the template tasks too
    assert physics_iq[split]["cases"] == 4 and physics_iq[split]["variance_cases"] == 4
  held_out = {int(t) for t in evaluation["per_template"]["out_of_template"]}
  assert held_out <= set(phyre.HELD_OUT_TEMPLATES) and len(held_out) == 4
  with open(os.path.join(workdir, "report.md")) as f:
    report = f.read()
  assert "| model | FVD ↓ | SSIM ↑ | PSNR ↑ | LPIPS ↓ | abnormal (type 3) ↓ |" in report
  assert "| copy_last (baseline) |" in report and "| out_of_template: blank | 4 |" in report
  assert "## Physics-IQ (Motamed et al. 2025)" in report
  for name in ("in_template_best.gif", "out_of_template_worst.gif", "in_template_filmstrip.png"):
    assert os.path.exists(os.path.join(workdir, "report", name)), name


def test_red_height_error_follows_the_falling_ball():
  truth = falling_ball_video()
  copied = np.repeat(truth[:, :1], FRAMES, axis=1)
  blank = truth.copy()
  blank[:, 1:] = 1.0
  exact = combinatorial_probe.red_height_error(truth, truth, 1)
  np.testing.assert_array_equal(exact, 0.0)
  # the true ball falls 1.2 t^2 at t = 1/3, 2/3, 1: a frozen one is off by 0.62 on average
  np.testing.assert_allclose(
    combinatorial_probe.red_height_error(truth, copied, 1), 0.62, atol=0.05
  )
  assert np.isnan(combinatorial_probe.red_height_error(truth, blank, 1)).all()
  scores = combinatorial_probe.SplitScores(("psnr",), 1, batch_size=3)
  scores.add(truth, truth, np.asarray([10060] * 3))
  summary = scores.summary()
  assert summary["red_height_error"] == 0.0 and summary["red_follows_rate"] == 1.0
