"""Checkpointing of sharded training state with Orbax.

Each step directory holds two items: `state` (a pytree of arrays and scalars,
e.g. model and optimizer `nnx.State`, step counter, typed PRNG keys) and
`metadata` (a JSON dict, e.g. the data-stream position and the config).

Saves are atomic: Orbax writes into a temporary directory (or, on GCS, marks
completion with a commit file) and a step becomes visible only once complete,
so a killed run leaves earlier checkpoints untouched. Old steps beyond
`max_to_keep` are removed only after a newer save has succeeded. A step that
already exists is never overwritten, even if it is corrupt.
"""

import contextlib
import os
from collections.abc import Iterator
from typing import Any

import jax
import orbax.checkpoint as ocp
from absl import logging
from etils import epath


class CheckpointError(RuntimeError):
  """Raised when a requested checkpoint, or every saved one, cannot be restored."""


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

  def restore(self, abstract_state: Any, step: int | None = None) -> tuple[int, Any, dict] | None:
    """Restores a checkpoint onto the shardings given by `abstract_state`.

    Args:
      abstract_state: pytree of `jax.ShapeDtypeStruct` with `sharding` set, as
        returned by `abstract_like`; the mesh may differ from the saving one.
      step: step to restore; None restores the latest step that is readable,
        falling back (with a warning) to earlier ones if later ones are corrupt
        or incomplete.

    Returns:
      `(step, state, metadata)`, or None if the directory has no checkpoint.

    Raises:
      CheckpointError: if `step` (or, with `step=None`, every step) fails.
    """
    self.wait()
    steps = self.all_steps()
    if not steps:
      return None
    if step is not None and step not in steps:
      raise CheckpointError(f"No checkpoint at step {step} in {self.directory} (have {steps}).")
    candidates = [step] if step is not None else steps[::-1]
    args = ocp.args.Composite(
      state=ocp.args.StandardRestore(abstract_state), metadata=ocp.args.JsonRestore()
    )
    error = None
    for candidate in candidates:
      try:
        restored = self._manager.restore(candidate, args=args)
      except Exception as e:  # Corrupt checkpoints fail in many different ways.
        error = e
        logging.warning(
          "Cannot restore checkpoint step %d in %s: %s", candidate, self.directory, _one_line(e)
        )
        continue
      return candidate, restored.state, restored.metadata
    raise CheckpointError(
      f"No restorable checkpoint in {self.directory}: tried steps {candidates}, "
      f"last error {_one_line(error)}"
    ) from error

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


def _one_line(error: BaseException) -> str:
  text = str(error).strip().splitlines()
  return f"{type(error).__name__}: {text[0] if text else ''}"
