#!/usr/bin/env bash
# Runs on every TPU VM worker: installs the project (a virtual environment with jax[tpu]) where
# .venv was not installed from this pyproject.toml, then starts this host's process of the
# multi-host job.
#
#   bash launch/worker.sh --install-only
#   bash launch/worker.sh --workdir=gs://bucket/run --config=experiments/configs/collision.py
#
# TPU VM images ship Python 3.10; where no python3.11 or python3.12 is found, uv installs 3.12.
set -euo pipefail
cd "$(dirname "$0")/.."

install() {
  local fingerprint
  fingerprint=$(sha256sum pyproject.toml | cut -d ' ' -f 1)
  [[ "$(cat .venv/.installed-tpu 2> /dev/null)" == "$fingerprint" ]] && return
  local python
  python=$(command -v python3.12 || command -v python3.11 || true)
  if [[ -z "$python" ]]; then
    python3 -m pip install --user --quiet uv
    "$HOME/.local/bin/uv" python install 3.12
    python=$("$HOME/.local/bin/uv" python find 3.12)
  fi
  "$python" -m venv .venv
  .venv/bin/pip install --quiet --upgrade pip
  .venv/bin/pip install --quiet -e ".[all,tpu]"
  echo "$fingerprint" > .venv/.installed-tpu
}

install
[[ "${1:-}" == --install-only ]] && exit 0
export PHYSWORLD_DISTRIBUTED=1
exec .venv/bin/python -m experiments.main "$@"
