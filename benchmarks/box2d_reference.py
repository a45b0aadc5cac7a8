"""Reference video pipeline with stock Box2D and numpy, following the study's data generator.

The study ("How Far is Video Generation from World Model: A Physical Law Perspective") simulated
its scenes with pybox2d and drew them with a numpy soft-disc renderer. This module reproduces that
pipeline so that `sims` can be benchmarked and cross-checked against it. Frame 0 is the initial
state and frame k the state after 10 * k Box2D steps of 0.01 s (t = k * 0.1 s).

Stock Box2D treats contacts whose relative normal speed is below `b2_velocityThreshold` (1.0) as
perfectly inelastic; the study patched that threshold to 0.01, so slow collisions differ here.
"""

from __future__ import annotations

from collections.abc import Sequence

import Box2D
import numpy as np
from numpy.typing import ArrayLike

WORLD_SIZE = 10.0
TIME_STEP = 0.01
VELOCITY_ITERATIONS = 15
POSITION_ITERATIONS = 20
STEPS_PER_FRAME = 10
FRAME_DT = TIME_STEP * STEPS_PER_FRAME
NUM_FRAMES = 32
DENSITY = 1.0
RESTITUTION = 1.0
PARABOLA_GRAVITY = (0.0, -2.5)
EDGE_WIDTH = 0.03

RED = (1.0, 0.0, 0.0)
BLUE = (0.0, 0.0, 1.0)
SCENES = ("uniform_motion", "parabola", "collision")

# Placement constants of the study's generator.
MARGIN = 0.5
MIN_VISIBLE_FRAMES = 24
MAX_EXTRA_START = 0.5
PARABOLA_HEIGHT_RANGE = 1.0
SINGLE_BALL_RADIUS = (0.7, 1.4)
COLLISION_RADIUS = (0.5, 1.5)
SPEED = (1.0, 4.0)
MIN_CONTACT_TIME = 0.4
MAX_CONTACT_TIME = 2.3

# position [n, K, 2], velocity [n, K, 2], radius [n, K], colors [K, 3], gravity (x, y).
InitialState = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, tuple[float, float]]


def simulate(
  position: ArrayLike,
  velocity: ArrayLike,
  radius: ArrayLike,
  gravity: Sequence[float] = (0.0, 0.0),
  num_frames: int = NUM_FRAMES,
) -> tuple[np.ndarray, np.ndarray]:
  """Simulates each video in its own Box2D world with the study's step settings.

  Args:
    position: [n, K, 2] initial centres.
    velocity: [n, K, 2] initial velocities.
    radius: [n, K] ball radii.
    gravity: world gravity (x, y).
    num_frames: number of frames T, frame 0 being the initial state.

  Returns:
    positions and velocities, each [n, T, K, 2] float64.
  """
  position = np.asarray(position, np.float64)
  velocity = np.asarray(velocity, np.float64)
  radius = np.asarray(radius, np.float64)
  n, num_balls = radius.shape
  positions = np.empty((n, num_frames, num_balls, 2))
  velocities = np.empty((n, num_frames, num_balls, 2))
  for video in range(n):
    world = Box2D.b2World(gravity=tuple(gravity), doSleep=False)
    bodies = []
    for ball in range(num_balls):
      body = world.CreateDynamicBody(
        position=tuple(position[video, ball]), linearVelocity=tuple(velocity[video, ball])
      )
      body.CreateCircleFixture(radius=radius[video, ball], density=DENSITY, restitution=RESTITUTION)
      bodies.append(body)
    for frame in range(num_frames):
      if frame > 0:
        for _ in range(STEPS_PER_FRAME):
          world.Step(TIME_STEP, VELOCITY_ITERATIONS, POSITION_ITERATIONS)
      for ball, body in enumerate(bodies):
        positions[video, frame, ball] = tuple(body.position)
        velocities[video, frame, ball] = tuple(body.linearVelocity)
  return positions, velocities


