"""The study's parabola task: DiT-S/B/L/XL at 128 x 128, 32 frames, 3 context frames.

    python -m experiments.main --config=experiments/configs/parabola.py:size=B,data=300K \
        --workdir=/tmp/parabola_B_300K

Arguments: size (DiT size: S, B, L, XL, or tiny CPU sizes), data (30K, 300K, 3M, or
continuous for fresh draws every step). The study trained 100K steps at batch 256.
"""

from experiments.configs import common


def get_config(arg: str | None = None):
  return common.law_task_config("parabola", arg)
