#!/usr/bin/env bash
# Train on every GPU of one machine: one process drives all of them, the batch and (with
# --config.mesh.fsdp=N) the parameters sharded across the GPUs.
#
#   launch/multi_gpu.sh --config=experiments/configs/collision.py:size=B,data=3M \
#       --workdir=/data/runs/collision_B_3M --config.mesh.fsdp=2
#
# Settings (environment): GPUS, the number of GPUs to use (default: all that nvidia-smi lists;
# sets CUDA_VISIBLE_DEVICES); PYTHON (default .venv/bin/python, created with jax[cuda12] when
# missing). SIGTERM (or Ctrl-C) saves a checkpoint; rerunning the command resumes.
set -euo pipefail
cd "$(dirname "$0")/.."

die() {
  echo "error: $*" >&2
  exit 2
}

command -v nvidia-smi > /dev/null || die "nvidia-smi not found: no NVIDIA driver on this machine"
available=$(nvidia-smi --list-gpus | wc -l)
((available > 0)) || die "nvidia-smi lists no GPUs"
gpus=${GPUS:-$available}
[[ "$gpus" =~ ^[1-9][0-9]*$ ]] || die "GPUS=$gpus must be a positive integer"
((gpus <= available)) || die "GPUS=$gpus but this machine has $available"
(($# > 0)) || die "pass experiments.main flags, e.g. --config=... --workdir=..."
for arg in "$@"; do
  [[ "$arg" == --workdir=* ]] && has_workdir=1
done
[[ -n "${has_workdir:-}" ]] || die "pass --workdir=DIR for checkpoints, metrics and the report"

if [[ -z "${PYTHON:-}" ]]; then
  PYTHON=.venv/bin/python
  if [[ ! -f .venv/.installed-cuda ]]; then
    python3 -m venv .venv
    .venv/bin/pip install --quiet --upgrade pip
    .venv/bin/pip install --quiet -e ".[all,cuda]"
    touch .venv/.installed-cuda
  fi
fi

export CUDA_VISIBLE_DEVICES=${CUDA_VISIBLE_DEVICES:-$(seq -s, 0 $((gpus - 1)))}
# Let XLA take most of each GPU's memory up front (the default is 75 %).
export XLA_PYTHON_CLIENT_MEM_FRACTION=${XLA_PYTHON_CLIENT_MEM_FRACTION:-0.9}
echo "training on GPUs $CUDA_VISIBLE_DEVICES"
exec "$PYTHON" -m experiments.main "$@"
