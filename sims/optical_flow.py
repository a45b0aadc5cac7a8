"""Exact forward optical flow of the videos that `sims.render` draws.

`flow(traj, resolution)` is [n, T - 1, H, W, 2] float32 in pixels per frame: flow[:, t] moves
the content of frame t to where it is in frame t + 1, so the point drawn at column j, row i of
frame t is at column j + flow[..., 0], row i + flow[..., 1] of frame t + 1. Component 0 is x
(to the right), component 1 is y in image coordinates: DOWN, along increasing row index (world
y points up, so it is minus the world motion).

A pixel takes the motion of the object that covers it in frame t: of the objects whose
renderer coverage exceeds 1/2 there (those whose outline contains the pixel centre; the
anti-aliasing ramp is symmetric about the outline, so this mask is the same for every edge
width), the topmost in `render`'s painting order (the last slot). Background pixels are exactly
zero. Motion comes from the states at frames t and t + 1, not from velocities, so it is the
exact displacement even when a bounce or contact happens between frames or (rigid bodies) the
velocity changes within a frame. Balls (`Trajectory`) translate: discs and rings are symmetric
and squares stay axis-aligned. A rigid body (`BodyTrajectory`) with centre c and angle a moves
a world point p to c[t + 1] + R(a[t + 1] - a[t]) (p - c[t]); static bodies have zero flow and
inactive slots are absent. The flow is that of the content itself: whether its target is hidden
in frame t + 1 (occlusion) or out of view is not considered.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp

from sims.core import WORLD_SIZE, BodyTrajectory, Trajectory
from sims.rendering import body_coverage, coverage, pixel_centres


@functools.partial(jax.jit, static_argnames="resolution")
def flow(traj: Trajectory | BodyTrajectory, resolution: int = 128) -> jax.Array:
  """Forward flow [n, T - 1, H, W, 2] float32 (H = W = resolution) of `render(traj, resolution)`.

  Pixels per frame; flow[:, t] takes frame t to frame t + 1; component 0 is x (right),
  component 1 is y DOWN the image (increasing row). Each pixel moves with the topmost object
  covering it in frame t (renderer coverage > 1/2), by that object's exact rigid motion from
  frame t to t + 1 (positions and angles at both frames, more exact than velocity * dt); the
  background and static bodies have zero flow.
  """
  to_pixels = jnp.asarray([1.0, -1.0]) * (resolution / WORLD_SIZE)
  xs, ys = pixel_centres(resolution)

  def ball_motion(position, radius, shape):
    start = position[:-1]  # [T - 1, 2]
    covers = coverage(start, radius, shape, resolution) > 0.5
    return covers, ((position[1:] - start) * to_pixels)[:, None, None, :]

  def body_motion(position, angle, shape, size, dynamic, active):
    start = position[:-1]
    covers = (body_coverage(start, angle[:-1], shape, size, resolution) > 0.5) & active
    dx = (xs - start[:, 0:1])[:, None, :]  # [T - 1, 1, W]
    dy = (ys - start[:, 1:2])[:, :, None]  # [T - 1, H, 1]
    turn = (angle[1:] - angle[:-1])[:, None, None]
    # p' - p = (c' - c) + (R - I)(p - c), with cos - 1 = -2 sin^2(turn / 2) (no cancellation).
    sin, cos_minus_one = jnp.sin(turn), -2.0 * jnp.sin(0.5 * turn) ** 2
    shift = (position[1:] - start)[:, None, None, :]
    moved = jnp.stack(
      [
        shift[..., 0] + cos_minus_one * dx - sin * dy,
        shift[..., 1] + sin * dx + cos_minus_one * dy,
      ],
      -1,
    )
    return covers, jnp.where(dynamic, moved * to_pixels, 0.0)

  if isinstance(traj, BodyTrajectory):
    motion_of = body_motion
    framed = (traj.position, traj.angle)
    fixed = (traj.shape, traj.size, traj.dynamic, traj.active)
  else:
    motion_of = ball_motion
    framed, fixed = (traj.position,), (traj.radius, traj.shape)
  one = functools.partial(_topmost, motion_of, (resolution, resolution))
  return jax.vmap(one)(framed, fixed).astype(jnp.float32)


def _topmost(
  motion_of: Callable[..., tuple[jax.Array, jax.Array]],
  frame_shape: tuple[int, int],
  framed: tuple[jax.Array, ...],
  fixed: tuple[jax.Array, ...],
) -> jax.Array:
  """Flow [T - 1, H, W, 2] of one example: a scan over its K objects in painting order, each
  overwriting the pixels it covers, so the last slot ends on top. `framed` fields are [T, K, ...],
  `fixed` ones [K, ...]; `motion_of(*framed, *fixed)` of one object gives the pixels
  [T - 1, H, W] it covers and its motion there in pixels (broadcasting to [T - 1, H, W, 2])."""
  num_frames, num_objects = framed[0].shape[:2]

  def paint(flow_so_far, obj):
    covers, motion = motion_of(*obj)
    return jnp.where(covers[..., None], motion, flow_so_far), None

  init = jnp.zeros((num_frames - 1, *frame_shape, 2), framed[0].dtype)
  per_object = (*(jnp.moveaxis(f, 1, 0) for f in framed), *fixed)
  result, _ = jax.lax.scan(paint, init, per_object, unroll=num_objects <= 8)
  return result
