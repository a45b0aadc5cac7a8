"""The study's 70 templates (4 of the 8 object kinds each), its training subsets and splits."""

from __future__ import annotations

import itertools
import random

import numpy as np

from sims.phyre.world import KINDS

# The study's generator shuffles the viable 4-kind combinations with Random(4).
FIRST_TEMPLATE = 10000


def _study_combinations() -> list[tuple[str, ...]]:
  combinations = [c for c in itertools.combinations(KINDS, 4) if any("dynamic" in k for k in c)]
  random.Random(4).shuffle(combinations)
  return combinations


TEMPLATE_KINDS: dict[int, tuple[str, ...]] = {
  FIRST_TEMPLATE + i: kinds for i, kinds in enumerate(_study_combinations())
}
TRAIN_TEMPLATES = tuple(range(10000, 10060))
HELD_OUT_TEMPLATES = tuple(range(10060, 10070))
TEMPLATE_SUBSETS: dict[str, tuple[int, ...]] = {
  "6": (10003, 10005, 10016, 10023, 10024, 10053),
  "30": tuple(range(10000, 10060, 2)),
  "60": TRAIN_TEMPLATES,
}
SPLITS = ("train", "in_template", "out_of_template")
AMBIGUITY = "ambiguity"  # the visual-ambiguity tasks 20000-20003 (sims.phyre_ambiguity)
TEMPLATE_SETS = (*TEMPLATE_SUBSETS, AMBIGUITY)
TASKS_PER_TEMPLATE = 100
TRIALS_PER_TASK = 990
_TEMPLATE_MASKS = np.array(
  [[kind in TEMPLATE_KINDS[t] for kind in KINDS] for t in sorted(TEMPLATE_KINDS)], bool
)
