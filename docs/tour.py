# %% [markdown]
# # A tour of `sims`
#
# The study's scenes as a differentiable JAX library: make a scene, sample initial states from
# its splits, roll out, render, differentiate, fit the simulator to a video, the PHYRE-like
# world and training sets with holes. The library alone is `pip install physworld`; the tour
# draws its pictures with matplotlib, which the "eval" extra adds:
# `pip install "physworld[eval]"`.
#
# It is a jupytext percent script: open it as a notebook, or run it (under 2 minutes on 2 CPU
# cores)
#
#     python docs/tour.py --out /tmp/tour
#
# which writes its PNG files to `--out` (default: a new temporary directory). Its assertions
# are the claims of the text; `tests/tour_test.py` runs it.

# %%
import argparse
import os
import tempfile
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

import sims

parser = argparse.ArgumentParser(description="A tour of the sims library, written as PNG files.")
parser.add_argument("--out", help="folder for the PNG files (default: a new temporary one)")
args, _ = parser.parse_known_args()  # known ones only: a notebook kernel passes its own
np.set_printoptions(precision=4)
OUT = args.out or tempfile.mkdtemp(prefix="sims_tour_")
os.makedirs(OUT, exist_ok=True)
print("writing PNG files to", OUT)


def save(figure: Figure, name: str) -> None:
  """Writes `figure` as OUT/name."""
  path = os.path.join(OUT, name)
  figure.savefig(path, dpi=80, bbox_inches="tight")
  print("wrote", path)


def filmstrip(
  axes: Sequence[Axes],
  frames: jax.Array,
  frame_ids: Sequence[int],
  label: str,
  dt: float = sims.FRAME_DT,
) -> None:
  """Shows frames[frame_ids] of one video [T, H, W, 3] along a row of axes."""
  for ax, k in zip(axes, frame_ids, strict=True):
    ax.imshow(np.asarray(frames[k]), origin="upper")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(f"t = {k * dt:.1f} s", fontsize=9)
  axes[0].set_ylabel(label, fontsize=9)


# %% [markdown]
# ## Scenes, splits, rollouts, frames
#
# `sims.make(name)` builds a scene; `scene.sample(key, n, split)` draws n initial states from a
# split; `scene.rollout(state0, num_frames)` simulates (frame k at t = 0.1 k s in a 10 x 10
# world, y up) and `sims.render(traj, resolution)` paints frames [n, T, H, W, 3] in [0, 1].

# %%
print("scenes:", sims.names())
FRAMES = (0, 4, 8, 12, 16, 20)
figure = Figure(figsize=(9, 4.8))
rows = figure.subplots(3, len(FRAMES))
for row, name in zip(rows, ("uniform_motion", "parabola", "collision"), strict=True):
  scene = sims.make(name)
  state0 = scene.sample(jax.random.key(7), 1, split="id")
  traj = scene.rollout(state0, num_frames=32)  # traj.position [1, 32, balls, 2]
  frames = sims.render(traj, resolution=64)
  filmstrip(row, frames[0], FRAMES, name)
save(figure, "scenes.png")

# %% [markdown]
# Each split draws the scene's physical parameters (`scene.param_names`) from its own region:
# "id" from the study's training range, "ood_v" from speeds outside it (slower or faster), "ood_r"
# from radii outside it, "ood_rv" from both. `scene.params_of(state0)` reads them back.

# %%
scene = sims.make("uniform_motion")
print("uniform_motion parameters", scene.param_names, "splits", scene.splits)
figure = Figure(figsize=(5, 4))
ax = figure.subplots()
params = {}
for split in ("id", "ood_v", "ood_r", "ood_rv"):
  params[split] = np.asarray(scene.params_of(scene.sample(jax.random.key(0), 400, split)))
  ax.scatter(params[split][:, 1], params[split][:, 0], s=4, label=split)
ax.set_xlabel("speed (world units / s)")
ax.set_ylabel("radius (world units)")
ax.legend(markerscale=3)
save(figure, "splits.png")
speed, radius = params["id"][:, 1], params["id"][:, 0]
assert ((speed >= 1.0) & (speed <= 4.0) & (radius >= 0.7) & (radius <= 1.4)).all()
speed, radius = params["ood_v"][:, 1], params["ood_v"][:, 0]
assert ((speed < 1.0) | (speed > 4.0)).all() and ((radius >= 0.7) & (radius <= 1.4)).all()

