"""Analysis by synthesis: the initial state whose simulated, rendered video best matches a video.

  state0, residual = sims.fit_initial_state(scene, frames)  # frames [n, T, H, W, 3] in [0, 1]
  scene.params_of(state0)                                    # e.g. radius and speed per video
  sims.physics_score(scene, frames)                          # fit and law residuals per video

The fit starts from the study's hard parser (each ball's radius, and its position and velocity
from a least-squares line through its centres in the first frames, gravity removed) and refines
every ball's position, velocity and radius by Levenberg-Marquardt on the pixel residual of
`sims.render(scene.rollout(state))`, gradients passing through the closed-form contact time of a
collision. Each iteration solves the damped Gauss-Newton equations of the few parameters per
video and keeps the step only if it lowers that video's error. The renderer's edge starts
`edge_px` pixels wide (a blurred image whose derivatives reach balls a few pixels off) and
narrows geometrically to the data's one pixel by half way.

Why not Adam through optax: on ground-truth collision videos at 64 x 64 x 32, 200 Adam steps
(cosine-decayed, best rate of a sweep) still left velocity errors up to 0.02 world units / s,
as the problem is ill-conditioned (diagonally scaled Hessian condition number ~1500: a ball's
height against its vertical speed, the time shift of position against velocity), while 10
Gauss-Newton iterations reach 1e-5 in a third of the time. The Jacobian is cheap because a frame
depends only on that frame's ball centres and the radii: 3K tangent images (x, y and r of each
of K balls, pushed in every frame at once) give every frame's Jacobian, and the rollout's own
small Jacobian maps them to the initial state.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from sims import laws, parsing
from sims.core import BallState, Scene, Trajectory
from sims.physics import frame_times
from sims.rendering import render

# Frames whose hard-parsed centres start the fit (the study's context length).
INIT_FRAMES = 4
# Levenberg-Marquardt damping: starting value and the factors after a kept / rejected step.
DAMPING, DAMPING_KEPT, DAMPING_REJECTED = 1e-2, 0.3, 10.0


def fit_initial_state(
  scene: Scene | str,
  frames: jax.Array,
  *,
  num_steps: int = 10,
  edge_px: float = 8.0,
  init: BallState | None = None,
  colors: Sequence[Sequence[float]] | None = None,
  fit_position: bool = True,
  fit_velocity: bool = True,
  fit_radius: bool = True,
  frames_per_chunk: int = 8,
) -> tuple[BallState, jax.Array]:
  """The initial state [n] that best reproduces `frames` [n, T, H, W, 3], and its residual [n].

  The residual is the RMS pixel error of the fitted video against `frames`. `init` replaces the
  hard-parser start (its colours and shapes are the scene's); `fit_*=False` keeps those fields
  at their start values. `colors` (one RGB triple of 0s and 1s per ball) replaces the scene's
  ball colours. `frames_per_chunk` bounds memory: the tangent images of that many frames at a
  time. Jitted per scene object and setting; reuse one scene object to reuse the compilation.
  """
  scene, template = laws.ball_scene(scene, colors)
  frames = laws.check_video(frames, min_frames=2)
  n, _, height, width = frames.shape[:4]
  if height != width:
    raise ValueError(f"frames must be square (sims.render's frames are), got {height} x {width}")
  for name, value, low in (("num_steps", num_steps, 1), ("frames_per_chunk", frames_per_chunk, 1)):
    if value < low:
      raise ValueError(f"{name} must be >= {low}, got {value}")
  if edge_px < 1.0:
    raise ValueError(f"edge_px must be >= 1 (the data's edge), got {edge_px}")
  num_balls = template.position.shape[1]
  ball_colors = _ball_colors(template)  # read before batching: concrete even under a jit
  template = _batched(template, n)
  if init is None:
    init = _initial_guess(scene, ball_colors, frames, template)
  elif init.position.shape != (n, num_balls, 2):
    raise ValueError(f"init must hold [{n}, {num_balls}] balls, got {init.position.shape[:2]}")
  start = template.replace(position=init.position, velocity=init.velocity, radius=init.radius)
  free = np.repeat(
    [fit_position, fit_velocity, fit_radius], [2 * num_balls, 2 * num_balls, num_balls]
  )
  return _fit(scene, frames, start, tuple(free), num_steps, edge_px, frames_per_chunk)


def parse_initial_state(
  scene: Scene | str, frames: jax.Array, *, colors: Sequence[Sequence[float]] | None = None
) -> BallState:
  """The hard parser's initial state [n] of videos [n, T, H, W, 3]: no fit, the law's start.

  Each ball's radius is its largest parsed radius; its position and velocity at frame 0 come
  from a least-squares line (gravity removed) through its centres in the first INIT_FRAMES
  frames. `scene.rollout` of the result is the scene's law applied to what those frames show.
  """
  scene, template = laws.ball_scene(scene, colors)
  frames = laws.check_video(frames, min_frames=2)
  ball_colors = _ball_colors(template)
  return _initial_guess(scene, ball_colors, frames, _batched(template, frames.shape[0]))


def _batched(template: BallState, n: int) -> BallState:
  return jax.tree.map(lambda x: jnp.broadcast_to(x, (n, *x.shape[1:])), template)


def _ball_colors(template: BallState) -> tuple[tuple[float, ...], ...]:
  return tuple(map(tuple, np.asarray(template.color[0]).tolist()))


def physics_score(
  scene: Scene | str,
  frames: jax.Array,
  mask: jax.Array | None = None,
  *,
  colors: Sequence[Sequence[float]] | None = None,
  **fit_options,
) -> dict[str, jax.Array]:
  """Physics consistency of videos [n, T, H, W, 3]: one dict of per-video arrays.

  "fit_residual" [n] (RMS pixel error of the best simulated video), the fitted "params" [n, P]
  (`scene.params_of`, e.g. radius and speed), "position", "velocity" [n, K, 2] and "radius"
  [n, K] of the fitted initial state, and the law residuals of `sims.laws.scores` ("count" as
  "law_count"; NaN where nothing was measured). `mask` ([T] or [n, T]) selects the frames the
  law residuals count; the fit uses every frame. `fit_options` go to `fit_initial_state`.
  """
  state0, residual = fit_initial_state(scene, frames, colors=colors, **fit_options)
  scene, _ = laws.ball_scene(scene, colors)
  law_scores = laws.scores(scene, frames, mask, colors=colors)
  return {
    "fit_residual": residual,
    "params": scene.params_of(state0),
    "position": state0.position,
    "velocity": state0.velocity,
    "radius": state0.radius,
    "law_count": law_scores.pop("count"),
    **law_scores,
  }


@functools.partial(jax.jit, static_argnums=(0, 1))
def _initial_guess(
  scene: Scene, colors: tuple[tuple[float, ...], ...], frames: jax.Array, template: BallState
) -> BallState:
  """Radii, and positions and velocities from a line through the first INIT_FRAMES centres.

  Each ball's radius is its largest hard-parsed radius (partly hidden or cut balls parse
  smaller); the line, after removing the scene's gravity, goes through the centres of the frames
  where the ball is found and fully in view or, if fewer than two such frames exist, where it is
  found at all (a cut ball's centroid lags its centre but moves its way: fast balls that enter
  from the edge otherwise start at rest, far from the fit). A ball found in one frame starts at
  rest there; one never found, at the parser's fallback centre.
  """
  parsed = parsing.hard_parse(frames, colors)
  pixel = 10.0 / frames.shape[3]
  radius = jnp.maximum(jnp.max(jnp.where(parsed.found, parsed.radius, 0.0), axis=1), pixel)
  num_frames = min(frames.shape[1], INIT_FRAMES)
  found = parsed.found[:, :num_frames]
  seen = found & parsing.fully_in_view(parsed.position[:, :num_frames], radius)
  enough = jnp.sum(seen, axis=1, keepdims=True) >= 2
  weight = jnp.where(enough, seen, found)[..., None].astype(jnp.float32)  # [n, F, K, 1]
  t = frame_times(num_frames)[None, :, None, None]
  centre = parsed.position[:, :num_frames] - 0.5 * laws.free_acceleration(scene, template) * t**2
  count = weight.sum(1)
  t_mean = (weight * t).sum(1) / jnp.maximum(count, 1.0)
  centre_mean = (weight * centre).sum(1) / jnp.maximum(count, 1.0)
  spread = (weight * (t - t_mean[:, None]) ** 2).sum(1)
  covariance = (weight * (t - t_mean[:, None]) * (centre - centre_mean[:, None])).sum(1)
  velocity = jnp.where(count >= 2, covariance / jnp.maximum(spread, 1e-6), 0.0)
  position = jnp.where(count >= 1, centre_mean - velocity * t_mean, parsed.position[:, 0])
  return template.replace(position=position, velocity=velocity, radius=radius)


def _pack(state: BallState) -> jax.Array:
  """Per-video parameters [n, 5K]: positions, velocities, radii."""
  n = state.position.shape[0]
  return jnp.concatenate(
    [state.position.reshape(n, -1), state.velocity.reshape(n, -1), state.radius], -1
  )


def _unpack(theta: jax.Array, template: BallState) -> BallState:
  n, num_balls = template.radius.shape
  position, velocity, radius = jnp.split(theta, [2 * num_balls, 4 * num_balls], axis=-1)
  return template.replace(
    position=position.reshape(n, num_balls, 2),
    velocity=velocity.reshape(n, num_balls, 2),
    radius=radius,
  )


@functools.partial(jax.jit, static_argnums=(0, 3, 4, 5, 6))
def _fit(
  scene: Scene,
  frames: jax.Array,
  start: BallState,
  free: tuple[bool, ...],
  num_steps: int,
  edge_px: float,
  frames_per_chunk: int,
) -> tuple[BallState, jax.Array]:
  num_frames, resolution = frames.shape[1], frames.shape[2]
  free = jnp.asarray(free, jnp.float32)
  num_params = free.shape[0]

  def video(theta, edge):
    return render(scene.rollout(_unpack(theta, start), num_frames), resolution, edge)

  def squared_error(theta, edge, weight):
    return jnp.sum((video(theta, edge) - frames) ** 2 * weight[:, None, None, None], (1, 2, 3, 4))

  def frame_geometry(theta):
    """What frame t depends on: every ball's centre and radius, [n, T, 3K]."""
    traj = scene.rollout(_unpack(theta, start), num_frames)
    n, _, num_balls = traj.position.shape[:3]
    radius = jnp.broadcast_to(traj.radius[:, None], (n, num_frames, num_balls))
    return jnp.concatenate([traj.position.reshape(n, num_frames, -1), radius], -1)

  def normal_equations(theta, edge, weight):
    """Gauss-Newton matrix [n, P, P], gradient [n, P] and squared error [n] of every video.

    Frame t counts with weight[t].
    """
    geometry, frame_of = jax.linearize(frame_geometry, theta)
    # Pushing parameter p of every video at once gives each video's column p (they are apart).
    rollout_jacobian = jax.vmap(frame_of, out_axes=-1)(
      jnp.broadcast_to(jnp.eye(num_params)[:, None], (num_params, *theta.shape))
    )  # [n, T, 3K, P]
    normals, gradients, errors = jax.lax.map(
      lambda per_frame: _frame_normals(per_frame[0], per_frame[1], start, resolution, edge),
      (jnp.moveaxis(geometry, 1, 0), jnp.moveaxis(frames, 1, 0)),
      batch_size=frames_per_chunk,
    )  # [T, n, 3K, 3K], [T, n, 3K], [T, n]
    hessian = jnp.einsum(
      "ntjp,t,tnjk,ntkq->npq", rollout_jacobian, weight, normals, rollout_jacobian
    )
    gradient = jnp.einsum("ntjp,t,tnj->np", rollout_jacobian, weight, gradients)
    return hessian, gradient, weight @ errors

  def step(carry, index):
    theta, damping = carry
    # Over the first half, the edge narrows to 1 px and the frames counted grow to all of them.
    progress = jnp.minimum(index / (0.5 * num_steps), 1.0)
    edge = edge_px ** (1.0 - progress)
    horizon = INIT_FRAMES * max(num_frames / INIT_FRAMES, 1.0) ** progress
    weight = (jnp.arange(num_frames) < horizon).astype(jnp.float32)
    hessian, gradient, error = normal_equations(theta, edge, weight)
    # Frozen parameters get an identity row and no gradient, so their step is exactly 0.
    hessian = hessian * free[:, None] * free[None, :] + jnp.diag(1.0 - free)
    diagonal = jnp.diagonal(hessian, axis1=1, axis2=2)
    scale = jnp.mean(diagonal, axis=1, keepdims=True)
    damped = hessian + jax.vmap(jnp.diag)(damping[:, None] * diagonal + 1e-9 * scale)
    candidate = theta - jnp.linalg.solve(damped, (gradient * free)[..., None])[..., 0]
    better = squared_error(candidate, edge, weight) < error
    theta = jnp.where(better[:, None], candidate, theta)
    damping = damping * jnp.where(better, DAMPING_KEPT, DAMPING_REJECTED)
    return (theta, damping), None

  n = frames.shape[0]
  (theta, _), _ = jax.lax.scan(
    step, (_pack(start), jnp.full(n, DAMPING)), jnp.arange(num_steps, dtype=jnp.float32)
  )
  values = np.prod(frames.shape[1:])
  return _unpack(theta, start), jnp.sqrt(squared_error(theta, 1.0, jnp.ones(num_frames)) / values)


def _frame_normals(
  geometry: jax.Array,
  target: jax.Array,
  template: BallState,
  resolution: int,
  edge: jax.Array,
) -> tuple[jax.Array, jax.Array, jax.Array]:
  """One frame's Gauss-Newton terms in its ball geometry [n, 3K]: J^T J, J^T r and |r|^2."""
  n, num_balls = template.radius.shape

  def image(geometry):
    position = geometry[:, : 2 * num_balls].reshape(n, 1, num_balls, 2)
    still = Trajectory(
      position,
      jnp.zeros_like(position),
      geometry[:, 2 * num_balls :],
      template.color,
      template.shape,
    )
    return render(still, resolution, edge)[:, 0]

  rendered, tangent_of = jax.linearize(image, geometry)
  basis = jnp.eye(3 * num_balls)
  tangents = jax.vmap(lambda e: tangent_of(jnp.broadcast_to(e, geometry.shape)))(basis)
  residual = rendered - target
  normals = jnp.einsum("jnhwc,knhwc->njk", tangents, tangents)
  gradients = jnp.einsum("jnhwc,nhwc->nj", tangents, residual)
  return normals, gradients, jnp.sum(residual**2, axis=(1, 2, 3))
