"""Probes of the study's mechanism experiments, one module each (the interface: `base.Probe`).

probes.check(config.eval.probes, scene)   # before training: a one-line error if unusable
active = probes.make(config.eval.probes, scene, config)
for batch in ...: probe.update(batch)     # evaluate.py, per split and batch
section = probe.finish(out_dir, "report")  # numbers for eval.json, lines for report.md
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sims
from experiments.probes.ambiguity import Ambiguity
from experiments.probes.attributes import AttributePriority
from experiments.probes.base import Batch, Probe, Section
from experiments.probes.collision_hole import CollisionHole
from experiments.probes.composition import Composition
from experiments.probes.physics_iq import PhysicsIQ
from experiments.probes.reversal import Reversal
from experiments.probes.speed_gap import SpeedGap
from experiments.probes.velocity3d import Velocity3D

PROBES: dict[str, type[Probe]] = {
  p.name: p
  for p in (
    SpeedGap,
    CollisionHole,
    Reversal,
    AttributePriority,
    Composition,
    Ambiguity,
    PhysicsIQ,
    Velocity3D,
  )
}


def check(names: Sequence[str], scene: sims.Scene) -> None:
  """A one-line ValueError for an unknown probe name or a probe that cannot measure `scene`."""
  for name in names:
    sims.check_choice("eval.probes entry", name, tuple(PROBES))
    PROBES[name].check(scene)


def make(names: Sequence[str], scene: sims.Scene, config: Any) -> list[Probe]:
  """The named probes, ready for `update`."""
  check(names, scene)
  return [PROBES[name](scene, config) for name in names]


__all__ = ["PROBES", "Batch", "Probe", "Section", "check", "make"]
