"""Video world models: a Flax NNX video diffusion transformer and its diffusion objectives."""
