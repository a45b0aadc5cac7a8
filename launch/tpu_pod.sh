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
# RUN_NAME (default TPU_NAME; the workdir is BUCKET/RUN_NAME), QUEUED=1, SPOT=1, WORKER.
# `run` starts `python -m experiments.main --distributed --workdir=BUCKET/RUN_NAME ARGS` on every
# worker in the background; rerunning it after a preemption resumes from the last checkpoint.
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
REMOTE_DIR=physworld

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

on_workers() {
  tpu tpu-vm ssh "$TPU_NAME" --worker="${1}" --command="$2"
}

create() {
  require PROJECT ZONE ACCELERATOR_TYPE
  local version spot=()
  version=$(runtime_version)
  [[ "${SPOT:-0}" == 1 ]] && spot=(--spot)
  if [[ "${QUEUED:-0}" == 1 ]]; then
    tpu queued-resources create "$TPU_NAME" --node-id="$TPU_NAME" \
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

copy() {
  require PROJECT ZONE
  local root archive
  root=$(cd "$(dirname "$0")/.." && pwd)
  archive=$(mktemp --suffix=.tar.gz)
  # Tracked and untracked files, not what .gitignore excludes (virtual environments, workdirs).
  (cd "$root" && git ls-files -co --exclude-standard -z | tar -czf "$archive" --null -T -)
  tpu tpu-vm scp "$archive" "$TPU_NAME:physworld.tar.gz" --worker=all
  rm -f "$archive"
  on_workers all "rm -rf $REMOTE_DIR && mkdir -p $REMOTE_DIR && tar -xzf physworld.tar.gz -C \
$REMOTE_DIR && bash $REMOTE_DIR/launch/worker.sh --install-only"
}

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
  on_workers all "cd $REMOTE_DIR && nohup bash launch/worker.sh --workdir=$workdir$quoted \
> run.log 2>&1 < /dev/null &"
}

logs() {
  require PROJECT ZONE
  on_workers "${WORKER:-0}" "tail -n +1 -F $REMOTE_DIR/run.log"
}

stop() {
  require PROJECT ZONE
  on_workers all "pkill -TERM -f 'experiments.main' || true"
}

delete() {
  require PROJECT ZONE
  if [[ "${QUEUED:-0}" == 1 ]]; then
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
