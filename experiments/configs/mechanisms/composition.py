"""Composition (the study's section 5.4): events seen apart in training, together at test.

    python -m experiments.main \
        --config=experiments/configs/mechanisms/composition.py:kind=temporal \
        --workdir=/tmp/temporal

Arguments: kind ("spatial": a moving square and a ball bouncing off a wall; "temporal": a
two-ball collision and a bounce; "temporal_no_red": the same without the red ball in the bounce
videos, the study's failure case; `sims.make("composition", kind=...)`); size: "cpu" (the
quickstart's recipe, 32 x 32, 8 frames, 192 test cases) or "study" (128 x 128, 32 frames,
DiT-B on the 300K grid); seed.
The report's "composition" section gives, per expected event of the test videos (the bounce,
the collision, the rebound, the square moving on), how often the rollout shows it, and how
often an object vanishes, beside the same scoring of the true frames.
"""

from experiments.configs import common
from experiments.configs.mechanisms import mechanism_config
from sims import composition


def get_config(arg: str | None = None):
  args = common.parse_arg(arg, kind="temporal", size="cpu", seed=0)
  common.check_arg("kind", args.kind, composition.KINDS)
  config = mechanism_config(
    "composition", args.size, probes=("composition",), seed=args.seed, data="300K"
  )
  config.scene_options.kind = args.kind
  config.eval.update(
    splits=("test",),
    baselines=("copy_last", "blank"),
    num_cases=192 if args.size == "cpu" else 10_000,
  )
  return config