# %% [markdown]
# ## A state built by hand
#
# `sims.balls(position [n, K, 2], velocity [n, K, 2], radius [n, K])` is any initial condition
# (red, then blue, circles by default). Here a small red ball at 2 units / s meets a larger blue
# one coming at 1 unit / s; they touch at t = 3.2 / 3 s, between frames 10 and 11. The collision
# is solved for the exact contact time, so momentum (mass ~ r^2) and kinetic energy are
# conserved to float precision.

# %%
collision = sims.make("collision")
state0 = sims.balls(
  position=[[[2.0, 5.0], [7.2, 5.0]]], velocity=[[[2.0, 0.0], [-1.0, 0.0]]], radius=[[0.8, 1.2]]
)
traj = collision.rollout(state0, num_frames=32)
frames = sims.render(traj, resolution=64)
mass = traj.radius[:, None, :, None] ** 2
momentum = jnp.sum(mass * traj.velocity, axis=2)[0, :, 0]  # x momentum of every frame
energy = jnp.sum(0.5 * mass[..., 0] * jnp.sum(traj.velocity**2, -1), axis=2)[0]
print("v_x before:", traj.velocity[0, 0, :, 0], "after:", traj.velocity[0, -1, :, 0])
print(f"momentum drift {float(jnp.ptp(momentum)):.2e}, energy drift {float(jnp.ptp(energy)):.2e}")
assert jnp.ptp(momentum) < 1e-5 and jnp.ptp(energy) < 1e-5
figure = Figure(figsize=(10, 2.2))
axes = figure.subplots(1, 6, gridspec_kw={"width_ratios": [1] * 5 + [1.6]})
filmstrip(axes[:5], frames[0], (0, 5, 10, 15, 25), "by hand")
times = np.arange(32) * sims.FRAME_DT
for ball, color in enumerate(("red", "blue")):
  axes[5].plot(times, traj.position[0, :, ball, 0], color=color)
axes[5].set_xlabel("t (s)")
axes[5].set_ylabel("x")
axes[5].yaxis.set_label_position("right")
save(figure, "by_hand.png")

# %% [markdown]
# ## Gradients through rollout and render
#
# The whole pipeline is differentiable: below is how frame 20 (t = 2 s, after the contact)
# changes with the red ball's initial speed, d frame / d v1x. A faster red ball bounces back
# faster (ink arrives at its left edge and leaves its right one) and pushes the blue ball, which
# it only touches at the contact, further right: the gradient passes through the collision.
# Then `jax.grad` of a scalar loss on the frames matches central finite differences.

# %%


@jax.jit
def video(velocity: jax.Array) -> jax.Array:
  """The frames of the hand-built state with its initial velocity replaced by `velocity`."""
  return sims.render(collision.rollout(state0.replace(velocity=velocity), 32), resolution=64)


velocity = state0.velocity
push = jnp.zeros_like(velocity).at[0, 0, 0].set(1.0)  # d / d v1x
frame20, d_frame20 = jax.jvp(lambda v: video(v)[0, 20], (velocity,), (push,))
ink = -np.asarray(d_frame20).mean(-1)  # the balls' coverage gained per unit of v1x
_, d_x20 = jax.jvp(
  lambda v: collision.rollout(state0.replace(velocity=v), 32).position, (velocity,), (push,)
)
print("d x / d v1x at frame 20: red", d_x20[0, 20, 0, 0], "blue", d_x20[0, 20, 1, 0])
assert d_x20[0, 20, 0, 0] < 0 < d_x20[0, 20, 1, 0]  # red further left, blue further right
figure = Figure(figsize=(9, 4))
left, right = figure.subplots(1, 2)
left.imshow(np.asarray(frame20))
left.set_title("frame 20", fontsize=10)
limit = np.abs(ink).max()
image = right.imshow(ink, cmap="PuOr_r", vmin=-limit, vmax=limit)
right.set_title("d(ink) / d v1x: orange arrives, purple leaves", fontsize=10)
figure.colorbar(image, ax=right, fraction=0.046)
for ax in (left, right):
  ax.set_xticks([])
  ax.set_yticks([])
