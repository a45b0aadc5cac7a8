"""Simulator-grounded generation: the simulator carries the law, the DiT renders it.

    # the plain model and each guide, at equal training compute (same steps, batch and seed)
    python -m experiments.main --config=experiments/configs/grounded.py:guide=none \
        --workdir=/tmp/grounded_none
    python -m experiments.main --config=experiments/configs/grounded.py:guide=render \
        --workdir=/tmp/grounded_render
    python -m experiments.main --config=experiments/configs/grounded.py:guide=render,render=full \
        --workdir=/tmp/grounded_render_full
    python -m experiments.main --config=experiments/configs/grounded.py:guide=flow_noise \
        --workdir=/tmp/grounded_flow_noise
    python -m experiments.main --config=experiments/configs/grounded.py:guide=state \
        --workdir=/tmp/grounded_state
    # the rendered guide trained on true states plus the fit's error rather than on the fit
    python -m experiments.main --workdir=/tmp/grounded_render_truth \
        --config=experiments/configs/grounded.py:guide=render,train_from=truth
    # the guide-free route: reward fine-tuning of the plain model on its own rollouts of
    # unlabeled OOD-speed contexts, ranked by the context reward (or by the law residuals alone)
    python -m experiments.main --workdir=/tmp/grounded_reward_context \
        --config=experiments/configs/grounded.py:reward_from=/tmp/grounded_none,reward=context

Arguments: guide (none, render, flow_noise, state: `worldmodel/guides.py`), render (masks or
full, for guide=render), task (uniform_motion or collision), seed, size (cpu: the quickstart's
recipe, 32 x 32, 1500 steps; study: DiT-B at 128 x 128 and 32 frames on the 3M pool);
reward_from (the workdir of a trained run of the same task and size: makes this reward_steps
steps of reward fine-tuning of it, `reward.kind` = reward: context or law, on contexts of the
task's first OOD-speed split; add --config.eval.best_of=4 to a --mode=evaluate run instead for
best-of-4 sampling by `reward.kind`); train_from (fit: training guides from the context fit, as
at evaluation; truth: from the true state plus noise of the fit's measured error). Every
guide is built from the context frames alone (a fit of the simulator's initial state to them,
rolled out with the scene's law), in training as in evaluation. Evaluation: ID and every OOD
level, with the baselines, the physics probe and the Physics-IQ probe.
"""

from experiments.configs import common
from experiments.configs.mechanisms import SIZES
from worldmodel import guides, physics

TASKS = ("uniform_motion", "collision")
OOD_SPEED = {"uniform_motion": "ood_v", "collision": "ood_v1"}  # reward fine-tuning's contexts


def get_config(arg: str | None = None):
  args = common.parse_arg(
    arg,
    guide="none",
    render="masks",
    task="uniform_motion",
    seed=0,
    size="cpu",
    reward_from="",
    reward="context",
    reward_steps=150,
    train_from="fit",
  )
  common.check_arg("guide", args.guide, guides.GUIDES)
  common.check_arg("render", args.render, guides.RENDER_MODES)
  common.check_arg("task", args.task, TASKS)
  common.check_arg("size", args.size, SIZES)
  common.check_arg("reward", args.reward, physics.REWARDS)
  common.check_arg("train_from", args.train_from, guides.TRAIN_FROM)
  if args.size == "cpu":
    config = common.cpu_law_config(args.task)
    config.eval.update(grid_points=4, num_cases=16)
  else:
    config = common.law_config(args.task, size="B", data="3M")
  config.guide.update(kind=args.guide, render=args.render, train_from=args.train_from)
  config.eval.update(
    splits=("id", *common.OOD_LEVELS[args.task]), probes=("physics_iq",), physics_score=True
  )
  config.seed = args.seed
  config.reward.kind = args.reward
  if args.reward_from:
    config.num_steps = args.reward_steps
    config.reward.update(init_from=args.reward_from, split=OOD_SPEED[args.task])
    config.optimizer.update(learning_rate=1e-4, warmup_steps=10)
  return config
