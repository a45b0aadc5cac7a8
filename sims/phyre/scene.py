"""The scene: `sims.make("phyre")`."""

from __future__ import annotations

import zlib
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from sims.core import NUM_FRAMES, BodyTrajectory, Pool, Scene, check_choice
from sims.phyre.engine import simulate
from sims.phyre.placement import _place, _uniform_parts
from sims.phyre.templates import (
  AMBIGUITY,
  HELD_OUT_TEMPLATES,
  SPLITS,
  TASKS_PER_TEMPLATE,
  TEMPLATE_SETS,
  TEMPLATE_SUBSETS,
  TRAIN_TEMPLATES,
  TRIALS_PER_TASK,
)
from sims.phyre.world import FRAME_DT, KIND_SLOTS, NUM_SLOTS, BodyState


def _check_template_ids(ids: Sequence[int], allowed: Sequence[int], what: str) -> tuple[int, ...]:
  ids = tuple(int(t) for t in ids)
  bad = [t for t in ids if t not in allowed]
  if bad or not ids:
    raise ValueError(
      f"templates {list(bad) or 'empty'} are not {what}; valid: {min(allowed)}-{max(allowed)}"
    )
  return ids


class Phyre(Scene):
  """The study's combinatorial scenes (see the module docstring).

  Options: `templates` sets the templates that "train" and "in_template" draw from by default:
  None (all 60 training templates), one of the study's subsets "6" / "30" / "60", or a
  sequence of training template ids. `tasks_per_template` is how many object layouts (PHYRE
  tasks) each template has; the study's 100 by default. `templates="ambiguity"` makes the
  study's visual-ambiguity scene instead, a subclass (sims.phyre_ambiguity.PhyreAmbiguity).
  """

  name = "phyre"
  num_objects = NUM_SLOTS
  dataset_sizes = tuple(TEMPLATE_SUBSETS)
  kind_slots = KIND_SLOTS
  frame_dt = FRAME_DT

  def __new__(cls, *, templates: str | Sequence[int] | None = None, **options) -> Phyre:
    """A PhyreAmbiguity for `templates="ambiguity"` (imported here: its module imports this)."""
    del options  # __init__'s
    named = isinstance(templates, str)
    if named and check_choice("template set", templates, TEMPLATE_SETS) == AMBIGUITY:
      from sims.phyre_ambiguity import PhyreAmbiguity

      cls = PhyreAmbiguity
    return super().__new__(cls)

  def __init__(
    self,
    *,
    templates: str | Sequence[int] | None = None,
    tasks_per_template: int = TASKS_PER_TEMPLATE,
  ):
    if tasks_per_template < 1:
      raise ValueError(f"tasks_per_template must be at least 1, got {tasks_per_template}")
    self.tasks_per_template = int(tasks_per_template)
    self.default_templates = self._resolve(TRAIN_TEMPLATES, templates)

  @property
  def param_names(self) -> tuple[str, ...]:
    return ("template", "task")

  @property
  def splits(self) -> tuple[str, ...]:
    return SPLITS

  @property
  def train_region(self) -> None:
    """Template sets have no parameter regions."""
    return None

  def templates(self, split: str) -> tuple[int, ...]:
    """The template ids a split draws from by default."""
    if self.check_split(split) == "out_of_template":
      return HELD_OUT_TEMPLATES
    return self.default_templates

  @staticmethod
  def _resolve(allowed: tuple[int, ...], templates: str | Sequence[int] | None) -> tuple[int, ...]:
    if templates is None:
      return allowed
    if isinstance(templates, str):
      subset = TEMPLATE_SUBSETS[check_choice("template subset", templates, tuple(TEMPLATE_SUBSETS))]
      return _check_template_ids(subset, allowed, "in this split")
    return _check_template_ids(templates, allowed, "in this split")

  def _split_templates(self, split: str, templates: str | Sequence[int] | None) -> tuple[int, ...]:
    if templates is None:
      return self.templates(split)
    allowed = (
      HELD_OUT_TEMPLATES if self.check_split(split) == "out_of_template" else TRAIN_TEMPLATES
    )
    return self._resolve(allowed, templates)

  def sample_params(
    self, key: jax.Array, n: int, split: str, templates: str | Sequence[int] | None = None
  ) -> jax.Array:
    """[n, 2] int32 (template, task): a template of the split (or of `templates`) and a task,
    each uniform."""
    ids = jnp.asarray(self._split_templates(split, templates), jnp.int32)
    u = _uniform_parts(key, {"template": (n,), "task": (n,)})
    template = ids[jnp.floor(u["template"] * len(ids)).astype(jnp.int32)]
    task = jnp.floor(u["task"] * self.tasks_per_template).astype(jnp.int32)
    return jnp.stack([template, task], -1)

  def sample(
    self,
    key: jax.Array,
    n: int,
    split: str | Pool = "train",
    templates: str | Sequence[int] | None = None,
  ) -> BodyState:
    """n initial states from a split (optionally restricted to `templates`) or a Pool.

    Each split draws its own stream, so "train" and "in_template" with one key differ.
    """
    if isinstance(split, Pool):
      if templates is not None:
        raise ValueError("templates cannot be given with a Pool (its params fix the templates)")
      return super().sample(key, n, split)
    keys = jax.random.split(jax.random.fold_in(key, zlib.crc32(split.encode())), n + 1)
    return self.place(keys[1:], self.sample_params(keys[0], n, split, templates))

  def place(self, keys: jax.Array, params: jax.Array) -> BodyState:
    """Initial states for [n, 2] (template, task) params: the task's objects, and a red ball
    from each example's key."""
    return _place(keys, jnp.asarray(params))

  def rollout(self, state0: BodyState, num_frames: int = NUM_FRAMES) -> BodyTrajectory:
    """Simulates `num_frames` frames FRAME_DT apart (STEPS_PER_FRAME jax2d steps each)."""
    return simulate(state0, num_frames)

  def pool_params(self, dataset_size: str, seed: int = 0) -> np.ndarray:
    """The study's training set for a template subset: every (template, task) pair of the
    subset, repeated for TRIALS_PER_TASK red-ball trials, [N, 2] int32. `seed` is unused: the
    pool's key draws the trials."""
    del seed
    templates = np.asarray(TEMPLATE_SUBSETS[dataset_size], np.int32)
    tasks = np.arange(self.tasks_per_template, dtype=np.int32)
    pairs = np.stack(np.meshgrid(templates, tasks, indexing="ij"), -1).reshape(-1, 2)
    return np.repeat(pairs, TRIALS_PER_TASK, axis=0)

  def params_of(self, state: BodyState) -> jax.Array:
    return jnp.stack([state.template, state.task], -1)

  def eval_params(self, split: str, points: int = 8) -> np.ndarray:
    """Tasks 0..points-1 of each of the split's templates, [templates * points, 2] int32."""
    templates = np.asarray(self.templates(split), np.int32)
    tasks = np.arange(points, dtype=np.int32)
    return np.stack(np.meshgrid(templates, tasks, indexing="ij"), -1).reshape(-1, 2)
