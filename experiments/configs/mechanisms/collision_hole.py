"""Interpolation into a hole of the training set (the study's Figure 6): collisions trained
without the (v1, v2) cases in a hole, evaluated on the study's grid, which reaches past the
training range in v1.

    python -m experiments.main \
        --config=experiments/configs/mechanisms/collision_hole.py:hole=square_2_3 \
        --workdir=/tmp/hole_2_3

Arguments: hole (a preset of `sims.regions.HOLE_PRESETS`: square_2_3, square_1.75_3.25,
square_1.5_3.5, square_1.25_3.75, square_1.1_3.9, three, half, mass); size: "cpu" (the
quickstart's recipe, 192 cases of the grid) or "study" (128 x 128, 32 frames, DiT-B on the 3M
grid's training part, all 6,825 cases); seed. The report's "collision hole" section draws the error
over (v1, v2) with the training region and its convex hull, and compares hole cases inside the
hull with cases outside it.
"""

from experiments.configs import common
from experiments.configs.mechanisms import mechanism_config
from sims import regions


def get_config(arg: str | None = None):
  args = common.parse_arg(arg, hole="square_2_3", size="cpu", seed=0)
  common.check_arg("hole", args.hole, tuple(regions.HOLE_PRESETS))
  config = mechanism_config(
    "collision", args.size, probes=("collision_hole",), data="3M", seed=args.seed
  )
  config.scene_options.train_holes = args.hole
  config.eval.update(splits=("sweep",), num_cases=192 if args.size == "cpu" else 6825)
  return config