save(figure, "gradient.png")

target = video(velocity + jnp.asarray([[[0.3, 0.0], [-0.2, 0.0]]]))


def loss(velocity: jax.Array) -> jax.Array:
  return jnp.sum((video(velocity) - target) ** 2)


analytic = np.asarray(jax.grad(loss)(velocity)).ravel()
eps = 1e-3
target64 = np.asarray(target, np.float64)  # the finite differences sum in float64
numeric = []
for i in range(velocity.size):
  bump = jnp.zeros(velocity.size).at[i].set(eps).reshape(velocity.shape)
  plus, minus = (np.asarray(video(velocity + sign * bump), np.float64) for sign in (1, -1))
  numeric.append((np.sum((plus - target64) ** 2) - np.sum((minus - target64) ** 2)) / (2 * eps))
numeric = np.asarray(numeric)
error = np.linalg.norm(analytic - numeric) / np.linalg.norm(numeric)
print("d loss / d velocity:", analytic.round(2), "finite differences:", numeric.round(2))
print(f"gradient relative error {error:.2e}")
assert error < 0.01

# %% [markdown]
# ## Fitting the simulator to a video
#
# `sims.fit_initial_state(scene, frames)` finds the initial state whose rendered rollout best
# reproduces each video (the study's parser to start, then Levenberg-Marquardt on the pixels),
# and `sims.physics_score` runs that fit and adds the law residuals measured on the video
# (momentum and energy changes across the contact). Two true collision videos are reproduced to
# float precision; a third, in which the first one's balls pass through each other, is not: no
# collision the scene can simulate looks like it, so its fit residual is orders of magnitude larger.

# %%
true0 = collision.sample(jax.random.key(7), 2, split="id")
first = jax.tree.map(lambda x: x[:1], true0)
ghost = sims.make("uniform_motion").rollout(first, 32)  # the first video's balls, no contact
videos = jnp.concatenate([sims.render(collision.rollout(true0, 32), 64), sims.render(ghost, 64)])
score = sims.physics_score(collision, videos)
fitted = sims.balls(score["position"], score["velocity"], score["radius"])
fits = sims.render(collision.rollout(fitted, 32), 64)
residual = np.asarray(score["fit_residual"])
print("true v_x:", true0.velocity[..., 0], "fitted v_x:", score["velocity"][:2, :, 0])
print("fit residual (RMS pixel error):", residual)
print("momentum residual:", score["momentum"], "energy residual:", score["energy"])
assert np.abs(score["velocity"][:2] - true0.velocity).max() < 1e-3
assert residual[2] > 100 * residual[:2].max()
figure = Figure(figsize=(9, 9.5))
rows = figure.subplots(6, len(FRAMES))
for i, kind in enumerate(("true", "true", "passes through")):
  filmstrip(rows[2 * i], videos[i], FRAMES, f"{kind} {i}")
  filmstrip(rows[2 * i + 1], fits[i], FRAMES, f"fit {i}\nRMS {residual[i]:.0e}")
save(figure, "fit.png")

# %% [markdown]
# ## The PHYRE-like world
#
# `sims.make("phyre", templates=...)` is the study's combinatorial world: a red ball and 4 of 8
# object kinds (gray dynamic, black static) per template, simulated by jax2d at 60 Hz and shown
# at 3 frames / s. "train" and "in_template" draw from the training templates (here the study's
# 6-template set), "out_of_template" from the 10 held-out ones.

# %%
phyre = sims.make("phyre", templates="6")
print("training templates:", phyre.templates("train"))
print("held-out templates:", phyre.templates("out_of_template"))
state0 = jax.tree.map(
  lambda a, b: jnp.concatenate([a, b]),
  phyre.sample(jax.random.key(0), 2, "train"),
  phyre.sample(jax.random.key(0), 2, "out_of_template"),
)
traj = phyre.rollout(state0, num_frames=10)  # sims.BodyTrajectory: discs and rotated boxes
frames = sims.render(traj, resolution=96)
figure = Figure(figsize=(9, 7.5))
rows = figure.subplots(4, 5)
for i, row in enumerate(rows):
  label = f"template {int(state0.template[i])}" + ("\n(held out)" if i >= 2 else "")
  filmstrip(row, frames[i], (0, 2, 4, 6, 9), label, dt=phyre.frame_dt)
