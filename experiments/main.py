"""Entry point: train, evaluate or both, from an ml_collections config file.

    python -m experiments.main --config=experiments/configs/quickstart.py --workdir=/tmp/qs
    python -m experiments.main --config=experiments/configs/collision.py:size=B,data=300K \
        --workdir=/tmp/collision --config.batch_size=128
    python -m experiments.main --config=... --workdir=/tmp/qs --mode=evaluate
    python -m experiments.main --mode=compare --workdir=/tmp/scaling --runs='/tmp/runs/*'
    python -m experiments.main --config=... --mode=write_eval_set --workdir=/data/eval
    python -m experiments.main --config=... --workdir=/tmp/qs --mode=evaluate \
        --config.eval.dataset=/data/eval/uniform_motion_eval_32px
    python -m experiments.main --config=experiments/configs/collision.py --mode=import_hdf5 \
        --hdf5=collision_eval.hdf5 --workdir=/data/eval   # the study's released eval file

Multi-host (a TPU pod, or GPU nodes): run the same command on every host with --distributed (or
PHYSWORLD_DISTRIBUTED=1), which calls jax.distributed.initialize() before anything else; on Cloud
TPU, Slurm and GKE it finds the other hosts itself, elsewhere pass --coordinator_address,
--num_processes and --process_id. The workdir must be storage that every host sees (gs://...).
"""

from __future__ import annotations

import logging as py_logging
import os
import sys

from absl import app, flags, logging
from ml_collections import config_flags

MODES = ("train", "train_and_evaluate", "evaluate", "compare", "write_eval_set", "import_hdf5")

_CONFIG = config_flags.DEFINE_config_file("config", None, "Config file.", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints, metrics and reports.")
_MODE = flags.DEFINE_enum("mode", "train_and_evaluate", MODES, "What to run.")
_RUNS = flags.DEFINE_string(
  "runs", None, "With --mode=compare: comma-separated run workdirs or glob patterns."
)
_HDF5 = flags.DEFINE_string(
  "hdf5", None, "With --mode=import_hdf5: one of the study's HDF5 eval files to convert."
)
_DISTRIBUTED = flags.DEFINE_bool(
  "distributed",
  os.environ.get("PHYSWORLD_DISTRIBUTED") == "1",
  "Multi-host run: call jax.distributed.initialize() first (default: $PHYSWORLD_DISTRIBUTED=1).",
)
_COORDINATOR = flags.DEFINE_string(
  "coordinator_address", None, "With --distributed: host:port of process 0, where not automatic."
)
_NUM_PROCESSES = flags.DEFINE_integer(
  "num_processes", None, "With --distributed: number of processes, where not automatic."
)
_PROCESS_ID = flags.DEFINE_integer(
  "process_id", None, "With --distributed: this process's index, where not automatic."
)
flags.mark_flags_as_required(["workdir"])


class _QuietLibraries(py_logging.Filter):
  """Drops INFO records of the checkpointing library, which logs every file it touches."""

  def filter(self, record: py_logging.LogRecord) -> bool:
    return record.levelno >= py_logging.WARNING or "/orbax/" not in record.pathname


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  logging.get_absl_handler().addFilter(_QuietLibraries())
  _start_processes()
  # Imported here so that --helpfull and flag errors stay fast.
  from experiments import evaluate, outputs, train

  config, workdir = _CONFIG.value, _WORKDIR.value
  if _MODE.value == "compare":
    from experiments import compare

    if not _RUNS.value:
      sys.exit("error: --mode=compare needs --runs=DIR1,DIR2,... (globs allowed)")
    print(f"comparison: {', '.join(compare.run(_RUNS.value, workdir))}")
    return
  if config is None:
    sys.exit(f"error: --mode={_MODE.value} needs --config=experiments/configs/<name>.py")
  if _MODE.value == "write_eval_set":
    print(f"eval set: {evaluate.write_eval_set(config, workdir)}")
    return
  if _MODE.value == "import_hdf5":
    if not _HDF5.value or not os.path.isfile(_HDF5.value):
      sys.exit(f"error: --hdf5={_HDF5.value!r} is not a file; name the study's HDF5 eval file")
    print(f"eval set: {evaluate.import_phyworld_hdf5(config, _HDF5.value, workdir)}")
    return
  if _MODE.value == "evaluate" and not outputs.path(workdir).is_dir():
    sys.exit(f"error: workdir {workdir!r} does not exist; train there first (--mode=train)")
  if _MODE.value != "evaluate":
    state = train.run(config, workdir)
    if int(state["step"]) < config.num_steps:
      return  # stopped early (SIGTERM); the rerun resumes and evaluates
  if _MODE.value != "train":
    results = evaluate.run(config, workdir)
    logging.info("report: %s", os.path.join(workdir, "report.md"))
    for split, numbers in results.items():
      print(f"{split}: {numbers}")


def _start_processes() -> None:
  """Joins the multi-host job when asked to; only process 0 logs below warnings."""
  import jax

  manual = {
    "coordinator_address": _COORDINATOR.value,
    "num_processes": _NUM_PROCESSES.value,
    "process_id": _PROCESS_ID.value,
  }
  if not _DISTRIBUTED.value:
    given = [name for name, value in manual.items() if value is not None]
    if given:
      sys.exit(f"error: --{given[0]} needs --distributed")
    return
  jax.distributed.initialize(**{k: v for k, v in manual.items() if v is not None})
  if jax.process_index() != 0:
    logging.set_verbosity(logging.WARNING)
  logging.info("process %d of %d", jax.process_index(), jax.process_count())


if __name__ == "__main__":
  app.run(main)
