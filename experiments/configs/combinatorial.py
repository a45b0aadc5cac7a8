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

The tiny sizes (micro, tiny, small) get a CPU recipe: float32, batch 16, learning rate 1e-3,
the flow objective predicting each frame's change from the context frame, which every frame
position also sees (`prediction="residual"`, `context_input="held"`: a fresh model is copy_last,
so the steps go to what moves), 1500 steps on a cache of 1024 training videos simulated once
(`data.cache`: the run below was made with stock jax2d, when simulating took 71 % of a CPU step;
`sims/phyre/engine.py` takes 16 %, docs/benchmarks.md), 32 evaluation cases per split and 8
sampling steps. It beats copy_last and blank on the generated
frames (in-template PSNR 31.2 against 26.6 and 21.6, LPIPS 0.039 against 0.074 and 0.57) and
its red ball follows the true one in 29 of 32 cases. About 30 minutes on 2 idle cores with the
report (docs/combinatorial_cpu.md has its numbers, timings and filmstrip):

    python -m experiments.main --workdir=/tmp/combinatorial_cpu \
        --config=experiments/configs/combinatorial.py:templates=6,size=tiny,resolution=64,frames=8
"""

from experiments.configs import common

TEMPLATE_SUBSETS = ("6", "30", "60")
CPU_SIZES = ("micro", "tiny", "small")


def get_config(arg: str | None = None):
  args = common.parse_arg(arg, templates="60", size="B", resolution=256, frames=32)
  common.check_arg("templates", args.templates, TEMPLATE_SUBSETS)
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
    baselines=("copy_last", "blank"),
  )
  if args.size in CPU_SIZES:
    config.model.update(dtype="float32", context_input="held")
    config.objective.flow.update(prediction="residual")
    config.optimizer.update(learning_rate=1e-3, warmup_steps=50, ema_decay=0.99)
    config.batch_size = 16
    config.data.cache = 1024
    config.num_steps = 1500
    config.log_every_steps = 50
    config.checkpoint_every_steps = 500
    config.eval.update(num_cases=32, sample_steps=8, gif_scale=2)
  return config