save(figure, "phyre.png")
assert set(np.asarray(state0.template[:2]).tolist()) <= set(phyre.templates("train"))
assert set(np.asarray(state0.template[2:]).tolist()) <= set(phyre.templates("out_of_template"))

# %% [markdown]
# ## 3-D worlds
#
# `bounce3d`, `rolling3d` and `collision3d` are spheres on a floor simulated by brax's MJX
# pipeline (z up, metres, frame k at t = k / 24 s). Their states are `sims.Bodies3D`, their
# rollouts `sims.Trajectory3D` (positions [n, T, K, 3], orientations as quaternions), and the
# same `sims.render` draws them: a perspective camera, one light, cast shadows, a checkered floor.

# %%
bounce = sims.make("bounce3d")
state0 = bounce.sample(jax.random.key(0), 2, "id")
traj = bounce.rollout(state0, num_frames=32)  # traj.position [2, 32, 1, 3]
frames = sims.render(traj, resolution=128)
figure = Figure(figsize=(10, 3.8))
rows = figure.subplots(2, 6)
for i, row in enumerate(rows):
  restitution = float(state0.restitution[i])
  filmstrip(row, frames[i], (0, 6, 12, 18, 24, 31), f"e = {restitution:.2f}", dt=bounce.frame_dt)
save(figure, "bounce3d.png")
height = np.asarray(traj.position[:, :, 0, 2] - state0.size[:, None, 0])  # of the ball's bottom
rising = np.diff(np.asarray(traj.velocity[:, :, 0, 2]), axis=1) > 0.5  # a bounce turns vz up
assert height.min() > -0.01 and rising.any(1).all()  # it lands, and bounces off the floor

# %% [markdown]
# `movi` throws 3 to 10 spheres and cubes of random size, colour and density onto the floor
# (Kubric's MOVi in spirit). Its compiled model has 5 sphere and 5 cube slots; each video
# activates some of them (`state0.active`), and the others are neither simulated near the scene
# nor drawn.

# %%
movi = sims.make("movi")
state0 = movi.sample(jax.random.key(3), 2, "train")
traj = movi.rollout(state0, num_frames=32)
frames = sims.render(traj, resolution=128)
figure = Figure(figsize=(10, 3.8))
rows = figure.subplots(2, 6)
for i, row in enumerate(rows):
  label = f"{int(state0.active[i].sum())} bodies"
  filmstrip(row, frames[i], (0, 6, 12, 18, 24, 31), label, dt=movi.frame_dt)
save(figure, "movi.png")
count = np.asarray(state0.active.sum(-1))
assert ((count >= 3) & (count <= 10)).all()

# %% [markdown]
# ## A training set with a hole
#
# `train_speeds` restricts "train" to speed intervals and adds the rest of the training range
# as the split "gap" (the study's interpolation experiments; presets "fig5_panel1" ... 5).
# Panel 1 trains on v in [1, 1.25] and [3.75, 4] and asks about everything in between.

# %%
gap = sims.make("uniform_motion", train_speeds="fig5_panel1")
speeds = {
  split: np.asarray(gap.params_of(gap.sample(jax.random.key(1), 2000, split))[:, 1])
  for split in ("train", "gap")
}
figure = Figure(figsize=(6, 2.5))
ax = figure.subplots()
ax.hist([speeds["train"], speeds["gap"]], bins=np.linspace(1, 4, 49), label=["train", "gap"])
ax.set_xlabel("speed (world units / s)")
ax.set_ylabel("states")
ax.legend()
save(figure, "holes.png")
train = speeds["train"]
assert (((train >= 1.0) & (train <= 1.25)) | ((train >= 3.75) & (train <= 4.0))).all()
assert ((speeds["gap"] > 1.25) & (speeds["gap"] < 3.75)).all()
print("tour done")
