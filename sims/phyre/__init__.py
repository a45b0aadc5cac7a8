"""The study's combinatorial world: PHYRE-like scenes of 4 of 8 object kinds, on jax2d.

    import sims
    scene = sims.make("phyre")                  # or sims.make("phyre", templates="6")
    state0 = scene.sample(key, 8, split="train")  # BodyState; "in_template", "out_of_template"
    traj = scene.rollout(state0, num_frames=32)   # sims.BodyTrajectory, frame k at k / 3 s
    frames = sims.render(traj, resolution=256)    # [8, 32, 256, 256, 3] in [0, 1]

The study ("How Far is Video Generation from World Model", section 5) built 70 templates, each
a combination of 4 of 8 object kinds (KINDS) plus a red ball, in a fork of PHYRE with 512 x 512
pixel scenes; templates 10000-10059 train, 10060-10069 are held out. This module re-creates it:

- Templates: TEMPLATE_KINDS maps each id to its kinds, ordered exactly as the study's generator
  orders them (`random.Random(4).shuffle` of the C(8, 4) combinations). TEMPLATE_SUBSETS holds
  its 6-, 30- and 60-template training sets.
- Slots: every kind owns fixed slots of the state (KIND_SLOTS; the red ball is slot 0), so shapes
  are static under jit / vmap; an example activates the slots of its template's kinds. Slots 0-9
  are discs, 10-20 boxes: the jar is three welded boxes (base and two walls) and the standing
  sticks two welded crossing boxes. Static bodies are black, dynamic ones gray, the red ball red.
- Units: PHYRE's unit square is the library's 10 x 10 world (y up); one scene pixel is PIXEL
  world units. Physics follows PHYRE's Box2D settings scaled to that world: 60 Hz steps, gravity
  9.8 m/s^2 at PHYRE's 6 pixels per metre (GRAVITY world units / s^2), friction 0.5,
  restitution 0.2, angular damping 0.01, one density for every body, walls around the square.
  Frames are PHYRE's: one every 20 steps (FRAME_DT = 1/3 s), frame 0 being the initial state
  (PHYRE records its first frame after one step).
- Engine (engine.py): jax2d's contact and joint models (impulses, no continuous collision,
  Baumgarte position correction in the velocities), applied only to the pairs a broad phase
  finds, which differs from Box2D. SOLVER_ITERATIONS (Box2D: 15 velocity + 20 position
  iterations) and BAUMGARTE = 0.1 (jax2d's default 0.2) keep stacked bodies from bouncing out
  with energy they never had; still, about one scene in a hundred gains a few per cent of its
  energy for a frame in a squeeze. Contacts are soft: bodies overlap by up to ~0.05 world units
  while resting and briefly by up to ~0.1 on impact. Welds (jar, sticks) are jax2d's fixed
  joints, rigid to ~0.02 world units.
- Tasks and trials: as in PHYRE, a template plus a task index fixes the objects (placed from a
  key derived from both), and each trial adds a red ball from its own key. Params per example
  are (template, task) int32; the study used 100 tasks per template and 990 training trials
  per task (`pool`), and drew in-template evaluation videos from further trials of the same
  tasks: `sample(key, n, "in_template")` with keys other than the training ones.
- Placement follows the study's builders (ranges of component_utils.py, PHYRE's shape geometry)
  with one change: nothing may overlap at t = 0. Each object is drawn up to OBJECT_CANDIDATES
  times and the first draw clear of everything placed before (by MIN_GAP, exact disc / box
  tests) is kept; an object with no clear draw is left out (its slots inactive), which the tests
  show does not happen in practice. Objects go in PLACEMENT_ORDER (static first). The red ball
  follows the study's action heuristic (next to a random object, radius from the scene's balls)
  with up to RED_BALL_CANDIDATES draws, then as many uniform ones, like PHYRE's fallback.

Public API: Phyre (the scene; `sample(key, n, split, templates=None)`, `place`, `rollout`,
`templates(split)`, `pool`, `eval_params`, `params_of`), BodyState, KINDS, KIND_SLOTS (slots of
each kind, "red_ball" included), SLOT_SHAPES / SLOT_DYNAMIC / SLOT_COLORS, TEMPLATE_KINDS,
TEMPLATE_SUBSETS, TRAIN_TEMPLATES, HELD_OUT_TEMPLATES, SPLITS, the colours RED / GRAY / BLACK,
separations and wall_penetration (exact overlap depths), mass_and_inertia, mechanical_energy,
and the physical constants of world.py. Trajectories are `sims.BodyTrajectory`, drawn by
`sims.render`.

Files: world.py (constants, kinds, slots, BodyState), templates.py (templates, subsets, splits),
geometry.py (overlaps, masses, energy), builders.py (the study's object builders), placement.py
(placing a task's objects and the red ball), contacts.py (jax2d's box-box contact manifold,
without sorts), engine.py (the simulator), scene.py (Phyre).
"""

