"""Attribute priority (the study's section 5.3): uniform motion trained on two of the four
combinations of two attributes, tested on the other two.

    python -m experiments.main \
        --config=experiments/configs/mechanisms/attributes.py:pairing=color_velocity \
        --workdir=/tmp/color_velocity

Arguments: pairing (`sims.pairings.PAIRINGS`: color_shape, size_shape, velocity_shape,
velocity_size, color_size, color_velocity, or color_ring, the appendix's ring test); size:
"cpu" (the quickstart's recipe, about 12 minutes on 2 CPU cores, 192 swapped cases and 192
of the training combinations, the model's own reading of what it knows) or "study"
(128 x 128, 32 frames, DiT-B on the 300K grid's training combinations, every swapped case of
the study's grid); seed.
The report's "attributes" section tables, per bound attribute and swapped combination, how many
rollouts keep the conditioned value and how many bend it to the training combination's, with
the mean drift of size and speed; `--mode=compare` over several pairings derives the ordering
of the attributes and sets it beside the study's colour > size > velocity > shape.
"""

from experiments.configs import common
from experiments.configs.mechanisms import mechanism_config
from sims import pairings


def get_config(arg: str | None = None):
  args = common.parse_arg(arg, pairing="color_velocity", size="cpu", seed=0)
  common.check_arg("pairing", args.pairing, tuple(pairings.PAIRINGS))
  config = mechanism_config("uniform_motion", args.size, probes=("attributes",), seed=args.seed)
  config.scene_options.pairing = args.pairing
  config.eval.update(
    splits=("swapped", "train"),
    baselines=("copy_last",),
    num_cases=192 if args.size == "cpu" else 10_000,
  )
  return config
