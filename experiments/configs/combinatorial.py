"""The study's combinatorial generalization: PHYRE-like templates, 1 context frame, 32 frames.

    python -m experiments.main --config=experiments/configs/combinatorial.py:templates=60,size=B \
        --workdir=/tmp/combinatorial_B_60

Arguments: templates (the study's training subsets 6, 30 or 60; the pool is every task of those
templates times 990 red-ball trials: 0.6M / 3M / 6M videos), size (DiT size: B and XL in the
study; tiny CPU sizes too), resolution (the study's 256; 64 or 32 on a CPU), frames (32 in the
study, at PHYRE's 3 frames per second). Patches are 2 frames by resolution / 16 pixels (at least
8), 4096 tokens at the study's settings. Evaluation rolls out 500 in-template cases (training
templates, new red-ball trials) and 500 out-of-template cases (the 10 held-out templates) and
scores them as the study's Table 2: FVD, SSIM, PSNR, LPIPS and the abnormal rate.

A CPU run (jax2d simulates ~3 videos/s on 2 cores, so the data costs most of each step):

    python -m experiments.main --workdir=/tmp/combinatorial_cpu \
        --config=experiments/configs/combinatorial.py:templates=6,size=tiny,resolution=64,frames=8
"""

from experiments.configs import common

TEMPLATE_SUBSETS = ("6", "30", "60")


def get_config(arg: str | None = None):
  args = common.parse_arg(arg, templates="60", size="B", resolution=256, frames=32)
  if args.templates not in TEMPLATE_SUBSETS:
    raise ValueError(f"unknown templates {args.templates!r}; valid: {', '.join(TEMPLATE_SUBSETS)}")
  config = common.law_config("phyre", size=args.size, data=args.templates)
  config.scene_options.templates = args.templates
  config.video.update(num_frames=args.frames, context_frames=1, resolution=args.resolution)
  patch = max(args.resolution // 16, 8)
  config.model.patch_size = (2 if args.frames % 2 == 0 else 1, patch, patch)
  config.eval.update(
    splits=("in_template", "out_of_template"),
    grid_points=100,  # tasks per template (Scene.eval_params), thinned to num_cases
    num_cases=500,
    batch_size=16,
    metrics=("psnr", "ssim", "lpips", "fvd"),
  )
  return config
