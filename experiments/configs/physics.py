"""Physics alignment at equal compute: the quickstart's model with and without the law loss.

    # the same steps, batch and seed; only the loss differs
    python -m experiments.main --config=experiments/configs/physics.py:weight=0 \
        --workdir=/tmp/physics_off
    python -m experiments.main --config=experiments/configs/physics.py:weight=0.01 \
        --workdir=/tmp/physics_on
    # reward fine-tuning of the first run on its own most physical rollouts of OOD-speed contexts
    python -m experiments.main --workdir=/tmp/physics_reward \
        --config=experiments/configs/physics.py:reward_from=/tmp/physics_off,reward_steps=300

Arguments: task (uniform_motion, parabola or collision), weight (of the law-residual loss on the
model's clean-frame estimate, `worldmodel.physics`), num_steps; reward_from (the workdir of a
trained run: makes this a reward fine-tuning run of reward_steps steps), reward_split (where its
contexts come from; the simulator gives only their context frames). Add
--config.eval.best_of=4 to evaluate with best-of-4 sampling by the physics score.
"""

from experiments.configs import common, quickstart


def get_config(arg: str | None = None):
  args = common.parse_arg(
    arg,
    task="uniform_motion",
    weight=0.0,
    num_steps=1500,
    reward_from="",
    reward_steps=300,
    reward_split="ood_v",
  )
  config = quickstart.get_config(f"task={args.task},num_steps={args.num_steps}")
  config.physics.weight = args.weight
  if args.reward_from:
    config.num_steps = args.reward_steps
    config.reward.update(init_from=args.reward_from, split=args.reward_split)
    config.optimizer.update(learning_rate=1e-4, warmup_steps=10)
  return config
