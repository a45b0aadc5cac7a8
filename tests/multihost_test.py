"""A multi-host job on one machine: two processes of 4 CPU devices each, joined by
jax.distributed as the hosts of a TPU pod are."""

import json
import os
import signal
import socket

import numpy as np
import pytest
import runs

from worldmodel import sharding

# A 4 x 2 data x fsdp mesh, and a warmup longer than the runs: the resumed run, shorter than the
# first, then takes the same learning rates.
FSDP_2 = ("--config.mesh.fsdp=2", runs.LONG_WARMUP)


def free_port() -> int:
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


def start_hosts(workdir, *flags):
  port = free_port()
  return [
    runs.start_main(
      workdir,
      "--distributed",
      f"--coordinator_address=localhost:{port}",
      "--num_processes=2",
      f"--process_id={index}",
      *flags,
      devices=4,
    )
    for index in range(2)
  ]


def finish(hosts) -> list[str]:
  outputs = [host.communicate(timeout=300)[0] for host in hosts]
  for host, output in zip(hosts, outputs, strict=True):
    assert host.returncode == 0, output[-3000:]
  return outputs


@pytest.mark.slow
def test_two_hosts_train_as_one_stop_together_on_sigterm_and_resume(tmp_path):
  workdir = str(tmp_path / "run")
  hosts = start_hosts(
    workdir, *FSDP_2, "--config.num_steps=100000", "--config.checkpoint_every_steps=100000"
  )
  runs.wait_for_metrics(workdir, hosts, steps=2)
  hosts[1].send_signal(signal.SIGTERM)  # a preemption notice reaches one host only
  outputs = finish(hosts)
  (stopped,) = runs.checkpoint_steps(workdir)  # one checkpoint, written by both hosts together
  for output in outputs:
    assert f"every host saves step {stopped} and stops" in output
  assert runs.records(workdir)[-1]["step"] == stopped
  assert not os.path.exists(os.path.join(workdir, "report.md"))

  finish(
    start_hosts(
      workdir, *FSDP_2, f"--config.num_steps={stopped + 2}", "--config.eval.splits=('id',)"
    )
  )
  losses = runs.losses_by_step(workdir)
  assert sorted(losses) == list(range(1, stopped + 3))  # process 0 alone logs, once per step
  one_process = runs.losses_on_mesh(
    runs.micro_config(warmup_steps=1000), sharding.make_mesh(4, 2), stopped + 2
  )
  np.testing.assert_allclose([losses[s] for s in sorted(losses)], one_process, rtol=2e-5)
  with open(os.path.join(workdir, "eval.json")) as f:
    evaluation = json.load(f)
  assert evaluation["step"] == stopped + 2 and evaluation["splits"]["id"]["count"] == 2
  assert os.path.exists(os.path.join(workdir, "report", "id_best.gif"))


@pytest.mark.slow
def test_two_hosts_killed_resume_on_another_mesh_and_take_the_uninterrupted_steps(tmp_path):
  """Both hosts get SIGKILL (a preempted pod) and the same command restarts them on a 2 x 4
  data x fsdp mesh instead of 8 x 1; every logged step, before the kill and after the resume,
  has the loss of an uninterrupted run, past the learning-rate warmup."""
  workdir = str(tmp_path / "run")
  warmup_steps, checkpoint_every = 2, 3
  command = (
    "--config.num_steps=100000",
    f"--config.checkpoint_every_steps={checkpoint_every}",
    f"--config.optimizer.warmup_steps={warmup_steps}",
  )
  hosts = start_hosts(workdir, "--config.mesh.data=8", "--config.mesh.fsdp=1", *command)
  runs.wait_for_checkpoint(workdir, hosts)
  for host in hosts:
    host.send_signal(signal.SIGKILL)
  for host in hosts:
    host.wait()
  before = runs.records(workdir)
  resumed_from = runs.checkpoint_steps(workdir)[-1]
  assert resumed_from >= checkpoint_every > warmup_steps

  hosts = start_hosts(workdir, "--config.mesh.data=2", "--config.mesh.fsdp=4", *command)
  logged_before = sum("loss" in record for record in before)
  runs.wait_for_metrics(workdir, hosts, steps=logged_before + 4)
  hosts[0].send_signal(signal.SIGTERM)
  finish(hosts)
  after = runs.records(workdir)
  assert after[: len(before)] == before  # nothing earlier was lost or rewritten
  (resume,) = [r for r in after if r.get("event") == "resume"]
  assert resume["step"] == resumed_from
  resumed = [(r["step"], r["loss"]) for r in after[len(before) :] if "loss" in r]
  assert [step for step, _ in resumed] == list(range(resumed_from + 1, resumed[-1][0] + 1))
  assert len(resumed) >= 4

  logged = [(r["step"], r["loss"]) for r in before if "loss" in r] + resumed
  uninterrupted = runs.losses_on_mesh(
    runs.micro_config(num_steps=100000, warmup_steps=warmup_steps),
    sharding.make_mesh(4, 2),
    max(step for step, _ in logged),
  )
  np.testing.assert_allclose(
    [loss for _, loss in logged], [uninterrupted[step - 1] for step, _ in logged], rtol=2e-5
  )