def render(
  positions: ArrayLike, radius: ArrayLike, colors: ArrayLike, resolution: int = 128
) -> np.ndarray:
  """Draws balls as soft discs on white, as the study's numpy renderer did.

  Each ball has alpha = clip((r^2 - d^2) / (r^2 * EDGE_WIDTH), 0, 1) at distance d from its centre
  and is composited over the frame in ball order. Pixel centres lie on `linspace(0, 1, resolution)`
  in world units / WORLD_SIZE, with image row 0 at the top of the world (y = WORLD_SIZE). Colour
  values are computed on a 0-255 scale and truncated to uint8, as in the study.

  Args:
    positions: [T, K, 2] or [n, T, K, 2] ball centres.
    radius: [K] or [n, K] radii.
    colors: [K, 3] RGB in [0, 1].
    resolution: frame height and width in pixels.

  Returns:
    uint8 frames [T, H, W, 3] or [n, T, H, W, 3], matching the rank of `positions`.
  """
  positions = np.asarray(positions, np.float64)
  radius = np.asarray(radius, np.float64)
  colors = 255.0 * np.asarray(colors, np.float64)
  batched = positions.ndim == 4
  if not batched:
    positions, radius = positions[None], radius[None]
  n, num_frames, num_balls, _ = positions.shape
  coords = np.linspace(0.0, 1.0, resolution)
  grid_x = coords[None, None, :]
  grid_y = coords[::-1][None, :, None]
  frames = np.empty((n, num_frames, resolution, resolution, 3), np.uint8)
  for video in range(n):
    canvas = np.full((num_frames, resolution, resolution, 3), 255.0)
    for ball in range(num_balls):
      centre = positions[video, :, ball] / WORLD_SIZE
      radius_sq = (radius[video, ball] / WORLD_SIZE) ** 2
      dx = grid_x - centre[:, 0, None, None]
      dy = grid_y - centre[:, 1, None, None]
      distance_sq = dx**2 + dy**2
      alpha = np.clip((radius_sq - distance_sq) / (radius_sq * EDGE_WIDTH), 0.0, 1.0)[..., None]
      canvas = (1.0 - alpha) * canvas + alpha * colors[ball]
    frames[video] = canvas.astype(np.uint8)
  return frames if batched else frames[0]


def _single_ball_start_x(
  rng: np.random.Generator, radius: np.ndarray, speed: np.ndarray
) -> np.ndarray:
  """Start x leaving room for MIN_VISIBLE_FRAMES frames of travel, as in the study."""
  upper = WORLD_SIZE - (MIN_VISIBLE_FRAMES * speed * FRAME_DT + radius)
  fallback = radius + rng.uniform(0.0, MAX_EXTRA_START, radius.shape)
  return rng.uniform(radius, np.where(upper < radius, fallback, upper))


def sample_initial_state(rng: np.random.Generator, scene: str, n: int) -> InitialState:
  """Draws n initial states with the study's parameter ranges and placement rules.

  Args:
    rng: numpy random generator.
    scene: one of SCENES.
    n: number of videos.

  Returns:
    position [n, K, 2], velocity [n, K, 2], radius [n, K], colors [K, 3] and gravity (x, y).
  """
  if scene not in SCENES:
    raise ValueError(f"unknown scene {scene!r}; valid: {', '.join(SCENES)}")
  if scene == "collision":
    return _sample_collision(rng, n)
  radius = rng.uniform(*SINGLE_BALL_RADIUS, n)
  speed = rng.uniform(*SPEED, n)
  x = _single_ball_start_x(rng, radius, speed)
  top = WORLD_SIZE - MARGIN - radius
  if scene == "uniform_motion":
    y, gravity = rng.uniform(radius + MARGIN, top), (0.0, 0.0)
  else:
    y, gravity = rng.uniform(top - PARABOLA_HEIGHT_RANGE, top), PARABOLA_GRAVITY
  position = np.stack([x, y], -1)[:, None]
  velocity = np.stack([speed, np.zeros(n)], -1)[:, None]
  return position, velocity, radius[:, None], np.array([RED]), gravity


def _sample_collision(rng: np.random.Generator, n: int) -> InitialState:
  """Head-on collision: red moving right meets blue moving left at a time in the contact window.

  The contact time is capped so that both balls start inside the world when that is possible.
  """
  radius = rng.uniform(*COLLISION_RADIUS, (n, 2))
  speed = rng.uniform(*SPEED, (n, 2))
  max_radius = radius.max(-1)
  y = rng.uniform(max_radius + MARGIN, WORLD_SIZE - MARGIN - max_radius)
  closing_speed = speed.sum(-1)
  radius_sum = radius.sum(-1)
  fits_until = (WORLD_SIZE - 2.0 * radius_sum) / closing_speed
  contact_time = rng.uniform(
    MIN_CONTACT_TIME, np.clip(fits_until, MIN_CONTACT_TIME, MAX_CONTACT_TIME)
  )
  distance = radius_sum + closing_speed * contact_time
  left_x = rng.uniform(radius[:, 0], np.maximum(radius[:, 0], WORLD_SIZE - radius[:, 1] - distance))
  x = np.stack([left_x, left_x + distance], -1)
  position = np.stack([x, np.repeat(y[:, None], 2, -1)], -1)
  velocity = np.stack([speed * np.array([1.0, -1.0]), np.zeros((n, 2))], -1)
  return position, velocity, radius, np.array([RED, BLUE]), (0.0, 0.0)


def generate_videos(
  rng: np.random.Generator,
  scene: str,
  n: int,
  resolution: int = 128,
  num_frames: int = NUM_FRAMES,
) -> np.ndarray:
  """The whole reference pipeline: sample, simulate and render n videos, uint8 [n, T, H, W, 3]."""
  position, velocity, radius, colors, gravity = sample_initial_state(rng, scene, n)
  positions, _ = simulate(position, velocity, radius, gravity, num_frames)
  return render(positions, radius, colors, resolution)
