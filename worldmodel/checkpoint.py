"""Checkpointing of sharded training state with Orbax.

Each step directory holds two items: `state` (a pytree of arrays and scalars,
e.g. model and optimizer `nnx.State`, step counter, typed PRNG keys) and
`metadata` (a JSON dict, e.g. the data-stream position and the config).

Saves are atomic: Orbax writes into a temporary directory (or, on GCS, marks
completion with a commit file) and a step becomes visible only once complete,
so a killed run leaves earlier checkpoints untouched. Old steps beyond
`max_to_keep` are removed only after a newer save has succeeded. A step that
already exists is never overwritten, even if it is corrupt.

A restore that falls back from corrupt newer steps to an older one moves the
corrupt steps aside (`<step>.corrupt`), so that the run saves those steps
afresh and later restarts do not try them again. Errors of the storage itself
(permissions, network, quota) are not corruption: they propagate.

A checkpoint written in an earlier layout of the state (e.g. per-block DiT parameters before the
blocks were stacked for a scan) restores through a `Layout` passed to `restore`: when the
current layout does not fit a step, each earlier layout is tried and the state converted, once,
at restore time (the next save writes the current layout).
"""

import contextlib
import dataclasses
import os
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp
from absl import logging
from etils import epath
from jax.experimental import multihost_utils

CORRUPT_SUFFIX = ".corrupt"
# TensorStore reports failed reads as ValueErrors led by a status code; these codes are
# failures of the storage, not of the data.
_STORAGE_STATUS = (
  "UNAVAILABLE",
  "DEADLINE_EXCEEDED",
  "PERMISSION_DENIED",
  "UNAUTHENTICATED",
  "RESOURCE_EXHAUSTED",
  "ABORTED",
  "CANCELLED",
)


class CheckpointError(RuntimeError):
  """Raised when a requested checkpoint, or every saved one, cannot be restored."""


@dataclasses.dataclass(frozen=True)
class Layout:
  """An earlier layout of the saved state that `Checkpointer.restore` converts from.

  Attributes:
    name: what the layout was, for the log.
    abstract: maps the abstract state (in the current layout, with shardings) to the abstract
      state in this layout.
    to_current: converts a state restored in this layout to the current layout.
  """

  name: str
  abstract: Callable[[Any], Any]
  to_current: Callable[[Any], Any]


def abstract_like(tree: Any, shardings: Any = None) -> Any:
  """Returns `tree` with arrays replaced by `jax.ShapeDtypeStruct`s for restore.

  Args:
    tree: pytree of `jax.Array`s or `jax.ShapeDtypeStruct`s; other leaves,
      such as Python scalars, are kept as they are.
    shardings: a pytree of shardings matching `tree`, a single sharding for all
      arrays, or None to take each array's own sharding.

  Returns:
    A pytree of `jax.ShapeDtypeStruct` with the target shardings.
  """

  def to_abstract(leaf: Any, sharding: Any) -> Any:
    if not isinstance(leaf, jax.Array | jax.ShapeDtypeStruct):
      return leaf
    return jax.ShapeDtypeStruct(leaf.shape, leaf.dtype, sharding=sharding or leaf.sharding)

  if shardings is None or isinstance(shardings, jax.sharding.Sharding):
    return jax.tree.map(lambda leaf: to_abstract(leaf, shardings), tree)
  return jax.tree.map(to_abstract, tree, shardings)


