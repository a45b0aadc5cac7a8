"""Run logging: metrics.jsonl, TensorBoard events and a console progress line (process 0 only)."""

from __future__ import annotations

import json
import time
from typing import Any

import jax
from absl import logging
from tensorboardX import SummaryWriter

from experiments import outputs


class MetricWriter:
  """Appends one JSON object per logged step and mirrors scalars to TensorBoard.

  The file is only ever appended to, so a rerun after a crash keeps the earlier lines; a resumed
  run first writes a {"event": "resume"} marker. Only process 0 writes anything.
  """

  def __init__(self, workdir: str, total_steps: int, examples_per_step: int):
    self.active = jax.process_index() == 0
    self.total_steps = total_steps
    self.examples_per_step = examples_per_step
    self.path = outputs.path(workdir, "metrics.jsonl")
    tensorboard_dir = str(outputs.path(workdir, "tensorboard"))
    self._tensorboard = SummaryWriter(tensorboard_dir) if self.active else None
    self._last: tuple[int, float] | None = None

  def event(self, name: str, **fields: Any) -> None:
    self._append({"event": name, **fields})

  def write(self, step: int, metrics: dict[str, float], data_seconds: float | None = None) -> None:
    """Logs scalars for `step`, with rates and ETA since the previous call.

    data_seconds, the time to generate one batch alone, gives `data_share`: the fraction of the
    step time spent simulating and rendering.
    """
    now = time.perf_counter()
    if self._last is not None and step > self._last[0]:
      rate = (step - self._last[0]) / (now - self._last[1])
      metrics = {**metrics, "steps_per_s": rate, "examples_per_s": rate * self.examples_per_step}
      if data_seconds is not None:
        metrics["data_share"] = data_seconds * rate
    self._last = (step, now)
    record = {"step": step, **{k: float(v) for k, v in metrics.items()}}
    self._append(record)
    if not self.active:
      return
    for name, value in record.items():
      if name != "step":
        self._tensorboard.add_scalar(name, value, step)
    rate = record.get("steps_per_s")
    eta = f", ETA {_duration((self.total_steps - step) / rate)}" if rate else ""
    shown = ", ".join(f"{k} {v:.4g}" for k, v in record.items() if k != "step")
    logging.info("step %d/%d: %s%s", step, self.total_steps, shown, eta)

  def _append(self, record: dict[str, Any]) -> None:
    if self.active:
      outputs.append_line(self.path, json.dumps(record))

  def close(self) -> None:
    if self._tensorboard is not None:
      self._tensorboard.close()


def _duration(seconds: float) -> str:
  minutes, secs = divmod(int(seconds), 60)
  hours, minutes = divmod(minutes, 60)
  return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"
