#!/usr/bin/env bash
# Train on a Cloud TPU VM slice (a pod slice: one process per host, all running one command).
#
#   export PROJECT=my-project ZONE=us-east5-a ACCELERATOR_TYPE=v5p-32 BUCKET=gs://my-bucket
#   launch/tpu_pod.sh create                      # the slice (QUEUED=1: a queued resource)
#   launch/tpu_pod.sh copy                        # this checkout to every worker, installed
#   launch/tpu_pod.sh run --config=experiments/configs/collision.py:size=B,data=3M
#   launch/tpu_pod.sh logs                        # stream worker 0's log (WORKER=3 for another)
#   launch/tpu_pod.sh stop                        # SIGTERM: every host saves and exits
#   launch/tpu_pod.sh delete
#   launch/tpu_pod.sh all --config=...            # create, copy, run, logs
#
# Settings (environment): PROJECT, ZONE, ACCELERATOR_TYPE and BUCKET are required; TPU_NAME
# (default physworld), RUNTIME_VERSION (default: the image for the accelerator generation),
# RUN_NAME (default TPU_NAME; the workdir is BUCKET/RUN_NAME), QUEUED=1, SPOT=1, WORKER,
# NUM_SLICES (default 1), SLICE (the slice whose log `logs` streams, default 0), STOP_TIMEOUT
# (seconds `stop` waits for the trainers to save and exit, default 600).
# NUM_SLICES=N > 1 requests N slices of ACCELERATOR_TYPE as one queued resource (multi-slice:
# nodes TPU_NAME-0 ... TPU_NAME-(N-1)); every command then acts on every worker of every slice.
# `run` starts `python -m experiments.main --distributed --workdir=BUCKET/RUN_NAME ARGS` on every
# worker in the background and records its process id; `stop` sends that process SIGTERM and
# waits until it has exited. Rerunning `run` after a preemption resumes from the last checkpoint.
# `copy` replaces the checkout on the workers but keeps their installed .venv (reinstalled only
# when pyproject.toml changes) and the last run's log and process id.
set -euo pipefail

usage() {
  awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"
  exit "${1:-0}"
}

die() {
  echo "error: $*" >&2
  exit 2
}

require() {
  local missing=()
  for name in "$@"; do
    [[ -n "${!name:-}" ]] || missing+=("$name")
  done
  ((${#missing[@]} == 0)) || die "set ${missing[*]} (see launch/tpu_pod.sh --help)"
  return 0
}

TPU_NAME=${TPU_NAME:-physworld}
RUN_NAME=${RUN_NAME:-$TPU_NAME}
NUM_SLICES=${NUM_SLICES:-1}
REMOTE_DIR=physworld
[[ "$NUM_SLICES" =~ ^[1-9][0-9]*$ ]] || die "NUM_SLICES=$NUM_SLICES must be a positive integer"

runtime_version() {
  if [[ -n "${RUNTIME_VERSION:-}" ]]; then
    echo "$RUNTIME_VERSION"
    return
  fi
  case "$ACCELERATOR_TYPE" in
    v4-*) echo tpu-ubuntu2204-base ;;
    v5litepod-* | v5e-*) echo v2-alpha-tpuv5-lite ;;
    v5p-*) echo v2-alpha-tpuv5 ;;
    v6e-*) echo v2-alpha-tpuv6e ;;
    *) die "no default RUNTIME_VERSION for ACCELERATOR_TYPE=$ACCELERATOR_TYPE; set RUNTIME_VERSION" ;;
  esac
}

tpu() {
  gcloud compute tpus "$@" --project="$PROJECT" --zone="$ZONE"
}

# The TPU VM nodes: one per slice.
nodes() {
  if ((NUM_SLICES == 1)); then
    echo "$TPU_NAME"
  else
    seq -f "$TPU_NAME-%g" 0 $((NUM_SLICES - 1))
  fi
}

# Multi-slice capacity exists only as a queued resource.
queued() {
  [[ "${QUEUED:-0}" == 1 ]] || ((NUM_SLICES > 1))
}

# Runs `gcloud compute tpus tpu-vm SUBCOMMAND NODE ARGS` for every node at once; fails if any does.
on_nodes() {
  local subcommand=$1 node pids=() status=0
  shift
  for node in $(nodes); do
    tpu tpu-vm "$subcommand" "${@//@NODE@/$node}" &
    pids+=($!)
  done
  for pid in "${pids[@]}"; do
    wait "$pid" || status=$?
  done
  return "$status"
}

# Runs shell command $2 on workers $1 ("all" or an index) of every node.
on_workers() {
  on_nodes ssh @NODE@ --worker="$1" --command="$2"
}