class Checkpointer:
  """Saves and restores numbered checkpoints of a state pytree plus JSON metadata.

  Must be called from every process of a multi-host job (which all read the
  same storage, so they agree on which steps are corrupt). Use as a context
  manager, or call `close()`, so that pending asynchronous saves complete.
  """

  def __init__(
    self,
    directory: str | os.PathLike,
    *,
    max_to_keep: int = 3,
    save_interval_steps: int = 1,
    async_save: bool = True,
  ):
    """Opens (creating if needed) a checkpoint directory.

    Args:
      directory: local path (relative paths are made absolute, as orbax requires) or `gs://` URL.
      max_to_keep: number of most recent checkpoints kept on disk.
      save_interval_steps: `save` skips steps that are not a multiple of this
        unless forced.
      async_save: write to storage in a background thread after copying the
        arrays to host memory.
    """
    if "://" not in os.fspath(directory):
      directory = os.path.abspath(directory)
    self.directory = epath.Path(directory)
    options = ocp.CheckpointManagerOptions(
      max_to_keep=max_to_keep,
      save_interval_steps=save_interval_steps,
      enable_async_checkpointing=async_save,
      create=True,
    )
    self._manager = ocp.CheckpointManager(self.directory, options=options)

  def __enter__(self) -> "Checkpointer":
    return self

  def __exit__(self, *exc_info: object) -> None:
    self.close()

  def all_steps(self) -> list[int]:
    """Returns the saved steps in increasing order."""
    return sorted(self._manager.all_steps())

  def latest_step(self) -> int | None:
    """Returns the most recent saved step, or None if there is none."""
    return self._manager.latest_step()

  def save(
    self, step: int, state: Any, *, metadata: dict | None = None, force: bool = False
  ) -> bool:
    """Saves `state` and JSON `metadata` as checkpoint `step`.

    Args:
      step: training step that names the checkpoint.
      state: pytree of (possibly sharded) arrays and scalars.
      metadata: JSON-serializable dict stored beside the state.
      force: save even if `step` is off the save interval or older than the
        latest step.

    Returns:
      Whether a save was started. False when the step is skipped by the save
      interval or already exists (which is logged and never overwritten).
    """
    if step in self._manager.all_steps():
      logging.warning("Checkpoint step %d already exists in %s; not saving.", step, self.directory)
      return False
    args = ocp.args.Composite(
      state=ocp.args.StandardSave(state), metadata=ocp.args.JsonSave(metadata or {})
    )
    with self._reload_steps_on_error():
      return self._manager.save(step, args=args, force=force)

  def restore(
    self, abstract_state: Any, step: int | None = None, *, earlier_layouts: Sequence[Layout] = ()
  ) -> tuple[int, Any, dict] | None:
    """Restores a checkpoint onto the shardings given by `abstract_state`.

    Args:
      abstract_state: pytree of `jax.ShapeDtypeStruct` with `sharding` set, as
        returned by `abstract_like`; the mesh may differ from the saving one.
      step: step to restore; None restores the latest step that is readable,
        falling back (with a warning) to earlier ones if later ones are corrupt
        or incomplete, and moving those aside. In a multi-process job every
        process restores the step that process 0 could restore.
      earlier_layouts: layouts of the state that older checkpoints may have; a step that does
        not restore in the current layout is tried in each of these in turn and converted to the
        current layout (placed on `abstract_state`'s shardings).

    Returns:
      `(step, state, metadata)`, or None if the directory has no checkpoint.

    Raises:
      CheckpointError: if `step` (or, with `step=None`, every step) is corrupt.
      Other errors of reading (e.g. OSError, PermissionError) as they are.
    """
    self.wait()
    steps = _steps_of_process_0(self.all_steps())
    if not steps:
      return None
    if step is not None and step not in steps:
      raise CheckpointError(f"No checkpoint at step {step} in {self.directory} (have {steps}).")
    candidates = [step] if step is not None else steps[::-1]
    error = None
    for index, candidate in enumerate(candidates):
      restored, error = self._try_restore(candidate, abstract_state, earlier_layouts)
      # Every process takes process 0's outcome, so that all of them restore the same step.
      if _from_process_0(np.bool_(restored is not None)):
        if restored is None:
          raise CheckpointError(
            f"Process 0 restored step {candidate} in {self.directory} but this process cannot: "
            f"{_one_line(error)}"
          ) from error
        self._move_aside(candidates[:index])
        return candidate, *restored
    raise CheckpointError(
      f"No restorable checkpoint in {self.directory}: tried steps {candidates}, "
      f"last error {_one_line(error)}"
    ) from error

  def _try_restore(
    self, step: int, abstract_state: Any, earlier_layouts: Sequence[Layout]
  ) -> tuple[tuple[Any, dict] | None, Exception | None]:
    """((state, metadata), None), or (None, the error) if the step is corrupt in every layout."""
    try:
      return self._restore_items(step, abstract_state), None
    except Exception as error:
      if not is_corruption(error):
        raise
      for layout in earlier_layouts:
        try:
          state, metadata = self._restore_items(step, layout.abstract(abstract_state))
        except Exception as layout_error:
          if not is_corruption(layout_error):
            raise
          continue
        logging.info("Checkpoint step %d is in the earlier layout %r: converted", step, layout.name)
        return (_place_like(layout.to_current(state), abstract_state), metadata), None
      logging.warning(
        "Cannot restore checkpoint step %d in %s: %s", step, self.directory, _one_line(error)
      )
      return None, error

  def _restore_items(self, step: int, abstract_state: Any) -> tuple[Any, dict]:
    args = ocp.args.Composite(
      state=ocp.args.StandardRestore(abstract_state), metadata=ocp.args.JsonRestore()
    )
    restored = self._manager.restore(step, args=args)
    return restored.state, restored.metadata

  def _move_aside(self, steps: list[int]) -> None:
    """Renames corrupt `steps` to `<step>.corrupt`, or deletes them where the storage cannot
    rename directories (process 0; the others wait for it)."""
    if not steps:
      return
    index, count = _process()
    if index == 0:
      for step in steps:
        source, target = self.directory / str(step), self.directory / f"{step}{CORRUPT_SUFFIX}"
        copies = 0
        while target.exists():
          copies += 1
          target = self.directory / f"{step}{CORRUPT_SUFFIX}.{copies}"
        try:
          source.rename(target)
          logging.warning("Moved corrupt checkpoint step %d aside to %s", step, target)
        except Exception as error:  # e.g. object stores, which rename files only
          source.rmtree()
          logging.warning("Deleted corrupt checkpoint step %d (%s)", step, _one_line(error))
    if count > 1:
      multihost_utils.sync_global_devices("checkpoint: corrupt steps moved aside")
    self._manager.reload()

  def wait(self) -> None:
    """Blocks until pending saves are complete; raises their errors."""
    with self._reload_steps_on_error():
      self._manager.wait_until_finished()

  @contextlib.contextmanager
  def _reload_steps_on_error(self) -> Iterator[None]:
    """Re-reads the step list from storage if the wrapped call raises.

    A failed asynchronous save surfaces in the next `wait` or `save`; Orbax then
    forgets the older steps it meant to delete afterwards although they are
    still on disk.
    """
    try:
      yield
    except Exception:
      self._manager.reload()
      raise

  def close(self) -> None:
    """Waits for pending saves (raising their errors) and releases resources."""
    try:
      self.wait()
    finally:
      self._manager.close()


