"""Evaluation: roll out held-out cases from their context frames, score them, write the report.

For each split in `config.eval.splits` a fixed set of cases (a grid deterministic from the config
seed, simulated now or read from a stored eval set) is rolled out by the model from its context
frames. The study's velocity-error probe scores the generated frames (`velocity_probe`), the
Table 2 probe those of template scenes (`combinatorial_probe`), each beside the baselines of
`eval.baselines` on the same cases (`baselines`); the mechanism probes named in `eval.probes`
(`experiments/probes`) take the model's rollouts batch by batch and add their own numbers and
sections (the composition and ambiguity scenes, FRAME_SCENES, are scored by their probes alone,
beside the generated frames' MSE). The run's workdir gets `eval.json` with the numbers and
`report.md` with the tables, the heat map, error against velocity, a filmstrip and the best and
worst rollouts of each split.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
import zlib
from collections.abc import Iterator, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import logging
from flax import nnx
from jax.experimental import multihost_utils

import sims
from experiments import (
  baselines,
  combinatorial_probe,
  eval_sets,
  outputs,
  physics_probe,
  phyworld_hdf5,
  plots,
  probes,
  rater,
  train,
  velocity_probe,
)
from worldmodel import physics, sharding

REPORT_DIR = "report"
# Scenes whose evaluation is their probes' (no velocity or Table 2 probe): the events of the
# composition scenes, the outcomes of the ambiguity tasks and the 3-D worlds (probe velocity3d).
FRAME_SCENES = (sims.Composition, sims.phyre_ambiguity.PhyreAmbiguity, sims.world3d.Scene3D)
NOT_BETTER = "(no better than copy_last)"
FILMSTRIP_CASES = 4


def eval_cases(experiment: train.Experiment, split: str) -> sims.BallState:
  """The split's evaluation grid as initial states, deterministic from the config seed.

  The grid (`Scene.eval_params`) is thinned evenly to at most `eval.num_cases` cases; case i is
  placed (`Scene.place_eval`: the study's evaluation rule, within the scene's clip length) with
  the key folded from the seed, the split name and i.
  """
  config = experiment.config
  params = experiment.scene.eval_params(split, config.eval.grid_points)
  if len(params) > config.eval.num_cases:
    keep = np.unique(np.linspace(0, len(params) - 1, config.eval.num_cases).round().astype(int))
    params = params[keep]
  key = jax.random.fold_in(jax.random.key(config.seed + 1), zlib.crc32(split.encode()))
  keys = jax.vmap(jax.random.fold_in, (None, 0))(key, jnp.arange(len(params)))
  return experiment.scene.place_eval(keys, jnp.asarray(params))


def padded_batch_size(batch_size: int, num_devices: int) -> int:
  """The batch the predictor runs: `batch_size` cases rounded up to a multiple of the devices.

  The cases past `batch_size` are copies of the last one (as the last batch of a split is padded)
  and are dropped from the prediction; they only cost compute, and change no real case's
  numbers: the sampling noise is drawn for the whole batch at once, and a row's noise depends on
  its position only, not on the batch size (JAX's partitionable threefry), so a case draws the
  same noise on any number of devices.
  """
  return -(-batch_size // num_devices) * num_devices


def make_sharded_predictor(experiment: train.Experiment):
  """`predict(params, frames, key_data)` jitted on every device of `experiment.mesh`.

  `predict` is the function of `make_predictor` with the sampling key given as its raw key data
  (`jax.random.key_data`). The batch of `frames` (a multiple of the mesh size) and the generated
  frames are sharded over the mesh's axes as the training batch is (`sharding.batch_sharding`),
  the parameters as in training (`sharding.fsdp_sharding`, by the tree of the first parameters
  given), the key replicated. Returns `(jitted, param_shardings)`: `param_shardings(params)` are
  the shardings the parameters must have (`jax.device_put` them there first).
  """
  config = experiment.config
  mesh = experiment.mesh

  def predict(params, frames, key_data):
    key = jax.random.wrap_key_data(key_data)

    def sample(key):
      return experiment.sample(params, key, frames, config.eval.sample_steps)

    if config.eval.best_of == 1:
      return sample(key)
    score = physics.make_score(experiment.scene, config.reward.kind, config.video.context_frames)
    return physics.best_of_n(sample, score, key, config.eval.best_of)[0]

  jitted = {}

  def param_shardings(params):
    return sharding.fsdp_sharding(mesh, params)

  def call(params, frames, key_data):
    structure = jax.tree.structure(params)
    if structure not in jitted:
      batch, replicated = sharding.batch_sharding(mesh), sharding.replicated(mesh)
      jitted[structure] = jax.jit(
        predict, in_shardings=(param_shardings(params), batch, replicated), out_shardings=batch
      )
    return jitted[structure](params, frames, key_data)

  return call, param_shardings


def make_predictor(experiment: train.Experiment):
  """A `(params, frames, key) -> generated frames` from the context frames of `frames`.

  The rollouts run on every device of `experiment.mesh` (`make_sharded_predictor`): the batch
  is padded with copies of its last case to a multiple of the device count
  (`padded_batch_size`) and sharded over the mesh, the parameters placed as in training; the
  padding is dropped from the result. The numbers do not depend on the number of devices. In a
  multi-process job every process calls it with the same arguments (each holding the whole
  batch of frames) and each gets the whole prediction, a numpy array.

  With `eval.best_of` = n > 1, n rollouts are drawn per case and the one with the lowest score
  of `reward.kind` (`worldmodel.physics.make_score`: the law residuals, or those plus the
  context velocity gap) is kept.
  """
  mesh = experiment.mesh
  sharded, param_shardings = make_sharded_predictor(experiment)
  batch_sharding = sharding.batch_sharding(mesh)

  def predict(params, frames, key):
    num_cases = frames.shape[0]
    padded = padded_batch_size(num_cases, mesh.size)
    if padded != num_cases:
      frames = jnp.concatenate([frames, jnp.repeat(frames[-1:], padded - num_cases, axis=0)])
    params = jax.device_put(params, param_shardings(params))
    key_data = np.asarray(jax.random.key_data(key))
    if jax.process_count() == 1:
      prediction = sharded(params, jax.device_put(frames, batch_sharding), key_data)
      return prediction if padded == num_cases else prediction[:num_cases]
    host = np.asarray(frames)
    frames = jax.make_array_from_callback(host.shape, batch_sharding, lambda index: host[index])
    prediction = sharded(params, frames, key_data)
    return multihost_utils.process_allgather(prediction, tiled=True)[:num_cases]

  return predict


@dataclasses.dataclass
class _Extremes:
  """The best- and worst-scoring cases seen so far, with their frames."""

  best: tuple[float, np.ndarray, np.ndarray] | None = None
  worst: tuple[float, np.ndarray, np.ndarray] | None = None

  def update(self, errors: np.ndarray, truth: np.ndarray, prediction: np.ndarray) -> None:
    if not np.isfinite(errors).any():
      return
    low, high = int(np.nanargmin(errors)), int(np.nanargmax(errors))
    if self.best is None or errors[low] < self.best[0]:
      self.best = (float(errors[low]), truth[low], prediction[low])
    if self.worst is None or errors[high] > self.worst[0]:
      self.worst = (float(errors[high]), truth[high], prediction[high])


def to_8bit(frames: jax.Array) -> jax.Array:
  """Frames rounded to 8-bit levels, as stored eval sets (and the study's videos) hold them."""
  return jnp.round(frames * 255.0) / 255.0


def simulated_split(experiment: train.Experiment, cases: Any) -> tuple[Any, Any]:
  """Initial states (e.g. `eval_cases`) simulated now: the trajectory and a `frames(index)`
  renderer of 8-bit frames."""
  config = experiment.config
  traj = experiment.scene.rollout(cases, config.video.num_frames)

  def frames(index: np.ndarray) -> jax.Array:
    chunk = jax.tree.map(lambda x: x[index], traj)
    return to_8bit(sims.render(chunk, config.video.resolution))

  return traj, frames


def stored_split(arrays: dict[str, np.ndarray]) -> tuple[sims.Trajectory, Any]:
  """A split read from an eval set: the trajectory and a `frames(index)` reader."""
  traj = sims.Trajectory(
    *(jnp.asarray(arrays[f]) for f in ("position", "velocity", "radius", "color", "shape"))
  )
  return traj, lambda index: jnp.asarray(arrays["frames"][index], jnp.float32) / 255.0


def rollout_key(config: ml_collections.ConfigDict, split: str) -> jax.Array:
  """The sampling key of a split's evaluation; its batch from case `start` on folds in `start`."""
  return jax.random.fold_in(jax.random.key(config.seed + 2), zlib.crc32(split.encode()))


def rollouts(
  experiment: train.Experiment,
  params: nnx.State,
  split: str,
  predict: Any,
  cases: tuple[Any, Any],
) -> Iterator[tuple[np.ndarray, Any, jax.Array, jax.Array]]:
  """Rolls out a split's cases `eval.batch_size` at a time from their context frames.

  Yields (index, trajectory, truth, prediction) per batch: the case numbers [b] and the batch's
  trajectory and frames. The last batch is padded with copies of the last case so that every
  batch has one shape (one compilation); `index` leaves the copies out.
  """
  config = experiment.config
  traj_all, frames = cases
  batch = config.eval.batch_size
  num_cases = jax.tree.leaves(traj_all)[0].shape[0]
  key = rollout_key(config, split)
  for start in range(0, num_cases, batch):
    index = np.minimum(np.arange(start, start + batch), num_cases - 1)
    traj = jax.tree.map(lambda x, index=index: x[index], traj_all)
    truth = frames(index)
    prediction = predict(params, truth, jax.random.fold_in(key, start))
    yield np.arange(start, min(start + batch, num_cases)), traj, truth, prediction


@dataclasses.dataclass
class LawScores:
  """One predictor's scores of a split's cases, accumulated batch by batch."""

  errors: velocity_probe.CaseErrors | None = None
  squared: list[np.ndarray] = dataclasses.field(default_factory=list)
  physics: list[dict[str, np.ndarray]] = dataclasses.field(default_factory=list)

  def add(
    self,
    experiment: train.Experiment,
    split: str,
    traj: sims.Trajectory,
    truth: jax.Array,
    prediction: jax.Array,
    num_real: int,
    render_width: int | None,
  ) -> velocity_probe.CaseErrors:
    """Scores a batch whose first `num_real` cases are real (the rest padding); their errors.
    `render_width`: `velocity_probe.case_errors`'s."""
    config = experiment.config
    real = slice(0, num_real)
    if config.eval.physics_score:
      found = physics_probe.case_scores(
        experiment.scene, traj, truth, prediction, config.video.context_frames
      )
      self.physics.append({name: values[real] for name, values in found.items()})
    errors = velocity_probe.case_errors(
      experiment.scene, traj, truth, prediction, config.video.context_frames, split, render_width
    ).select(real)
    self.errors = errors if self.errors is None else self.errors.concatenate(errors)
    generated = slice(config.video.context_frames, None)
    self.squared.append(np.asarray(jnp.mean((prediction - truth)[real, generated] ** 2, (2, 3, 4))))
    return errors

  def summary(self, scene: sims.Scene) -> dict[str, Any]:
    """Velocity-probe numbers, the generated frames' MSE and (if scored) the physics probe's."""
    summary = {
      **velocity_probe.summarize(scene, self.errors),
      "frame_mse": float(np.concatenate(self.squared).mean()),
    }
    if self.physics:
      summary["physics"] = physics_probe.summarize(
        {name: np.concatenate([batch[name] for batch in self.physics]) for name in self.physics[0]}
      )
    return summary


def baseline_videos(experiment: train.Experiment, truth: jax.Array) -> dict[str, jax.Array]:
  """Each of `eval.baselines`' videos of a batch of ground-truth videos."""
  context_frames = experiment.config.video.context_frames
  return {
    name: baselines.predict(name, experiment.scene, truth, context_frames)
    for name in experiment.config.eval.baselines
  }


def evaluate_split(
  experiment: train.Experiment,
  params: nnx.State,
  split: str,
  predict: Any,
  cases: tuple[sims.Trajectory, Any],
  render_width: int | None = velocity_probe.STUDY_RENDER_WIDTH,
  active_probes: Sequence[probes.Probe] = (),
) -> tuple[dict[str, LawScores], _Extremes, np.ndarray]:
  """Scores of the model ("model") and of each of `eval.baselines` on every case of a split,
  the model's best and worst rollouts and a filmstrip; each batch of the model's rollouts also
  goes to `active_probes`. `render_width`: `velocity_probe`'s."""
  config = experiment.config
  scores = {name: LawScores() for name in ("model", *config.eval.baselines)}
  extremes = _Extremes()
  for index, traj, truth, prediction in rollouts(experiment, params, split, predict, cases):
    num_real = len(index)
    videos = {"model": prediction, **baseline_videos(experiment, truth)}
    errors = {
      name: scores[name].add(experiment, split, traj, truth, video, num_real, render_width)
      for name, video in videos.items()
    }
    real_truth, real_prediction = np.asarray(truth[:num_real]), np.asarray(prediction[:num_real])
    extremes.update(errors["model"].velocity_error, real_truth, real_prediction)
    if active_probes:
      real_traj = jax.tree.map(lambda x, n=num_real: x[:n], traj)
      model = errors["model"]
      batch = probes.Batch(
        split, index, real_traj, real_truth, real_prediction, model.params, model
      )
      for probe in active_probes:
        probe.update(batch)
    if index[0] == 0:
      shown = slice(0, min(FILMSTRIP_CASES, num_real))
      strip = outputs.filmstrip(truth[shown], prediction[shown], config.eval.gif_scale)
  return scores, extremes, strip


def evaluate_combinatorial_split(
  experiment: train.Experiment,
  params: nnx.State,
  split: str,
  predict: Any,
  active_probes: Sequence[probes.Probe] = (),
) -> tuple[dict[str, combinatorial_probe.SplitScores], _Extremes, np.ndarray]:
  """Table 2 scores of a template split for the model ("model") and each of `eval.baselines`,
  the model's best and worst rollouts (generated-frame MSE) and a filmstrip; each batch goes to
  `active_probes`."""
  config = experiment.config
  context_frames = config.video.context_frames
  cases = eval_cases(experiment, split)
  templates = np.asarray(cases.template)
  case_params = np.asarray(experiment.scene.params_of(cases))
  scores = {
    name: combinatorial_probe.SplitScores(
      tuple(config.eval.metrics), context_frames, config.eval.batch_size
    )
    for name in ("model", *config.eval.baselines)
  }
  extremes = _Extremes()
  simulated = simulated_split(experiment, cases)
  for index, traj, truth, prediction in rollouts(experiment, params, split, predict, simulated):
    real = slice(0, len(index))
    videos = {"model": prediction, **baseline_videos(experiment, truth)}
    truth, prediction = np.asarray(truth[real]), np.asarray(prediction[real])
    for name, video in videos.items():
      scores[name].add(truth, np.asarray(video[real]), templates[index])
    real_traj = jax.tree.map(lambda x, real=real: x[real], traj)
    batch = probes.Batch(split, index, real_traj, truth, prediction, case_params[index])
    for probe in active_probes:
      probe.update(batch)
    if index[0] == 0:
      shown = slice(0, min(FILMSTRIP_CASES, len(index)))
      strip = outputs.filmstrip(truth[shown], prediction[shown], config.eval.gif_scale)
    generated = slice(context_frames, None)
    frame_mse = np.mean((prediction[:, generated] - truth[:, generated]) ** 2, axis=(1, 2, 3, 4))
    extremes.update(frame_mse, truth, prediction)
  return scores, extremes, strip


def eval_set_name(config: ml_collections.ConfigDict) -> str:
  return f"{config.task}_eval_{config.video.resolution}px"


def write_eval_set(config: ml_collections.ConfigDict, data_dir: str) -> str:
  """Writes the config's evaluation cases (every split) as a TFDS array_record eval set."""
  experiment = train.make_experiment(config)
  _check_ball_scene(experiment, "--mode=write_eval_set")
  splits = {}
  for split in config.eval.splits:
    traj, frames = simulated_split(experiment, eval_cases(experiment, split))
    count = traj.radius.shape[0]
    chunks = [
      np.asarray(frames(np.arange(start, min(start + config.eval.batch_size, count))))
      for start in range(0, count, config.eval.batch_size)
    ]
    params = np.asarray(experiment.scene.params_of(velocity_probe.initial_state(traj)))
    splits[split] = {
      "frames": (np.concatenate(chunks) * 255).round().astype(np.uint8),
      "params": params,
      "level": velocity_probe.sublevels(experiment.scene, params, split),
      **{f: np.asarray(getattr(traj, f)) for f in ("position", "velocity", "radius", "color")},
      "shape": np.asarray(traj.shape, np.int32),
    }
  return eval_sets.write_eval_set(
    data_dir, eval_set_name(config), splits, _eval_set_metadata(experiment, source="simulated")
  )


def import_phyworld_hdf5(config: ml_collections.ConfigDict, path: str, data_dir: str) -> str:
  """Converts one of the study's HDF5 eval files into an eval set for `--config.eval.dataset`.

  Frames are resized to the config's resolution; the file's videos must have its frame count.
  """
  experiment = train.make_experiment(config)
  _check_ball_scene(experiment, "--mode=import_hdf5")
  data = phyworld_hdf5.read_phyworld_hdf5(path, resolution=config.video.resolution)
  if data["frames"].shape[1] != config.video.num_frames:
    raise ValueError(
      f"{path} has {data['frames'].shape[1]} frames per video; the config has "
      f"{config.video.num_frames} (set --config.video.num_frames)"
    )
  splits = phyworld_hdf5.to_eval_splits(experiment.scene, data)
  return eval_sets.write_eval_set(
    data_dir, eval_set_name(config), splits, _eval_set_metadata(experiment, source=path)
  )


def _check_ball_scene(experiment: train.Experiment, what: str) -> None:
  if not isinstance(experiment.scene, sims.Phyre):
    return
  raise ValueError(
    f"{what} is for the law tasks' ball scenes, not {experiment.config.task!r}; valid tasks: "
    f"{', '.join(n for n in sims.names() if n != experiment.config.task)}"
  )


def _eval_set_metadata(experiment: train.Experiment, source: str) -> dict[str, Any]:
  config = experiment.config
  return {
    "task": config.task,
    "resolution": config.video.resolution,
    "num_frames": config.video.num_frames,
    "seed": config.seed,
    "grid_points": config.eval.grid_points,
    "num_cases": config.eval.num_cases,
    "param_names": list(experiment.scene.param_names),
    "source": source,
  }


def _stored_splits(
  config: ml_collections.ConfigDict,
) -> tuple[dict[str, dict[str, np.ndarray]], dict[str, Any]]:
  """The eval set's splits and metadata (`train.check_eval_set` has checked them)."""
  data_dir, name = os.path.split(os.path.normpath(config.eval.dataset))
  return eval_sets.read_eval_set(data_dir, name, list(config.eval.splits))


def run(
  config: ml_collections.ConfigDict, workdir: str, params: nnx.State | None = None
) -> dict[str, dict[str, float]]:
  """Evaluates the newest checkpoint (or `params`); writes eval.json and report.md.

  Every process of a multi-host job calls this: the rollouts run on every device of the mesh
  (`make_predictor`) and each process gets them all and scores them; process 0 alone writes
  eval.json and report.md (the others write theirs to a temporary directory that they delete)
  and returns the numbers, the others an empty dict.
  """
  experiment = train.make_experiment(config).for_evaluation()
  step = config.num_steps
  if params is None:
    step, params = train.restore_params(experiment, workdir)
  params = jax.device_put(params, sharding.fsdp_sharding(experiment.mesh, params))
  if jax.process_count() == 1:
    return _evaluate(experiment, workdir, step, params)
  if jax.process_index() == 0:
    summary = _evaluate(experiment, workdir, step, params)
  else:
    with tempfile.TemporaryDirectory() as scratch:
      _evaluate(experiment, scratch, step, params)
    summary = {}
  multihost_utils.sync_global_devices("evaluation finished")
  return summary


def _evaluate(
  experiment: train.Experiment, workdir: str, step: int, params: nnx.State
) -> dict[str, dict[str, float]]:
  """The scene's probe: Table 2 metrics for template scenes, velocity errors for law tasks,
  the probes alone for FRAME_SCENES."""
  out_dir = outputs.make_dirs(outputs.path(workdir, REPORT_DIR))
  if isinstance(experiment.scene, FRAME_SCENES):
    return _evaluate_frames(experiment, workdir, step, params, out_dir)
  if isinstance(experiment.scene, sims.Phyre):
    return _evaluate_templates(experiment, workdir, step, params, out_dir)
  return _evaluate_laws(experiment, workdir, step, params, out_dir)


def _evaluate_frames(
  experiment: train.Experiment, workdir: str, step: int, params: nnx.State, out_dir
) -> dict[str, dict[str, Any]]:
  """Scenes scored by their probes alone (FRAME_SCENES): per split the generated frames' MSE
  beside each baseline's, a filmstrip, the best and worst rollouts, and the probes' sections."""
  config = experiment.config
  predict = make_predictor(experiment)
  active_probes = probes.make(config.eval.probes, experiment.scene, config)
  generated = slice(config.video.context_frames, None)
  summary, figures = {}, {}
  for split in config.eval.splits:
    cases = eval_cases(experiment, split)
    case_params = np.asarray(experiment.scene.params_of(cases))
    squared = {name: [] for name in ("model", *config.eval.baselines)}
    extremes = _Extremes()
    simulated = simulated_split(experiment, cases)
    for index, traj, truth, prediction in rollouts(experiment, params, split, predict, simulated):
      real = slice(0, len(index))
      videos = {"model": prediction, **baseline_videos(experiment, truth)}
      for name, video in videos.items():
        error = (video - truth)[real, generated] ** 2
        squared[name].append(np.asarray(jnp.mean(error, (1, 2, 3, 4))))
      truth, prediction = np.asarray(truth[real]), np.asarray(prediction[real])
      extremes.update(squared["model"][-1], truth, prediction)
      real_traj = jax.tree.map(lambda x, real=real: x[real], traj)
      batch = probes.Batch(split, index, real_traj, truth, prediction, case_params[index])
      for probe in active_probes:
        probe.update(batch)
      if index[0] == 0:
        shown = slice(0, min(FILMSTRIP_CASES, len(index)))
        strip = outputs.filmstrip(truth[shown], prediction[shown], config.eval.gif_scale)
    outputs.write_png(out_dir / f"{split}_filmstrip.png", strip)
    mse = {name: float(np.concatenate(values).mean()) for name, values in squared.items()}
    summary[split] = {
      "frame_mse": mse["model"],
      "cases": len(case_params),
      "baselines": {name: {"frame_mse": mse[name]} for name in config.eval.baselines},
    }
    summary[split]["beats_copy_last"] = beats_copy_last(summary[split], "frame_mse", False)
    figures[split] = _write_extremes(out_dir, split, extremes, config.eval.gif_scale)
    logging.info("eval %s: %s", split, summary[split])
  sections = {probe.name: probe.finish(out_dir, REPORT_DIR) for probe in active_probes}
  probe_numbers = {name: section.numbers for name, section in sections.items()}
  _write_eval_json(workdir, config, step, summary, config.eval.splits[0], [], probes=probe_numbers)
  video = config.video
  lines = [
    f"# {config.task}: DiT-{config.model.size}, step {step}",
    "",
    f"The model sees the first {video.context_frames} of {video.num_frames} frames "
    f"({video.resolution} x {video.resolution}) and generates the rest in "
    f"{config.eval.sample_steps} sampling steps. Frame MSE is over the generated frames; rows "
    f"'split: name' score a baseline on the same cases; a model row marked {NOT_BETTER} does "
    "not beat copy_last.",
    "",
    "| split | cases | frame MSE |",
    "|---|---|---|",
    *(
      f"| {label} | {numbers.get('cases', '')} | {numbers['frame_mse']:.4f} |"
      for label, numbers in _labelled_rows(summary)
    ),
    "",
  ]
  for section in sections.values():
    lines += section.lines
  lines += _figure_lines(figures, "frame MSE", "{:.4f}")
  outputs.path(workdir, "report.md").write_text("\n".join(lines) + "\n")
  return summary


def _evaluate_laws(
  experiment: train.Experiment, workdir: str, step: int, params: nnx.State, out_dir
) -> dict[str, dict[str, float]]:
  config = experiment.config
  scene, predict = experiment.scene, make_predictor(experiment)
  stored, render_width = None, velocity_probe.STUDY_RENDER_WIDTH
  if config.eval.dataset:
    stored, metadata = _stored_splits(config)
    if metadata["source"] != "simulated":  # the study's files: drawn on its own pixel grid
      render_width = None
  summary, per_case, figures = {}, {}, {}
  active_probes = probes.make(config.eval.probes, scene, config)
  for split in config.eval.splits:
    cases = (
      stored_split(stored[split])
      if stored
      else simulated_split(experiment, eval_cases(experiment, split))
    )
    scores, extremes, strip = evaluate_split(
      experiment, params, split, predict, cases, render_width, active_probes
    )
    outputs.write_png(out_dir / f"{split}_filmstrip.png", strip)
    errors = per_case[split] = scores["model"].errors
    summary[split] = {
      **scores["model"].summary(scene),
      "baselines": {name: scores[name].summary(scene) for name in config.eval.baselines},
    }
    summary[split]["beats_copy_last"] = beats_copy_last(summary[split], "frame_mse", False)
    for level in sorted(set(errors.level) - {split}):
      mask = errors.level == level
      summary[level] = velocity_probe.summarize(scene, errors.select(mask))
    figures[split] = _write_extremes(out_dir, split, extremes, config.eval.gif_scale)
    logging.info("eval %s: %s", split, summary[split])
  for name, numbers in summary.items():
    if 2 * numbers["count"] < numbers["cases"]:  # most cases have no frame pair that counts
      numbers["warning"] = (
        f"the velocity probe scored only {numbers['count']} of {numbers['cases']} {name} cases "
        "(the others have no generated frame pair that counts); these numbers describe few cases"
      )
      logging.warning("eval %s: %s", name, numbers["warning"])
  plots.error_heatmap(scene, per_case, out_dir / "error_heatmap.png")
  plots.error_vs_velocity(scene, per_case, out_dir / "error_vs_velocity.png")
  sections = {probe.name: probe.finish(out_dir, REPORT_DIR) for probe in active_probes}
  ood_splits = [s for s in config.eval.splits if s.startswith("ood_")]
  probe_numbers = {name: section.numbers for name, section in sections.items()}
  _write_eval_json(workdir, config, step, summary, "id", ood_splits, probes=probe_numbers)
  _write_report(workdir, config, step, summary, figures, list(sections.values()))
  return summary


def _evaluate_templates(
  experiment: train.Experiment, workdir: str, step: int, params: nnx.State, out_dir
) -> dict[str, dict[str, float]]:
  config = experiment.config
  predict = make_predictor(experiment)
  active_probes = probes.make(config.eval.probes, experiment.scene, config)
  summary, per_template, figures = {}, {}, {}
  for split in config.eval.splits:
    scores, extremes, strip = evaluate_combinatorial_split(
      experiment, params, split, predict, active_probes
    )
    outputs.write_png(out_dir / f"{split}_filmstrip.png", strip)
    summary[split] = {
      **scores["model"].summary(),
      "baselines": {name: scores[name].summary() for name in config.eval.baselines},
    }
    summary[split]["beats_copy_last"] = beats_copy_last(summary[split], "psnr_generated", True)
    per_template[split] = scores["model"].per_template()
    figures[split] = _write_extremes(out_dir, split, extremes, config.eval.gif_scale)
    logging.info("eval %s: %s", split, summary[split])
  sections = {probe.name: probe.finish(out_dir, REPORT_DIR) for probe in active_probes}
  _write_eval_json(
    workdir,
    config,
    step,
    summary,
    "in_template",
    ["out_of_template"],
    per_template=per_template,
    probes={name: section.numbers for name, section in sections.items()},
  )
  _write_template_report(workdir, config, step, summary, per_template, figures, sections)
  return summary


def _write_extremes(out_dir, split: str, extremes: _Extremes, scale: int) -> dict:
  """GIFs of the best and worst case, ground truth beside prediction: {kind: (file, score)}."""
  written = {}
  for kind in ("best", "worst"):
    case = getattr(extremes, kind)
    if case is None:
      continue
    score, truth, prediction = case
    name = f"{split}_{kind}.gif"
    outputs.write_gif(out_dir / name, outputs.side_by_side(truth[None], prediction[None], scale))
    written[kind] = (name, score)
  return written


def _write_eval_json(workdir, config, step, summary, id_split, ood_splits, **extra) -> None:
  record = {
    "task": config.task,
    "model_size": config.model.size,
    "dataset_size": config.data.dataset_size,
    "seed": config.seed,
    "step": int(step),
    "resolution": config.video.resolution,
    "splits": summary,
    "id_split": id_split,
    "ood_splits": list(ood_splits),
    **extra,
  }
  outputs.path(workdir, "eval.json").write_text(json.dumps(record, indent=2, allow_nan=True))


def _write_report(workdir, config, step, summary, figures, sections) -> None:
  video = config.video
  lines = [
    f"# {config.task}: DiT-{config.model.size}, data {config.data.dataset_size}, step {step}",
    "",
    f"The model sees the first {video.context_frames} of {video.num_frames} frames "
    f"({video.resolution} x {video.resolution}) and generates the rest in "
    f"{config.eval.sample_steps} sampling steps. Velocity errors are in world units / s: balls "
    "parsed out of the generated frames (colour thresholds, mask centroid), differenced over "
    "frames and compared with the simulator's; the floor is the same scoring of the "
    "ground-truth frames. 'Study's code' reproduces the study's evaluation code "
    "(`velocity_probe`: x only, 8-bit frames, frames from index 3 with the ball in view, "
    "|mean v_x - mean v_x,true|, post-collision pairs for collisions, its small-radius filter "
    "and its renderer's pixel grid; n cases scored): the column comparable with the study's "
    "published numbers (Figure 3 and its ground-truth floors). The other columns are ours, per "
    "ball in 2-D over generated frame pairs with the ball in view (post-contact for "
    "collisions): 'mean abs error' is the paper's formula, the mean over pairs of "
    "|v - v_true|, and 'mean-then-abs' is |mean v - mean v_true|.",
    "",
    *(f"**Warning: {n['warning']}.**\n" for n in summary.values() if "warning" in n),
    "Rows 'split: name' score a baseline on the same cases (`experiments/baselines.py`): "
    "copy_last repeats the last context frame, blank draws the background, extrapolate applies "
    "the scene's law to the state parsed from the context frames. A model row marked "
    f"{NOT_BETTER} does not beat copy_last on the generated frames (frame MSE).",
    "",
    *velocity_probe.table_header(),
    *(velocity_probe.table_row(label, numbers) for label, numbers in _labelled_rows(summary)),
    *_physics_lines(dict(_labelled_rows(summary))),
    "",
    f"![error heat map]({REPORT_DIR}/error_heatmap.png)",
    "",
    f"![error vs velocity]({REPORT_DIR}/error_vs_velocity.png)",
    "",
  ]
  for section in sections:
    lines += section.lines
  lines += _figure_lines(figures, "velocity error", "{:.4f}")
  outputs.path(workdir, "report.md").write_text("\n".join(lines) + "\n")


def _labelled_rows(summary: dict[str, dict]) -> list[tuple[str, dict]]:
  """Report rows per split or level: the model's (marked where it does not beat copy_last),
  then each baseline's, labelled "split: name"."""
  rows = []
  for split, numbers in summary.items():
    marked = numbers.get("beats_copy_last") is False
    rows.append((f"{split} {NOT_BETTER}" if marked else split, numbers))
    rows += [(f"{split}: {name}", scores) for name, scores in numbers.get("baselines", {}).items()]
  return rows


def beats_copy_last(numbers: dict[str, Any], metric: str, higher_is_better: bool) -> bool | None:
  """Whether the model's `metric` on the generated frames beats the copy_last baseline's (None
  without that baseline or metric)."""
  baseline = numbers.get("baselines", {}).get("copy_last", {})
  if metric not in numbers or metric not in baseline:
    return None
  model, copied = numbers[metric], baseline[metric]
  return bool(model > copied if higher_is_better else model < copied)


def _physics_lines(summary: dict[str, dict]) -> list[str]:
  """The physics-consistency table (`physics_probe`), where the splits have one."""
  splits = {split: numbers["physics"] for split, numbers in summary.items() if "physics" in numbers}
  if not splits:
    return []
  laws = [name for name in next(iter(splits.values())) if name.endswith("_floor")]
  laws = [name.removesuffix("_floor") for name in laws]
  lines = [
    "",
    "Physics consistency (`experiments/physics_probe.py`): the simulator's initial state fitted "
    "to each generated video by analysis by synthesis; its RMS pixel residual, the error of its "
    "velocity, the law residuals of the generated video (ground truth's in brackets), and "
    "where the context's speed is out of the training range, how often the generated ball "
    "follows the context's law-abiding continuation rather than the nearest training speed.",
    "",
    "| split | fit residual | fitted velocity error | "
    + " | ".join(f"{name} (floor)" for name in laws)
    + " | follows the guide |",
    "|---|---|---|" + "---|" * len(laws) + "---|",
  ]
  for split, numbers in splits.items():
    residuals = [f"{numbers[name]:.4f} ({numbers[f'{name}_floor']:.4f})" for name in laws]
    follows = numbers.get("follows_guide", float("nan"))
    lines.append(
      f"| {split} | {numbers['fit_residual']:.4f} | {numbers['fit_velocity_error']:.4f} | "
      + " | ".join(residuals)
      + f" | {'-' if np.isnan(follows) else f'{100 * follows:.0f} %'} |"
    )
  return lines


def _figure_lines(figures: dict, score_name: str, score_format: str) -> list[str]:
  """Report sections per split: its filmstrip and its best and worst case GIFs."""
  lines = []
  for split, cases in figures.items():
    lines += [
      "",
      f"## {split}",
      "",
      "The first cases, frames left to right, ground truth above the prediction:",
      "",
      f"![{split} filmstrip]({REPORT_DIR}/{split}_filmstrip.png)",
      "",
      f"Best and worst cases by {score_name}, ground truth (left) beside the prediction (right):",
      "",
    ]
    for kind, (name, score) in cases.items():
      lines += [
        f"{kind} case ({score_name} {score_format.format(score)}):",
        "",
        f"![{split} {kind}]({REPORT_DIR}/{name})",
        "",
      ]
  return lines


def _write_template_report(workdir, config, step, summary, per_template, figures, sections) -> None:
  video = config.video
  label = f"DiT-{config.model.size}, {config.data.dataset_size} templates (ours)"
  if any(numbers.get("beats_copy_last") is False for numbers in summary.values()):
    label += f" {NOT_BETTER}"
  study = combinatorial_probe.study_rows(config.model.size, config.data.dataset_size)
  lines = [
    f"# {config.task}: DiT-{config.model.size}, {config.data.dataset_size} training templates, "
    f"step {step}",
    "",
    f"The model sees the first {video.context_frames} of {video.num_frames} frames "
    f"({video.resolution} x {video.resolution}) and generates the rest in "
    f"{config.eval.sample_steps} sampling steps. In-template cases are training templates with "
    "new red-ball trials; out-of-template cases are the 10 held-out templates (10060-10069). "
    "Each cell is in-template / out-of-template, as in the study's Table 2; PSNR, SSIM and LPIPS "
    "over all frames (the copied context frame included, as the study's code, whose PSNR caps "
    "identical frames at 100 dB, appears to count it) and below over the generated frames. The "
    "study's "
    "row is its 256 x 256 model; FVD depends on the number of videos (the study: 600 / 500).",
    "",
    *combinatorial_probe.table_lines(summary, study, label),
    "",
    "Rollout types as the study's raters judged them (`experiments.rater`): type 1 close to "
    "ground truth, type 2 different but physically plausible, type 3 implausible (the abnormal "
    "rate above, automatic, beside the study's human one), and the share of videos each "
    "plausibility check flags. The red ball follows ground truth where its height stays within "
    f"{combinatorial_probe.RED_FOLLOW_DISTANCE:g} world unit of the true ball's on average over "
    "the generated frames (in brackets the mean height error of the videos that show it). "
    "Rows 'split: name' score a baseline on the same cases "
    "(`experiments/baselines.py`: copy_last repeats the context frame, blank draws the empty "
    f"background); a model row marked {NOT_BETTER} does not beat copy_last on generated-frame "
    "PSNR.",
    "",
    "| split | videos | PSNR (generated frames) | SSIM (generated) | LPIPS (generated) "
    "| red ball follows (height error) "
    "| type 1 | type 2 | type 3 | " + " | ".join(rater.CHECKS).replace("_", " ") + " |",
    "|---|---|---|---|---|---|---|---|---|" + "---|" * len(rater.CHECKS),
  ]
  for label, numbers in _labelled_rows(summary):
    generated = [
      f"{numbers[f'{name}_generated']:.3f}" if f"{name}_generated" in numbers else "-"
      for name in combinatorial_probe.FRAME_METRICS
    ]
    follows = f"{100 * numbers['red_follows_rate']:.0f}% ({numbers['red_height_error']:.2f})"
    names = [f"type{kind}" for kind in rater.TYPES] + list(rater.CHECKS)
    rates = [f"{100 * numbers[f'{name}_rate']:.0f}%" for name in names]
    cells = [*generated, follows, *rates]
    lines.append(f"| {label} | {numbers['cases']} | " + " | ".join(cells) + " |")
  lines += ["", "Per template:", "", "| split | template | kinds | videos | type 3 | PSNR |"]
  lines.append("|---|---|---|---|---|---|")
  for split, table in per_template.items():
    for template, numbers in table.items():
      kinds = ", ".join(sims.phyre.TEMPLATE_KINDS[template])
      psnr = f"{numbers['psnr']:.2f}" if "psnr" in numbers else "-"
      lines.append(
        f"| {split} | {template} | {kinds} | {numbers['cases']} "
        f"| {100 * numbers['type3_rate']:.0f}% | {psnr} |"
      )
  for section in sections.values():
    lines += ["", *section.lines]
  lines += _figure_lines(figures, "generated-frame MSE", "{:.5f}")
  outputs.path(workdir, "report.md").write_text("\n".join(lines) + "\n")
