"""A multi-host job on one machine: two processes of 4 CPU devices each, joined by
jax.distributed as the hosts of a TPU pod are."""

import json
import os
import signal
import socket

import numpy as np
import runs

from worldmodel import sharding


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
      "--config.mesh.fsdp=2",
      runs.LONG_WARMUP,
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


def test_two_hosts_train_as_one_stop_together_on_sigterm_and_resume(tmp_path):
  workdir = str(tmp_path / "run")
  hosts = start_hosts(
    workdir, "--config.num_steps=100000", "--config.checkpoint_every_steps=100000"
  )
  runs.wait_for_metrics(workdir, hosts, steps=2)
  hosts[1].send_signal(signal.SIGTERM)  # a preemption notice reaches one host only
  outputs = finish(hosts)
  (stopped,) = runs.checkpoint_steps(workdir)  # one checkpoint, written by both hosts together
  for output in outputs:
    assert f"every host saves step {stopped} and stops" in output
  assert runs.records(workdir)[-1]["step"] == stopped
  assert not os.path.exists(os.path.join(workdir, "report.md"))

  finish(start_hosts(workdir, f"--config.num_steps={stopped + 2}", "--config.eval.splits=('id',)"))
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