create() {
  require PROJECT ZONE ACCELERATOR_TYPE
  local version spot=()
  version=$(runtime_version)
  [[ "${SPOT:-0}" == 1 ]] && spot=(--spot)
  if queued; then
    local nodes=(--node-id="$TPU_NAME")
    ((NUM_SLICES > 1)) && nodes=(--node-count="$NUM_SLICES" --node-prefix="$TPU_NAME")
    tpu queued-resources create "$TPU_NAME" "${nodes[@]}" \
      --accelerator-type="$ACCELERATOR_TYPE" --runtime-version="$version" "${spot[@]}"
    echo "waiting for queued resource $TPU_NAME to become ACTIVE"
    local state=""
    until [[ "$state" == ACTIVE ]]; do
      state=$(tpu queued-resources describe "$TPU_NAME" --format='value(state.state)')
      case "$state" in
        FAILED | SUSPENDED) die "queued resource $TPU_NAME is $state" ;;
        ACTIVE) ;;
        *) sleep 30 ;;
      esac
    done
  else
    tpu tpu-vm create "$TPU_NAME" --accelerator-type="$ACCELERATOR_TYPE" --version="$version" \
      "${spot[@]}"
  fi
}

# The NUL-separated paths of stdin that exist (git lists deleted tracked files too).
existing() {
  local path
  while IFS= read -r -d '' path; do
    [[ -e "$path" ]] && printf '%s\0' "$path"
  done
  return 0
}

copy() {
  require PROJECT ZONE
  local root archive
  root=$(cd "$(dirname "$0")/.." && pwd)
  archive=$(mktemp --suffix=.tar.gz)
  # Tracked and untracked files that exist, not what .gitignore excludes (virtual environments,
  # workdirs).
  (cd "$root" && git ls-files -co --exclude-standard -z | existing | tar -czf "$archive" --null -T -)
  on_nodes scp "$archive" "@NODE@:physworld.tar.gz" --worker=all
  rm -f "$archive"
  on_workers all "dir=$REMOTE_DIR; $REPLACE_CHECKOUT"
}

# Remote: replaces the checkout in $dir by physworld.tar.gz, keeping the installed environment.
REPLACE_CHECKOUT='mkdir -p "$dir" &&
find "$dir" -mindepth 1 -maxdepth 1 ! -name .venv ! -name run.log ! -name run.pid \
  -exec rm -rf {} + &&
tar -xzf physworld.tar.gz -C "$dir" && rm physworld.tar.gz &&
bash "$dir/launch/worker.sh" --install-only'

run() {
  require PROJECT ZONE BUCKET
  [[ "$BUCKET" == gs://* ]] || die "BUCKET=$BUCKET must be a gs:// URL that every worker can write"
  (($# > 0)) || die "run needs experiments.main flags, e.g. --config=experiments/configs/collision.py"
  local arg quoted=""
  for arg in "$@"; do
    [[ "$arg" == --workdir=* ]] && die "the workdir is BUCKET/RUN_NAME; set RUN_NAME instead of $arg"
    quoted+=" $(printf '%q' "$arg")"
  done
  local workdir="${BUCKET%/}/$RUN_NAME"
  echo "workdir: $workdir"
  on_workers all "cd $REMOTE_DIR || exit 1
nohup bash launch/worker.sh --workdir=$workdir$quoted > run.log 2>&1 < /dev/null &
echo \$! > run.pid"
}

logs() {
  require PROJECT ZONE
  local slice=${SLICE:-0}
  [[ "$slice" =~ ^[0-9]+$ ]] && ((slice < NUM_SLICES)) ||
    die "SLICE=$slice must be a slice index below NUM_SLICES=$NUM_SLICES"
  local node
  node=$(nodes | sed -n "$((slice + 1))p")
  tpu tpu-vm ssh "$node" --worker="${WORKER:-0}" --command="tail -n +1 -F $REMOTE_DIR/run.log"
}

stop() {
  require PROJECT ZONE
  local timeout=${STOP_TIMEOUT:-600}
  [[ "$timeout" =~ ^[1-9][0-9]*$ ]] || die "STOP_TIMEOUT=$timeout must be a positive integer (s)"
  on_workers all "dir=$REMOTE_DIR timeout=$timeout; $STOP_TRAINER"
}

# Remote: SIGTERM to the trainer that `run` started (its id in $dir/run.pid), then waits up to
# $timeout seconds for it to save and exit. No process-name pattern: this shell's own command
# line holds any such pattern.
STOP_TRAINER='pid=$(cat "$dir/run.pid" 2> /dev/null) && kill -TERM "$pid" 2> /dev/null ||
  { echo "$(hostname): no trainer running"; exit 0; }
for _ in $(seq "$timeout"); do
  kill -0 "$pid" 2> /dev/null || { echo "$(hostname): trainer stopped"; exit 0; }
  sleep 1
done
echo "$(hostname): trainer $pid still running after $timeout s" >&2
exit 1'

delete() {
  require PROJECT ZONE
  if queued; then
    tpu queued-resources delete "$TPU_NAME" --force --quiet
  else
    tpu tpu-vm delete "$TPU_NAME" --quiet
  fi
}

command=${1:-}
(($# > 0)) && shift
case "$command" in
  create) create ;;
  copy) copy ;;
  run) run "$@" ;;
  logs) logs ;;
  stop) stop ;;
  delete) delete ;;
  all)
    require PROJECT ZONE ACCELERATOR_TYPE BUCKET
    create
    copy
    run "$@"
    logs
    ;;
  -h | --help | help) usage 0 ;;
  "") usage 2 ;;
  *) die "unknown command '$command'; valid: create, copy, run, logs, stop, delete, all" ;;
esac
