"""A world model of a 3-D scene (`sims.world3d`), simulated by brax and ray cast in the step.

    python -m experiments.main --config=experiments/configs/world3d.py:scene=bounce3d,size=B \
        --workdir=/tmp/bounce3d_B

Arguments: scene (bounce3d, rolling3d, collision3d, movi), size (DiT size), data (30K, 300K, 3M
or continuous; default 30K, continuous for the CPU sizes), resolution and frames (default 128
and 32, 64 and 8 for the CPU sizes). The default is the study's law-task setting: 128 x 128, 32
frames, 3 context frames, 2 x 8 x 8 patches. Evaluation scores the training range (id) and each
OOD level with the 3-D velocity probe (`experiments/probes/velocity3d.py`: error in pixels and
in m/s beside its parser floor) and copy_last; movi, whose bodies share no fixed colours, gets
the generated frames' MSE alone.

The tiny sizes (micro, tiny, small) get the CPU recipe of the combinatorial task: float32,
batch 16, learning rate 1e-3, the flow objective predicting each frame's change from the last
context frame, which every frame position also sees (`prediction="residual"`,
`context_input="held"`: the floor does not move, so the steps go to what does), fresh
simulations every step, 64 x 64 x 8 frames (through the default camera a ball of radius 0.1-0.2
m is 1.5-3 pixels across at 32 x 32; 64 x 64 is the least that draws it) with 2 x 8 x 8
patches (256 tokens), 1200 steps. About 15 minutes on 2 cores with the report
(docs/world3d.md has a run's numbers):

    python -m experiments.main --workdir=/tmp/bounce3d_cpu \
        --config=experiments/configs/world3d.py:scene=bounce3d,size=tiny
"""

from experiments.configs import common

OOD_LEVELS = {
  "bounce3d": ("ood_speed", "ood_angle", "ood_size", "ood_restitution"),
  "rolling3d": ("ood_speed", "ood_size", "ood_friction"),
  "collision3d": ("ood_speed", "ood_size", "ood_restitution"),
  "movi": ("ood_speed", "ood_size", "ood_restitution"),
}
CPU_SIZES = ("micro", "tiny", "small")


def get_config(arg: str | None = None):
  args = common.parse_arg(arg, scene="bounce3d", size="B", data="", resolution=0, frames=0)
  common.check_arg("scene", args.scene, tuple(OOD_LEVELS))
  cpu = args.size in CPU_SIZES
  config = common.law_config(
    args.scene, size=args.size, data=args.data or ("continuous" if cpu else "30K")
  )
  config.video.update(
    num_frames=args.frames or (8 if cpu else 32),
    context_frames=3,
    resolution=args.resolution or (64 if cpu else 128),
  )
  config.eval.update(
    splits=("id", *OOD_LEVELS[args.scene]),
    baselines=("copy_last",),
    probes=() if args.scene == "movi" else ("velocity3d",),
  )
  if cpu:
    config.model.update(dtype="float32", context_input="held")
    config.objective.flow.update(prediction="residual")
    config.optimizer.update(learning_rate=1e-3, warmup_steps=100, ema_decay=0.99)
    config.batch_size = 16
    config.num_steps = 1200
    config.log_every_steps = 50
    config.checkpoint_every_steps = 400
    config.eval.update(grid_points=3, num_cases=24, sample_steps=8, batch_size=8, gif_scale=4)
  return config
