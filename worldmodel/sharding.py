"""Device mesh and sharding rules for data-parallel + FSDP training.

The mesh has two axes: `data` (pure data parallelism) and `fsdp` (data
parallelism with parameters and optimizer state sharded across devices). The
batch is split over both axes; large parameters are split over `fsdp` only.
"""

import math
from collections.abc import Sequence
from typing import Any

import jax
import numpy as np
from jax.experimental import mesh_utils
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

AXIS_NAMES = ("data", "fsdp")
# Parameters under a key of one of these names are stacked along a leading layer axis (the
# blocks that `worldmodel.dit.VideoDiT` scans over); that axis is never sharded.
LAYER_STACKS = ("blocks",)


def _resolve_sizes(data: int, fsdp: int, num_devices: int) -> tuple[int, int]:
  """Replaces a -1 axis size by the number of remaining devices and validates."""
  if data == -1 and fsdp == -1:
    raise ValueError("At most one of data and fsdp may be -1.")
  if data == -1 and fsdp > 0 and num_devices % fsdp == 0:
    data = num_devices // fsdp
  elif fsdp == -1 and data > 0 and num_devices % data == 0:
    fsdp = num_devices // data
  if data <= 0 or fsdp <= 0 or data * fsdp != num_devices:
    raise ValueError(f"Mesh data={data} x fsdp={fsdp} does not match the {num_devices} devices.")
  return data, fsdp


def make_mesh(data: int = -1, fsdp: int = 1, devices: Sequence[Any] | None = None) -> Mesh:
  """Builds a ("data", "fsdp") mesh with Auto axis types.

  Args:
    data: size of the data axis; -1 uses all devices not taken by `fsdp`.
    fsdp: size of the fsdp axis; -1 uses all devices not taken by `data`.
    devices: devices to use; defaults to `jax.devices()`.

  Returns:
    The mesh. On a multi-slice TPU pod (devices with several distinct
    `slice_index` values) `data` is laid out across slices, so only the
    gradient all-reduce crosses the slow inter-slice network while the fsdp
    all-gathers stay inside a slice; `data` must then be a multiple of the
    number of slices.

  Raises:
    ValueError: if the axis sizes do not multiply to the device count.
  """
  devices = list(jax.devices() if devices is None else devices)
  data, fsdp = _resolve_sizes(data, fsdp, len(devices))
  axis_types = (jax.sharding.AxisType.Auto,) * len(AXIS_NAMES)
  num_slices = len({getattr(device, "slice_index", 0) for device in devices})
  if num_slices == 1:
    return jax.make_mesh((data, fsdp), AXIS_NAMES, axis_types=axis_types, devices=devices)
  if data % num_slices:
    raise ValueError(f"Mesh data={data} is not a multiple of the {num_slices} slices.")
  device_array = mesh_utils.create_hybrid_device_mesh(
    mesh_shape=(data // num_slices, fsdp), dcn_mesh_shape=(num_slices, 1), devices=devices
  )
  return Mesh(device_array, AXIS_NAMES, axis_types=axis_types)


def batch_sharding(mesh: Mesh) -> NamedSharding:
  """Shards the leading (batch) axis over both mesh axes."""
  return NamedSharding(mesh, P(AXIS_NAMES))


def replicated(mesh: Mesh) -> NamedSharding:
  """Replicates an array on every device of the mesh."""
  return NamedSharding(mesh, P())


def fsdp_sharding(mesh: Mesh, tree: Any, min_size: int = 2**14) -> Any:
  """Returns a NamedSharding per leaf of `tree` following the FSDP rule.

  Each leaf (an array, `jax.ShapeDtypeStruct` or scalar) with at least
  `min_size` elements has its largest dimension divisible by the fsdp axis size
  sharded over "fsdp" (ties go to the last such dimension); smaller leaves and
  leaves without such a dimension are replicated. A leaf stacked along a leading
  layer axis (under a `LAYER_STACKS` key, followed by a non-integer key) follows
  the rule for one layer's shape, with the layer axis unsharded.

  Args:
    mesh: mesh with an "fsdp" axis.
    tree: any pytree, e.g. an `nnx.State` or an optax state.
    min_size: leaves with fewer elements are replicated.

  Returns:
    A pytree with the structure of `tree` whose leaves are NamedShardings.
  """
  fsdp_size = mesh.shape["fsdp"]

  def leaf_sharding(path: tuple, leaf: Any) -> NamedSharding:
    shape = np.shape(leaf)
    layer_axes = 1 if shape and _is_layer_stacked(path) else 0
    layer_shape = shape[layer_axes:]
    if math.prod(layer_shape) >= min_size:
      for dim in reversed(np.argsort(layer_shape, kind="stable")):
        if layer_shape[dim] % fsdp_size == 0:
          spec = [None] * len(shape)
          spec[layer_axes + dim] = "fsdp"
          return NamedSharding(mesh, P(*spec))
    return replicated(mesh)

  return jax.tree_util.tree_map_with_path(leaf_sharding, tree)


def _is_layer_stacked(path: tuple) -> bool:
  """Whether a leaf at `path` lies under a LAYER_STACKS key not followed by a layer index."""
  keys = [getattr(entry, "key", getattr(entry, "name", None)) for entry in path]
  return any(
    key in LAYER_STACKS and index + 1 < len(keys) and not isinstance(keys[index + 1], int)
    for index, key in enumerate(keys)
  )


def shard_like(tree: Any, shardings: Any) -> Any:
  """Places every leaf of `tree` on devices according to `shardings`."""
  return jax.device_put(tree, shardings)