def _place_like(tree: Any, abstract_state: Any) -> Any:
  """Puts the arrays of `tree` on the shardings of `abstract_state` (same structure)."""

  def place(leaf: Any, abstract: Any) -> Any:
    if isinstance(leaf, jax.Array) and isinstance(abstract, jax.ShapeDtypeStruct):
      if leaf.shape != abstract.shape or leaf.dtype != abstract.dtype:
        raise ValueError(
          f"converted {leaf.shape} {leaf.dtype} != {abstract.shape} {abstract.dtype}"
        )
      return jax.device_put(leaf, abstract.sharding) if abstract.sharding is not None else leaf
    return leaf

  return jax.tree.map(place, tree, abstract_state)


def is_corruption(error: Exception) -> bool:
  """Whether a restore error means the step's files are damaged: missing, truncated or garbled
  (FileNotFoundError, KeyError, ValueError), not that the storage failed to serve them."""
  if isinstance(error, FileNotFoundError):
    return True
  if isinstance(error, KeyError | ValueError):
    return not str(error).startswith(_STORAGE_STATUS)
  return False


def _process() -> tuple[int, int]:
  """This process's index and the number of processes of the job."""
  return jax.process_index(), jax.process_count()


def _from_process_0(value: np.ndarray) -> np.ndarray:
  """Process 0's value on every process (each passes an array of the same shape and dtype)."""
  if _process()[1] == 1:
    return value
  return np.asarray(multihost_utils.broadcast_one_to_all(value))


def _steps_of_process_0(steps: list[int]) -> list[int]:
  """Process 0's list of steps, on every process."""
  count = int(_from_process_0(np.int32(len(steps))))
  local = np.zeros(count, np.int32)
  local[: min(count, len(steps))] = steps[:count]
  return [int(step) for step in _from_process_0(local)]


def _one_line(error: BaseException) -> str:
  text = str(error).strip().splitlines()
  return f"{type(error).__name__}: {text[0] if text else ''}"
