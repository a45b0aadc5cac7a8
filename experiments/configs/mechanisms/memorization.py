"""Case-based imitation (the study's Figure 7): uniform motion trained on fast balls (v in
[2.5, 4]) moving right only (Set-1, flip=false) or in both directions (Set-2, flip=true),
tested on slow balls (v in [1, 2.5], the split "gap").

    python -m experiments.main \
        --config=experiments/configs/mechanisms/memorization.py:flip=true --workdir=/tmp/flip

Arguments: flip (true: horizontally flipped training videos); size: "cpu" (the quickstart's
recipe, 144 slow cases) or "study" (128 x 128, 32 frames, DiT-B on the 300K grid's fast part);
seed.
The report's "reversal" section gives the histogram of generated signed velocities, the rate at
which the ball turns back after the context and the mean generated speed.
"""

from experiments.configs import common
from experiments.configs.mechanisms import mechanism_config


def get_config(arg: str | None = None):
  args = common.parse_arg(arg, flip=False, size="cpu", seed=0)
  config = mechanism_config("uniform_motion", args.size, probes=("reversal",), seed=args.seed)
  config.scene_options.update(
    train_speeds="memorization", direction="both" if args.flip else "right"
  )
  config.eval.update(splits=("gap",), grid_points=12)
  return config
