"""Compiled memory of a DiT training step under each attention implementation.

    python -m benchmarks.attention_memory                        # DiT-S, the study's video
    python -m benchmarks.attention_memory --impls=xla,blockwise

The video, patch size, attention kind, dtype and remat setting are the study's
(`experiments/configs/common.py`: 128 x 128 x 32 frames over (2, 8, 8) patches, 4,096 tokens).
For each implementation (`worldmodel/attention.py`; by default those the backend runs) the loss
and gradient of a step (loss: mean squared output, gradient w.r.t. the DiT's parameters) are
lowered and compiled for abstract inputs, never run, and XLA's memory analysis is read: temporary
bytes are the step's working memory besides its arguments and outputs. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import ml_collections
from flax import nnx

from experiments.configs import common
from worldmodel import attention, dit

_BACKEND_IMPLS = {"gpu": ("cudnn",), "tpu": ("splash",)}


def available_impls(backend: str) -> tuple[str, ...]:
  """The implementations that run on `backend`, in `attention.IMPLEMENTATIONS` order."""
  runnable = ("xla", "blockwise", *_BACKEND_IMPLS.get(backend, ()))
  return tuple(impl for impl in attention.IMPLEMENTATIONS if impl in runnable)


def step_memory(config: ml_collections.ConfigDict, args: argparse.Namespace, impl: str) -> dict:
  """Compile time and memory analysis of one loss-and-gradient step of the config's DiT, its
  attention computed by `impl`."""
  video, model = config.video, config.model
  abstract = nnx.eval_shape(
    lambda: dit.make_dit(
      args.size,
      num_frames=video.num_frames,
      resolution=video.resolution,
      patch_size=tuple(model.patch_size),
      attention=model.attention,
      attention_impl=impl,
      context_input=model.context_input,
      dtype=jnp.dtype(model.dtype),
      remat=model.remat,
      rngs=nnx.Rngs(0),
    )
  )
  graphdef, params, rest = nnx.split(abstract, nnx.Param, ...)

  def loss(params, noisy, diffusion_time, context, context_mask):
    output = nnx.merge(graphdef, params, rest)(noisy, diffusion_time, context, context_mask)
    return jnp.mean(jnp.square(output))

  frames = jax.ShapeDtypeStruct(
    (args.batch, video.num_frames, video.resolution, video.resolution, 3), jnp.float32
  )
  inputs = (
    frames,
    jax.ShapeDtypeStruct((args.batch,), jnp.float32),
    frames,
    jax.ShapeDtypeStruct((args.batch, video.num_frames), jnp.float32),
  )
  start = time.perf_counter()
  compiled = jax.jit(jax.value_and_grad(loss)).lower(params, *inputs).compile()
  result = {"compile_s": round(time.perf_counter() - start, 2)}
  analysis = compiled.memory_analysis()
  for name in ("temp", "argument", "output"):
    result[f"{name}_bytes"] = getattr(analysis, f"{name}_size_in_bytes", None)
  return result


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--size", default="S", choices=tuple(dit.SIZES))
  parser.add_argument("--batch", type=int, default=1)
  parser.add_argument(
    "--impls", default=None, help="comma-separated implementations (default: the backend's)"
  )
  return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> dict:
  args = parse_args(argv)
  backend = jax.default_backend()
  impls = args.impls.split(",") if args.impls else available_impls(backend)
  config = common.law_config("uniform_motion", size=args.size)
  tokens = dit.DiTConfig(
    num_frames=config.video.num_frames,
    resolution=config.video.resolution,
    patch_size=tuple(config.model.patch_size),
    **dit.SIZES[args.size],
  ).num_tokens
  report = {
    "backend": backend,
    "size": args.size,
    "tokens": tokens,
    "batch": args.batch,
    "dtype": config.model.dtype,
    "block_size": attention.BLOCK_SIZE,
  }
  for impl in impls:
    report[impl] = step_memory(config, args, impl)
  if "xla" in report and "blockwise" in report:
    xla, blockwise = report["xla"]["temp_bytes"], report["blockwise"]["temp_bytes"]
    if xla and blockwise is not None:
      report["blockwise_over_xla_temp"] = round(blockwise / xla, 4)
  print(json.dumps(report, indent=2))
  return report


if __name__ == "__main__":
  main()
