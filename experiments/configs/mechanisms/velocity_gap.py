"""Interpolation across a speed gap (the study's Figure 5): uniform motion trained on speed
bands with a gap between them, evaluated on the whole in-distribution grid.

    python -m experiments.main \
        --config=experiments/configs/mechanisms/velocity_gap.py:panel=1 --workdir=/tmp/gap1

Arguments: panel (1-5, the study's panels: `sims.regions.SPEED_PRESETS["fig5_panel<n>"]`);
size: "cpu" (the quickstart's recipe, about 10 minutes on 2 CPU cores, 192 cases of the grid)
or "study" (128 x 128, 32 frames, DiT-B on the 300K grid's training part, all 4,356 cases);
seed (data, model and evaluation cases).
The report's "speed gap" section plots generated against conditioned speed and tables the mean
|v_gen - v_cond| on training-range and gap cases beside the study's; `--mode=compare` over the
five panels' workdirs draws them side by side.
"""

from experiments.configs import common
from experiments.configs.mechanisms import mechanism_config


def get_config(arg: str | None = None):
  args = common.parse_arg(arg, panel=1, size="cpu", seed=0)
  common.check_arg("panel", str(args.panel), tuple("12345"))
  config = mechanism_config("uniform_motion", args.size, probes=("speed_gap",), seed=args.seed)
  config.scene_options.train_speeds = f"fig5_panel{args.panel}"
  config.eval.update(splits=("sweep",), num_cases=192 if args.size == "cpu" else 4356)
  return config
