"""Frechet video distance: the Frechet distance between Gaussians fitted to I3D logits.

FD = |mu_a - mu_b|^2 + tr(S_a) + tr(S_b) - 2 tr((S_a S_b)^(1/2)), in float64, with the study's
statistics (mean and unbiased covariance, as np.cov; a single video has zero covariance). The
study takes the last term from scipy.linalg.sqrtm(S_a S_b), whose result depends on the scipy
version (its README warns against 1.11) and which goes astray on the singular covariances of
fewer videos than features. Here no matrix square root is taken: with S = R^T R for the triangular
factor R of the centred, scaled features, the eigenvalues of S_a S_b are the squared singular
values of R_a R_b^T, so the trace term is that matrix's nuclear norm (an SVD of at most 400 x 400;
exact for any rank, never negative). FVD depends on the number of videos; compare equal sets.
"""

from __future__ import annotations

import jax
import numpy as np

from experiments.video_metrics import i3d


def _mean_and_factor(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Mean [d] and R [min(n, d), d] with R^T R the unbiased covariance of features [n, d]."""
  features = np.asarray(features, np.float64)
  if features.ndim != 2 or len(features) == 0:
    raise ValueError(f"features must be [n >= 1, d]; got shape {features.shape}")
  mean = features.mean(axis=0)
  centred = (features - mean) / np.sqrt(max(len(features) - 1, 1))
  return mean, np.linalg.qr(centred, mode="r")


def frechet_distance(features_a: np.ndarray, features_b: np.ndarray) -> float:
  """Frechet distance between Gaussians fitted to two feature sets [n_a, d] and [n_b, d]."""
  mean_a, factor_a = _mean_and_factor(features_a)
  mean_b, factor_b = _mean_and_factor(features_b)
  trace_sqrt = np.linalg.svd(factor_a @ factor_b.T, compute_uv=False).sum()
  distance = (
    np.sum(np.square(mean_a - mean_b))
    + np.sum(np.square(factor_a))
    + np.sum(np.square(factor_b))
    - 2 * trace_sqrt
  )
  # A squared distance: round-off can leave it a hair below zero for equal sets.
  return max(float(distance), 0.0)


def fvd(real: jax.Array | np.ndarray, generated: jax.Array | np.ndarray) -> float:
  """FVD between two sets of videos [n, T, H, W, 3] in [0, 1] (I3D logits, all frames)."""
  return frechet_distance(np.asarray(i3d.logits(real)), np.asarray(i3d.logits(generated)))
