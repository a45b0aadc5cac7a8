"""Visual ambiguity (the study's section 5.5): a model trained on the combinatorial templates
rolls out the PHYRE ambiguity tasks 20000-20003, whose outcome (a red ball passing a gap or
not, rolling off a ball to the left or right) flips at one point of a sub-pixel scan.

    python -m experiments.main \
        --config=experiments/configs/mechanisms/ambiguity.py:size=cpu --workdir=/tmp/ambiguity

Arguments: size: "cpu" (the combinatorial config's CPU recipe: 6 templates, 64 x 64, 8 frames,
1500 steps on 1024 cached videos, about 30 minutes on 2 idle cores, then 11 scan points per
template) or "study" (DiT-B, 60 templates, 256 x 256, 32 frames, every scan point); seed.
The report's "ambiguity" section tables, per template, how often the rollout ends as the truth
does, beside the parser on the true frames and the majority guess, and plots right and wrong
outcomes along each scan against the true flip.
"""

from experiments.configs import combinatorial, common

SIZES = ("cpu", "study")


def get_config(arg: str | None = None):
  args = common.parse_arg(arg, size="cpu", seed=0)
  common.check_arg("size", args.size, SIZES)
  if args.size == "cpu":
    config = combinatorial.get_config("templates=6,size=tiny,resolution=64,frames=8")
    config.eval.grid_points = 11  # scan points per template
  else:
    config = combinatorial.get_config("templates=60,size=B")
    config.eval.grid_points = 101
  config.seed = args.seed
  config.eval.scene_options.templates = "ambiguity"
  config.eval.update(splits=("in_template",), probes=("ambiguity",), num_cases=404, metrics=())
  return config
