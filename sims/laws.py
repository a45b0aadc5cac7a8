"""Physical-law residuals of videos, measured on the soft parser's ball trajectories.

  sims.laws.residuals(scene, frames, mask)  # dict of [n] arrays, differentiable in the frames
  sims.laws.loss(scene, frames, mask)       # scalar: a physics loss on [B, T, H, W, 3] frames
  sims.laws.scores(scene, frames)           # dict of [n] arrays, NaN where nothing was measured
  sims.laws.context_velocity_gap(scene, frames, context_frames)  # [n]: does it continue its context

Balls are located by `sims.parsing.soft_parse` (centres and radii, differentiable). A frame counts
where the ball is found, lies fully in view (judged with its largest parsed radius) and `mask`
(of shape [T] or [n, T], e.g. the generated frames) is set. The residuals:

- free flight ("uniform_motion", "parabola"): "acceleration", the mean over counted frames of
  |a - g| in world units / s^2, where a is the second difference of the centre over dt^2 (all
  three frames counted) and g the scene's gravity, (0, 0) or (0, -2.5); and "trajectory", the
  RMS distance (world units) of the counted centres from the best-fitting free flight
  p0 + v t + g t^2 / 2 (least squares per ball, then averaged over balls). Both vanish for
  exact free flight; the second differences over dt = 0.1 s amplify the parser's sub-pixel
  jitter 100-fold (about 2 world units / s^2 on ground truth at 64 x 64), while the fit's residual
  stays at that jitter (~0.01), so "trajectory" is the one LOSS_TERMS uses;
- "collision": "momentum" and "energy", the change of total momentum and kinetic energy (mass
  ~ r^2 from the mean parsed radius) between the mean velocities of each ball before and after
  the contact, relative to the sum of |momentum| and to the energy before it. Velocities are
  forward differences of counted frame pairs; the contact is the pair that best splits the two
  balls' relative velocity into two constant segments (least squares), and the pairs within
  CONTACT_GUARD of it are left out of both segments.

Each residual comes with "count", the number of accelerations or (fewest per ball and side)
velocity pairs it averages; where that is 0 the residual is 0 in `residuals` and `loss`, NaN in
`scores`.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from sims import parsing
from sims.core import FRAME_DT, WORLD_SIZE, BallState, Scene, check_choice

# Pairs this close to the detected contact pair belong to neither segment: the pair that straddles
# the contact may be a neighbour of the detected one, and balls still touching hide each other's
# rims.
CONTACT_GUARD = 1

LAWS = {"uniform_motion": "free_flight", "parabola": "free_flight", "collision": "collision"}
# The residuals that `loss` sums, per law: ones of a common scale with a low floor on true videos.
LOSS_TERMS = {"free_flight": ("trajectory",), "collision": ("momentum", "energy")}

Color = Sequence[float]


def residuals(
  scene: Scene | str,
  frames: jax.Array,
  mask: jax.Array | None = None,
  *,
  colors: Sequence[Color] | None = None,
  sharpness: float = 1.25,
) -> dict[str, jax.Array]:
  """Per-video law residuals [n] (see the module docstring) and their "count"; jit-friendly."""
  # Checked before `ball_scene` draws a state: drawing one of a scene without balls is slow.
  law = check_choice("scene for physical-law residuals", _lookup(scene).name, tuple(LAWS))
  scene, template = ball_scene(scene, colors)
  frames = check_video(frames, min_frames=3)
  colors = tuple(map(tuple, np.asarray(template.color[0]).tolist()))
  parsed = parsing.soft_parse(frames, colors, sharpness)
  counted = _counted_frames(parsed, frames.shape, mask)
  if LAWS[law] == "free_flight":
    return _free_flight(parsed.position, counted, free_acceleration(scene, template))
  return _collision(parsed, counted)


def loss(
  scene: Scene | str,
  frames: jax.Array,
  mask: jax.Array | None = None,
  **options,
) -> jax.Array:
  """The sum of the scene's LOSS_TERMS, averaged over the videos where they were measured.

  A training loss: differentiable in `frames` (e.g. a model's clean-frame estimate) and zero for
  a batch where nothing could be measured. `options` go to `residuals`.
  """
  total, measured = loss_per_video(scene, frames, mask, **options)
  return jnp.sum(jnp.where(measured, total, 0.0)) / jnp.maximum(jnp.sum(measured), 1)


def loss_per_video(
  scene: Scene | str,
  frames: jax.Array,
  mask: jax.Array | None = None,
  **options,
) -> tuple[jax.Array, jax.Array]:
  """The sum of the scene's LOSS_TERMS per video [n] (0 where unmeasured) and whether each was
  measured [n]."""
  values = residuals(scene, frames, mask, **options)
  terms = LOSS_TERMS[LAWS[_lookup(scene).name]]
  return sum(values[name] for name in terms), values["count"] > 0


def scores(
  scene: Scene | str,
  frames: jax.Array,
  mask: jax.Array | None = None,
  **options,
) -> dict[str, jax.Array]:
  """Per-video residuals for reports: as `residuals`, with NaN where nothing was measured."""
  values = residuals(scene, frames, mask, **options)
  measured = values["count"] > 0
  return {
    name: value if name == "count" else jnp.where(measured, value, jnp.nan)
    for name, value in values.items()
  }


def context_velocity_gap(
  scene: Scene | str,
  frames: jax.Array,
  context_frames: int,
  *,
  colors: Sequence[Color] | None = None,
  sharpness: float = 1.25,
) -> tuple[jax.Array, jax.Array]:
  """How far a video's generated frames move away from what its context frames started: [n].

  The balls' centre of mass (masses ~ r^2 from the largest parsed radius) moves as a free body
  in every ball scene: along a line or the scene's parabola, unchanged by a collision (momentum
  is conserved). Its velocity is fitted by least squares (gravity removed) once on the context
  frames and once on the generated frames (frames where every ball counts, as in `residuals`);
  the result is |v_generated - v_context| in world units / s, with whether it was measured [n]
  (two or more counted frames on each side; 0 where not). It asks of a rollout only what its own
  context implies, not what the truth did.
  """
  check_choice("scene for a context velocity gap", _lookup(scene).name, tuple(LAWS))
  scene, template = ball_scene(scene, colors)
  frames = check_video(frames, min_frames=context_frames + 2)
  colors = tuple(map(tuple, np.asarray(template.color[0]).tolist()))
  parsed = parsing.soft_parse(frames, colors, sharpness)
  every_ball = _counted_frames(parsed, frames.shape, None).all(-1)  # [n, T]
  mass = jnp.max(jnp.where(parsed.found, parsed.radius, 0.0), axis=1) ** 2  # [n, K]
  centre = (
    jnp.sum(mass[:, None, :, None] * parsed.position, 2)
    / jnp.maximum(mass.sum(-1), 1e-9)[:, None, None]
  )  # [n, T, 2]
  is_context = jnp.arange(frames.shape[1]) < context_frames
  gravity = free_acceleration(scene, template)
  sides = [every_ball & is_context, every_ball & ~is_context]
  (v_context, _, n_context), (v_generated, _, n_generated) = (
    _flight_fit(centre[:, :, None], side[..., None], gravity) for side in sides
  )
  measured = (n_context[:, 0] >= 2) & (n_generated[:, 0] >= 2)
  return jnp.where(measured, _norm(v_generated - v_context)[:, 0], 0.0), measured


def ball_scene(
  scene: Scene | str, colors: Sequence[Color] | None = None
) -> tuple[Scene, BallState]:
  """The scene (looked up by name if a string) and one initial state of it: ball colours, shapes.

  `colors` (one RGB triple per ball) replaces the scene's colours. Raises a ValueError for a
  scene whose states are not balls or for the wrong number of colours.
  """
  scene = _lookup(scene)
  # Concrete even under an outer jit: colours and shapes are static properties of the scene.
  with jax.ensure_compile_time_eval():
    template = scene.sample(jax.random.key(0), 1, scene.splits[0])
    # numpy leaves, so that reading them under an outer jit makes constants, not tracers
    template = jax.tree.map(np.asarray, template)
  if not isinstance(template, BallState):
    raise ValueError(
      f"scene {scene.name!r} has no balls: its states are {type(template).__name__}, "
      "not sims.BallState"
    )
  if colors is not None:
    num_balls = template.position.shape[1]
    table = jnp.asarray(colors, jnp.float32)
    if table.shape != (num_balls, 3):
      raise ValueError(f"colors must be {num_balls} RGB triples for {scene.name!r}, got {colors}")
    template = template.replace(color=table[None])
  return scene, template


def free_acceleration(scene: Scene, template: BallState) -> jax.Array:
  """The acceleration [2] of a free ball in `scene` (its gravity), from a rollout of `template`."""
  with jax.ensure_compile_time_eval():
    at_rest = template.replace(velocity=jnp.zeros_like(template.velocity))
    position = scene.rollout(at_rest, 3).position[0, :, 0]
    return (position[2] - 2.0 * position[1] + position[0]) / FRAME_DT**2


def check_video(frames: jax.Array, min_frames: int) -> jax.Array:
  """Float frames [n, T, H, W, 3] with T >= min_frames, or a one-line ValueError."""
  frames = jnp.asarray(frames, jnp.float32)
  if frames.ndim != 5 or frames.shape[-1] != 3:
    raise ValueError(f"frames must have shape [n, T, H, W, 3], got {frames.shape}")
  if frames.shape[1] < min_frames:
    raise ValueError(f"frames need at least {min_frames} frames, got T = {frames.shape[1]}")
  return frames


def _lookup(scene: Scene | str) -> Scene:
  """The scene itself, or the registered scene of that name."""
  if isinstance(scene, str):
    import sims  # here, not at the top: the registry in sims/__init__ imports this module

    scene = sims.make(scene)
  if not isinstance(scene, Scene):
    raise ValueError(f"scene must be a sims.Scene or a scene name, got {type(scene).__name__}")
  return scene


def _counted_frames(
  parsed: parsing.Parsed, shape: tuple[int, ...], mask: jax.Array | None
) -> jax.Array:
  """[n, T, K] whether a ball counts in a frame: found, fully in view and not masked out."""
  batch = shape[:2]
  if mask is None:
    mask = jnp.ones(batch, bool)
  mask = jnp.asarray(mask)
  if mask.shape not in (batch[1:], batch):
    raise ValueError(f"mask must have shape [T] or [n, T] = {batch}, got {mask.shape}")
  mask = jnp.broadcast_to(mask, batch) > 0.5
  radius = jnp.max(jnp.where(parsed.found, parsed.radius, 0.0), axis=1)
  # A one-pixel margin keeps the anti-aliased rim, half a pixel outside the outline, in view.
  in_view = parsing.fully_in_view(parsed.position, radius + WORLD_SIZE / shape[3])
  return jax.lax.stop_gradient(parsed.found & in_view & mask[..., None])


def _norm(x: jax.Array) -> jax.Array:
  """|x| over the last axis with a finite gradient at 0."""
  return jnp.sqrt(jnp.sum(x * x, axis=-1) + 1e-12)


def _free_flight(
  position: jax.Array, counted: jax.Array, gravity: jax.Array
) -> dict[str, jax.Array]:
  acceleration = (position[:, 2:] - 2.0 * position[:, 1:-1] + position[:, :-2]) / FRAME_DT**2
  valid = counted[:, 2:] & counted[:, 1:-1] & counted[:, :-2]  # [n, T-2, K]
  count = valid.sum((1, 2))
  total = jnp.sum(jnp.where(valid, _norm(acceleration - gravity), 0.0), axis=(1, 2))
  return {
    "acceleration": total / jnp.maximum(count, 1),
    "trajectory": jnp.where(count > 0, _flight_fit_residual(position, counted, gravity), 0.0),
    "count": count,
  }


def _flight_fit_residual(position: jax.Array, counted: jax.Array, gravity: jax.Array) -> jax.Array:
  """RMS distance [n] of counted centres [n, T, K, 2] from each ball's least-squares free flight
  p0 + v t + g t^2 / 2, averaged over the balls with three or more counted frames."""
  _, residual, count = _flight_fit(position, counted, gravity)
  balls = count >= 3
  return jnp.sum(jnp.where(balls, residual, 0.0), -1) / jnp.maximum(balls.sum(-1), 1)


def _flight_fit(
  position: jax.Array, counted: jax.Array, gravity: jax.Array
) -> tuple[jax.Array, jax.Array, jax.Array]:
  """Each ball's least-squares free flight p0 + v t + g t^2 / 2 through its counted centres
  [n, T, K, 2]: the velocity v [n, K, 2], the RMS distance [n, K] of the centres from the flight
  and the number of counted frames [n, K]."""
  t = jnp.arange(position.shape[1], dtype=jnp.float32)[None, :, None] * FRAME_DT  # [1, T, 1]
  free = position - 0.5 * gravity * t[..., None] ** 2  # a line in t for free flight
  weight = counted.astype(jnp.float32)  # [n, T, K]
  count = weight.sum(1)  # [n, K]
  t_mean = (weight * t).sum(1) / jnp.maximum(count, 1.0)
  free_mean = (weight[..., None] * free).sum(1) / jnp.maximum(count, 1.0)[..., None]
  dt = t - t_mean[:, None]
  spread = (weight * dt**2).sum(1)
  velocity = (weight[..., None] * dt[..., None] * (free - free_mean[:, None])).sum(1)
  velocity = velocity / jnp.maximum(spread, 1e-9)[..., None]
  fitted = free_mean[:, None] + velocity[:, None] * dt[..., None]
  squared = (weight * jnp.sum((free - fitted) ** 2, -1)).sum(1) / jnp.maximum(count, 1.0)
  return velocity, jnp.sqrt(squared + 1e-12), count


def _collision(parsed: parsing.Parsed, counted: jax.Array) -> dict[str, jax.Array]:
  velocity = parsing.forward_velocity(parsed.position)  # [n, P, 2, 2] over P = T - 1 pairs
  pairs = counted[:, 1:] & counted[:, :-1]  # [n, P, 2]
  contact = _contact_pair(jax.lax.stop_gradient(velocity), pairs)  # [n]
  index = jnp.arange(velocity.shape[1])[None, :, None]
  before = pairs & (index < contact[:, None, None] - CONTACT_GUARD)
  after = pairs & (index > contact[:, None, None] + CONTACT_GUARD)

  def mean_velocity(segment):  # [n, 2, 2] mean velocity of each ball over its segment pairs
    weight = segment[..., None].astype(jnp.float32)
    return (weight * velocity).sum(1) / jnp.maximum(weight.sum(1), 1.0)

  v_before, v_after = mean_velocity(before), mean_velocity(after)
  radius_weight = counted.astype(jnp.float32)
  radius = (radius_weight * parsed.radius).sum(1) / jnp.maximum(radius_weight.sum(1), 1.0)
  mass = (radius**2)[..., None]  # [n, 2, 1]
  momentum_change = _norm(jnp.sum(mass * (v_after - v_before), axis=1))
  momentum_scale = jnp.sum(mass[..., 0] * _norm(v_before), axis=1)
  energy_before = jnp.sum(mass[..., 0] * jnp.sum(v_before**2, -1), axis=1)
  energy_after = jnp.sum(mass[..., 0] * jnp.sum(v_after**2, -1), axis=1)
  count = jnp.minimum(before.sum(1), after.sum(1)).min(1)
  measured = count > 0
  return {
    "momentum": jnp.where(measured, momentum_change / jnp.maximum(momentum_scale, 1e-6), 0.0),
    "energy": jnp.where(
      measured,
      jnp.abs(energy_after - energy_before) / jnp.maximum(energy_before, 1e-6),
      0.0,
    ),
    "count": count,
  }


def _contact_pair(velocity: jax.Array, pairs: jax.Array) -> jax.Array:
  """[n] the frame pair that best splits the relative velocity into before and after segments.

  For every candidate pair s, the pairs (with both balls counted) before and after s each get
  their mean relative velocity; s minimises the squared deviations of those pairs from their
  segment's mean, so the pair that straddles the contact, whose velocity mixes the two, is s or,
  where it is the first or last pair counted, a lone segment next to s.
  """
  both = (pairs[..., 0] & pairs[..., 1]).astype(jnp.float32)[..., None]  # [n, P, 1]
  relative = (velocity[:, :, 1] - velocity[:, :, 0]) * both
  squares = jnp.sum(relative**2, axis=-1, keepdims=True)

  def before_and_after(x):  # sums over pairs < s and > s, for every s
    running = jnp.cumsum(x, 1)  # pairs <= s
    return running - x, running[:, -1:] - running

  sums, sums_of_squares, counts = map(before_and_after, (relative, squares, both))

  def explained(total, count):  # the squares a segment's mean accounts for, count * |mean|^2
    return jnp.sum(total**2, axis=-1) / jnp.maximum(count[..., 0], 1.0)

  deviation = sum(sums_of_squares)[..., 0] - sum(map(explained, sums, counts))
  return jnp.argmin(deviation, axis=1)