from sims.core import WORLD_SIZE
from sims.phyre.engine import (
  CANDIDATES,
  CONTACT_POINTS,
  contact_load,
  simulate,
  simulate_with_jax2d,
)
from sims.phyre.geometry import mass_and_inertia, mechanical_energy, separations, wall_penetration
from sims.phyre.placement import (
  MIN_GAP,
  OBJECT_CANDIDATES,
  PLACEMENT_ORDER,
  RED_BALL_CANDIDATES,
)
from sims.phyre.scene import Phyre
from sims.phyre.templates import (
  AMBIGUITY,
  FIRST_TEMPLATE,
  HELD_OUT_TEMPLATES,
  SPLITS,
  TASKS_PER_TEMPLATE,
  TEMPLATE_KINDS,
  TEMPLATE_SETS,
  TEMPLATE_SUBSETS,
  TRAIN_TEMPLATES,
  TRIALS_PER_TASK,
)
from sims.phyre.world import (
  ANGULAR_DAMPING,
  BAR_THICKNESS,
  BAUMGARTE,
  BLACK,
  DENSITY,
  FRAME_DT,
  FRICTION,
  GRAVITY,
  GRAY,
  KIND_SLOTS,
  KINDS,
  NUM_DISCS,
  NUM_SLOTS,
  PHYSICS_HZ,
  PIXEL,
  PIXELS_PER_METRE,
  RED,
  RED_BALL,
  RESTITUTION,
  SCENE_PIXELS,
  SLOT_COLORS,
  SLOT_DYNAMIC,
  SLOT_SHAPES,
  SOLVER_ITERATIONS,
  STEPS_PER_FRAME,
  STICK_ANGLE,
  BodyState,
)

__all__ = [
  "AMBIGUITY",
  "ANGULAR_DAMPING",
  "BAR_THICKNESS",
  "BAUMGARTE",
  "BLACK",
  "CANDIDATES",
  "CONTACT_POINTS",
  "DENSITY",
  "FIRST_TEMPLATE",
  "FRAME_DT",
  "FRICTION",
  "GRAVITY",
  "GRAY",
  "HELD_OUT_TEMPLATES",
  "KINDS",
  "KIND_SLOTS",
  "MIN_GAP",
  "NUM_DISCS",
  "NUM_SLOTS",
  "OBJECT_CANDIDATES",
  "PHYSICS_HZ",
  "PIXEL",
  "PIXELS_PER_METRE",
  "PLACEMENT_ORDER",
  "RED",
  "RED_BALL",
  "RED_BALL_CANDIDATES",
  "RESTITUTION",
  "SCENE_PIXELS",
  "SLOT_COLORS",
  "SLOT_DYNAMIC",
  "SLOT_SHAPES",
  "SOLVER_ITERATIONS",
  "SPLITS",
  "STEPS_PER_FRAME",
  "STICK_ANGLE",
  "TASKS_PER_TEMPLATE",
  "TEMPLATE_KINDS",
  "TEMPLATE_SETS",
  "TEMPLATE_SUBSETS",
  "TRAIN_TEMPLATES",
  "TRIALS_PER_TASK",
  "WORLD_SIZE",
  "BodyState",
  "Phyre",
  "contact_load",
  "mass_and_inertia",
  "mechanical_energy",
  "separations",
  "simulate",
  "simulate_with_jax2d",
  "wall_penetration",
]
