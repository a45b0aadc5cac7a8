"""Video world models: a Flax NNX video diffusion transformer and its diffusion objectives."""

from physworld import require_extra

require_extra("worldmodel", "train")
