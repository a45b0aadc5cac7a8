"""The launch scripts, run against stand-ins for gcloud, nvidia-smi and Python."""

import hashlib
import os
import shutil
import stat
import subprocess
import time

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
  """An executable `name` in `folder` that logs its arguments to calls.log (one line per call,
  newlines in arguments written as \\n) and runs `body`."""
  path = folder / name
  log = f'nl=$\'\\n\'; args="$*"; echo "{name} ${{args//$nl/\\\\n}}" >> "{folder}/calls.log"'
  path.write_text(f"#!/usr/bin/env bash\n{log}\n{body}\n")
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


# gcloud as if every TPU VM worker were this machine, with its home in $HOME: `ssh` runs the
# command in a login shell there, `scp` copies the file there.
GCLOUD_ON_THIS_MACHINE = """
for arg in "$@"; do
  case "$arg" in --command=*) command=${arg#--command=} ;; esac
done
case "$4" in
  ssh) cd "$HOME" && exec bash -c "$command" ;;
  scp) cp "$5" "$HOME/${6#*:}" ;;
esac
"""


def calls(folder):
  path = folder / "calls.log"
  return path.read_text().splitlines() if path.exists() else []


def sha256(path) -> str:
  return hashlib.sha256(path.read_bytes()).hexdigest()


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
  assert "--worker=all" in install and 'launch/worker.sh" --install-only' in install
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
  assert (
    error("stop", STOP_TIMEOUT="soon") == "error: STOP_TIMEOUT=soon must be a positive integer (s)"
  )
  assert "no default RUNTIME_VERSION for ACCELERATOR_TYPE=tpu9" in error(
    "create", ACCELERATOR_TYPE="tpu9"
  )
  assert error("launch") == (
    "error: unknown command 'launch'; valid: create, copy, run, logs, stop, delete, all"
  )


# A trainer that, like experiments.main, saves and exits on SIGTERM (IGNORE_TERM=1: never exits).
FAKE_TRAINER = """
if [[ "${IGNORE_TERM:-0}" == 1 ]]; then trap '' TERM; else trap 'echo "$*" > saved; exit 0' TERM; fi
touch started
while true; do sleep 0.1; done
"""


def start_fake_trainer(folder, **env) -> int:
  """`tpu_pod.sh run` on a worker that is this machine, with FAKE_TRAINER as its worker.sh;
  returns the trainer's process id once it handles signals."""
  checkout = folder / "physworld"
  (checkout / "launch").mkdir(parents=True, exist_ok=True)
  (checkout / "launch" / "worker.sh").write_text(FAKE_TRAINER)
  result = run_script("tpu_pod.sh", "run", "--config=c.py", env={**SETTINGS, **env}, folder=folder)
  assert result.returncode == 0, result.stderr
  deadline = time.time() + 30
  while not (checkout / "started").exists():
    assert time.time() < deadline, "the trainer did not start"
    time.sleep(0.05)
  return int((checkout / "run.pid").read_text())


def running(pid: int) -> bool:
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  return True


def test_tpu_pod_stop_terminates_the_trainer_and_reports_success(tmp_path):
  # The stand-in runs each worker command in `bash -c COMMAND`, as ssh does: a stop that matched
  # trainers by name would match that shell's command line too and kill itself (exit 143).
  stand_in(tmp_path, "gcloud", GCLOUD_ON_THIS_MACHINE)
  pid = start_fake_trainer(tmp_path)
  result = run_script("tpu_pod.sh", "stop", env=SETTINGS, folder=tmp_path)
  assert result.returncode == 0, result.stderr
  assert result.stdout.strip() == f"{os.uname().nodename}: trainer stopped"
  # The trainer got SIGTERM (its handler saved) and has exited.
  assert (tmp_path / "physworld" / "saved").read_text() == (
    "--workdir=gs://bucket/physworld --config=c.py\n"
  )
  assert not running(pid)
  again = run_script("tpu_pod.sh", "stop", env=SETTINGS, folder=tmp_path)
  assert again.returncode == 0, again.stderr
  assert again.stdout.strip() == f"{os.uname().nodename}: no trainer running"


def test_tpu_pod_stop_fails_when_the_trainer_outlives_the_timeout(tmp_path):
  stand_in(tmp_path, "gcloud", GCLOUD_ON_THIS_MACHINE)
  pid = start_fake_trainer(tmp_path, IGNORE_TERM="1")
  try:
    result = run_script(
      "tpu_pod.sh", "stop", env={**SETTINGS, "STOP_TIMEOUT": "1"}, folder=tmp_path
    )
    assert result.returncode == 1
    assert result.stderr.strip() == (
      f"{os.uname().nodename}: trainer {pid} still running after 1 s"
    )
    assert running(pid)
  finally:
    os.kill(pid, 9)


