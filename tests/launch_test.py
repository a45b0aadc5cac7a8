"""The launch scripts, run against stand-ins for gcloud, nvidia-smi and Python."""

import os
import shutil
import stat
import subprocess

import pytest
import runs

LAUNCH = os.path.join(runs.ROOT, "launch")
SETTINGS = {
  "PROJECT": "proj",
  "ZONE": "us-east5-a",
  "ACCELERATOR_TYPE": "v5p-32",
  "BUCKET": "gs://bucket",
}


def stand_in(folder, name, body):
  """An executable `name` in `folder` that logs its arguments to calls.log and runs `body`."""
  path = folder / name
  path.write_text(f'#!/usr/bin/env bash\necho "{name} $*" >> "{folder}/calls.log"\n{body}\n')
  path.chmod(path.stat().st_mode | stat.S_IEXEC)
  return path


def run_script(script, *args, env, folder):
  environment = {"PATH": f"{folder}:/usr/bin:/bin", "HOME": str(folder), **env}
  return subprocess.run(
    ["bash", os.path.join(LAUNCH, script), *args],
    env=environment,
    capture_output=True,
    text=True,
    timeout=60,
  )


def calls(folder):
  path = folder / "calls.log"
  return path.read_text().splitlines() if path.exists() else []


@pytest.mark.parametrize(
  ("command", "missing"),
  [
    ("create", "PROJECT ZONE ACCELERATOR_TYPE"),
    ("copy", "PROJECT ZONE"),
    ("run", "PROJECT ZONE BUCKET"),
    ("all", "PROJECT ZONE ACCELERATOR_TYPE BUCKET"),
    ("delete", "PROJECT ZONE"),
  ],
)
def test_tpu_pod_refuses_to_run_without_its_settings(tmp_path, command, missing):
  stand_in(tmp_path, "gcloud", "")
  result = run_script("tpu_pod.sh", command, "--config=x.py", env={}, folder=tmp_path)
  assert result.returncode == 2
  assert result.stderr.strip() == f"error: set {missing} (see launch/tpu_pod.sh --help)"
  assert calls(tmp_path) == []  # nothing was created or touched


def test_tpu_pod_all_creates_copies_runs_everywhere_and_streams_logs(tmp_path):
  stand_in(tmp_path, "gcloud", "")
  result = run_script(
    "tpu_pod.sh",
    "all",
    "--config=experiments/configs/collision.py:size=B,data=3M",
    "--config.mesh.fsdp=4",
    env={**SETTINGS, "RUN_NAME": "collision_B"},
    folder=tmp_path,
  )
  assert result.returncode == 0, result.stderr
  create, scp, install, start, logs = calls(tmp_path)
  flags = "--project=proj --zone=us-east5-a"
  assert create == (
    f"gcloud compute tpus tpu-vm create physworld --accelerator-type=v5p-32 "
    f"--version=v2-alpha-tpuv5 {flags}"
  )
  assert scp.startswith("gcloud compute tpus tpu-vm scp ") and "--worker=all" in scp
  assert "--worker=all" in install and "launch/worker.sh --install-only" in install
  assert "--worker=all" in start
  assert (
    "nohup bash launch/worker.sh --workdir=gs://bucket/collision_B "
    "--config=experiments/configs/collision.py:size=B\\,data=3M --config.mesh.fsdp=4" in start
  )
  assert "--worker=0" in logs and "tail -n +1 -F physworld/run.log" in logs


def test_tpu_pod_queued_resources_and_bad_settings(tmp_path):
  stand_in(tmp_path, "gcloud", 'case "$*" in *describe*) echo ACTIVE;; esac')
  settings = {**SETTINGS, "QUEUED": "1", "SPOT": "1", "ACCELERATOR_TYPE": "v5litepod-16"}
  assert run_script("tpu_pod.sh", "create", env=settings, folder=tmp_path).returncode == 0
  assert run_script("tpu_pod.sh", "delete", env=settings, folder=tmp_path).returncode == 0
  create, describe, delete = calls(tmp_path)
  assert create.startswith("gcloud compute tpus queued-resources create physworld ")
  assert "--runtime-version=v2-alpha-tpuv5-lite --spot" in create
  assert "queued-resources describe physworld" in describe
  assert delete.startswith("gcloud compute tpus queued-resources delete physworld --force")

  def error(*args, **env):
    result = run_script("tpu_pod.sh", *args, env={**SETTINGS, **env}, folder=tmp_path)
    assert result.returncode == 2
    return result.stderr.strip()

  assert error("run", "--config=x.py", BUCKET="/local/dir") == (
    "error: BUCKET=/local/dir must be a gs:// URL that every worker can write"
  )
  assert "set RUN_NAME instead of --workdir=/tmp/x" in error("run", "--workdir=/tmp/x")
  assert "run needs experiments.main flags" in error("run")
  assert "no default RUNTIME_VERSION for ACCELERATOR_TYPE=tpu9" in error(
    "create", ACCELERATOR_TYPE="tpu9"
  )
  assert error("launch") == (
    "error: unknown command 'launch'; valid: create, copy, run, logs, stop, delete, all"
  )


def test_worker_runs_the_job_as_one_host_of_many(tmp_path):
  shutil.copytree(LAUNCH, tmp_path / "launch")
  (tmp_path / ".venv" / "bin").mkdir(parents=True)
  (tmp_path / ".venv" / ".installed-tpu").touch()
  stand_in(tmp_path / ".venv" / "bin", "python", 'echo "distributed=$PHYSWORLD_DISTRIBUTED"')
  result = subprocess.run(
    ["bash", str(tmp_path / "launch" / "worker.sh"), "--workdir=gs://b/r", "--config=c.py"],
    capture_output=True,
    text=True,
    timeout=60,
  )
  assert result.returncode == 0, result.stderr
  assert result.stdout.strip() == "distributed=1"
  assert calls(tmp_path / ".venv" / "bin") == [
    "python -m experiments.main --workdir=gs://b/r --config=c.py"
  ]


def test_multi_gpu_uses_every_gpu_or_refuses_clearly(tmp_path):
  stand_in(tmp_path, "nvidia-smi", 'echo "GPU 0: H100"; echo "GPU 1: H100"')
  stand_in(tmp_path, "python", 'echo "gpus=$CUDA_VISIBLE_DEVICES"')
  flags = ("--config=experiments/configs/collision.py", "--workdir=/tmp/run")
  python = {"PYTHON": str(tmp_path / "python")}
  result = run_script("multi_gpu.sh", *flags, env=python, folder=tmp_path)
  assert result.returncode == 0, result.stderr
  assert result.stdout.strip().splitlines()[-1] == "gpus=0,1"
  assert calls(tmp_path)[-1] == f"python -m experiments.main {' '.join(flags)}"

  def error(*args, **env):
    result = run_script("multi_gpu.sh", *args, env={**python, **env}, folder=tmp_path)
    assert result.returncode == 2
    return result.stderr.strip()

  assert error(*flags, GPUS="3") == "error: GPUS=3 but this machine has 2"
  assert error(flags[0]) == "error: pass --workdir=DIR for checkpoints, metrics and the report"
  (tmp_path / "nvidia-smi").unlink()
  assert error(*flags).startswith("error: nvidia-smi not found")