def local_checkout(folder):
  """A git checkout in `folder` with the launch scripts: a committed file, one committed and then
  deleted, an untracked one and an ignored one."""
  folder.mkdir()
  shutil.copytree(LAUNCH, folder / "launch", ignore=shutil.ignore_patterns("__pycache__"))
  for name in ("pyproject.toml", "kept.py", "deleted.py", "untracked.py", "ignored.py"):
    (folder / name).write_text(f"# {name}\n")
  (folder / ".gitignore").write_text("ignored.py\n")

  def git(*args):
    subprocess.run(["git", "-C", str(folder), *args], check=True, capture_output=True)

  git("init", "-q")
  git("add", "launch", "pyproject.toml", "kept.py", "deleted.py", ".gitignore")
  git("-c", "user.name=test", "-c", "user.email=test@example.com", "commit", "-q", "-m", "files")
  (folder / "deleted.py").unlink()


def test_tpu_pod_copy_replaces_the_checkout_and_keeps_the_installed_environment(tmp_path):
  stand_in(tmp_path, "gcloud", GCLOUD_ON_THIS_MACHINE)
  for python in ("python3", "python3.11", "python3.12"):  # an install would call one: it fails
    stand_in(tmp_path, python, "exit 1")
  local = tmp_path / "local"
  local_checkout(local)
  worker = tmp_path / "physworld"  # the checkout on the worker, installed before
  (worker / ".venv").mkdir(parents=True)
  installed = sha256(local / "pyproject.toml") + "\n"
  (worker / ".venv" / ".installed-tpu").write_text(installed)
  (worker / "run.pid").write_text("123\n")
  (worker / "removed_since.py").write_text("")
  environment = {"PATH": f"{tmp_path}:/usr/bin:/bin", "HOME": str(tmp_path), **SETTINGS}
  result = subprocess.run(
    ["bash", str(local / "launch" / "tpu_pod.sh"), "copy"],
    env=environment,
    capture_output=True,
    text=True,
    timeout=60,
  )
  assert result.returncode == 0, result.stderr
  # The installed environment and the last run's process id stay; pyproject.toml is unchanged,
  # so worker.sh installs nothing.
  assert (worker / ".venv" / ".installed-tpu").read_text() == installed
  assert not [line for line in calls(tmp_path) if line.startswith("python")]
  assert (worker / "run.pid").read_text() == "123\n"
  # Tracked and untracked files that exist, not the ignored or deleted ones, replace the old.
  assert {path.name for path in worker.iterdir()} == {
    ".gitignore",
    ".venv",
    "kept.py",
    "launch",
    "pyproject.toml",
    "run.pid",
    "untracked.py",
  }
  script = local / "launch" / "tpu_pod.sh"
  assert (worker / "launch" / "tpu_pod.sh").read_bytes() == script.read_bytes()
  assert not (tmp_path / "physworld.tar.gz").exists()


def test_tpu_pod_multi_slice_queues_one_resource_and_acts_on_every_slice(tmp_path):
  stand_in(tmp_path, "gcloud", 'case "$*" in *describe*) echo ACTIVE;; esac')
  settings = {**SETTINGS, "NUM_SLICES": "2"}
  for command in (["create"], ["run", "--config=c.py"], ["stop"], ["logs"], ["delete"]):
    result = run_script("tpu_pod.sh", *command, env=settings, folder=tmp_path)
    assert result.returncode == 0, result.stderr
  create, describe, *ssh, delete = calls(tmp_path)
  flags = "--project=proj --zone=us-east5-a"
  assert create == (
    "gcloud compute tpus queued-resources create physworld --node-count=2 --node-prefix=physworld "
    f"--accelerator-type=v5p-32 --runtime-version=v2-alpha-tpuv5 {flags}"
  )
  assert describe.startswith("gcloud compute tpus queued-resources describe physworld ")
  nodes = [tuple(call.split()[5:7]) for call in ssh]  # run and stop call the slices in parallel
  every_slice = [("physworld-0", "--worker=all"), ("physworld-1", "--worker=all")]
  assert sorted(nodes[:2]) == every_slice and sorted(nodes[2:4]) == every_slice
  assert nodes[4] == ("physworld-0", "--worker=0")  # logs: worker 0 of slice 0
  assert all("launch/worker.sh --workdir=gs://bucket/physworld" in call for call in ssh[:2])
  assert all("run.pid" in call and "kill -TERM" in call for call in ssh[2:4])
  assert delete == f"gcloud compute tpus queued-resources delete physworld --force --quiet {flags}"

  def error(**env):
    result = run_script("tpu_pod.sh", "logs", env={**settings, **env}, folder=tmp_path)
    assert result.returncode == 2
    return result.stderr.strip()

  assert error(NUM_SLICES="0") == "error: NUM_SLICES=0 must be a positive integer"
  assert error(SLICE="2") == "error: SLICE=2 must be a slice index below NUM_SLICES=2"


def test_worker_runs_the_job_as_one_host_of_many(tmp_path):
  shutil.copytree(LAUNCH, tmp_path / "launch")
  (tmp_path / ".venv" / "bin").mkdir(parents=True)
  (tmp_path / "pyproject.toml").write_text("[project]\n")
  (tmp_path / ".venv" / ".installed-tpu").write_text(sha256(tmp_path / "pyproject.toml") + "\n")
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
