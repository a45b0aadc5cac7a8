"""The training-video cache: the streaming run's first batches, 8-bit, sharded, drawn uniformly."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import runs

import sims
from experiments import train
from worldmodel import data, sharding, video_cache

BATCH, FRAMES, RESOLUTION = 8, 4, 16


def streaming_batches(mesh):
  scene = sims.make("uniform_motion")
  key = jax.random.key(0)
  return jax.jit(
    lambda step: data.sharded_video_batch(
      scene, "train", jax.random.fold_in(key, step), BATCH, FRAMES, RESOLUTION, mesh
    )
  )


def test_cache_holds_the_streaming_batches_in_8_bits_sharded_like_a_batch():
  mesh = sharding.make_mesh(4, 2)
  batch_fn = streaming_batches(mesh)
  cache = video_cache.build_cache(batch_fn, 3 * BATCH, BATCH, mesh)
  assert cache.shape == (3 * BATCH, FRAMES, RESOLUTION, RESOLUTION, 3) and cache.dtype == jnp.uint8
  assert cache.sharding.spec[0] == sharding.AXIS_NAMES
  for step in range(3):
    expected = np.round(np.asarray(batch_fn(step)) * 255)
    np.testing.assert_array_equal(cache[step * BATCH : (step + 1) * BATCH], expected)


def test_draws_are_cache_videos_and_depend_on_the_key_only():
  mesh = sharding.make_mesh(8, 1)
  cache = video_cache.build_cache(streaming_batches(mesh), 2 * BATCH, BATCH, mesh)
  single = jax.device_put(np.asarray(cache), jax.devices()[0])
  drawn = np.asarray(jax.jit(video_cache.draw, static_argnums=2)(cache, jax.random.key(5), 32))
  again = np.asarray(video_cache.draw(single, jax.random.key(5), 32))
  np.testing.assert_array_equal(drawn, again)  # the same on one device as on eight
  flat = np.asarray(cache, np.float32).reshape(2 * BATCH, -1)
  distances = np.abs(np.round(drawn * 255).reshape(32, 1, -1) - flat[None]).max(-1)
  assert (distances.min(1) == 0).all()  # every drawn video is one of the cache's
  assert len(np.unique(distances.argmin(1))) > BATCH  # drawn from the whole cache


def test_bad_cache_sizes_are_refused_before_simulating():
  mesh = sharding.make_mesh(8, 1)
  with pytest.raises(ValueError, match=r"data.cache=12 must be a positive multiple of batch_size"):
    video_cache.check_cache(12, BATCH, FRAMES, RESOLUTION, mesh)
  with pytest.raises(ValueError, match=r"data.cache=\d+ needs [\d.]+ GiB per device"):
    video_cache.check_cache(BATCH * 10**7, BATCH, 32, 256, mesh)
  assert video_cache.check_cache(4 * BATCH, BATCH, FRAMES, RESOLUTION, mesh) == (
    4 * BATCH * FRAMES * RESOLUTION**2 * 3 // 8
  )


def cached_config():
  config = runs.micro_config(num_steps=3)
  config.data.cache = 2 * config.batch_size
  config.log_every_steps = 1
  return config


@pytest.mark.slow
def test_the_trainers_cache_holds_the_streaming_runs_first_batches():
  config = cached_config()
  experiment = train.make_experiment(config)
  base_key = jax.random.key(config.seed)
  cache = train._build_video_cache(experiment, "train", None, base_key)
  for step in range(2):
    data_key = train.step_keys(base_key, step)[0]
    streamed = np.round(np.asarray(experiment.video_batch("train", data_key)) * 255)
    np.testing.assert_array_equal(cache[step * 8 : (step + 1) * 8], streamed)


@pytest.mark.slow
def test_a_cached_run_trains(tmp_path):
  config = cached_config()
  state = train.run(config, str(tmp_path))
  assert int(state["step"]) == 3
  lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
  losses = [json.loads(line)["loss"] for line in lines if '"loss"' in line]
  assert len(losses) == 3 and all(np.isfinite(losses))


def test_a_too_large_cache_stops_the_run_before_it_writes_anything(tmp_path):
  config = runs.micro_config(num_steps=3)
  config.data.cache = config.batch_size * 10**8
  with pytest.raises(ValueError, match=r"data.cache=800000000 needs [\d.]+ GiB per device"):
    train.run(config, str(tmp_path / "run"))
  assert not (tmp_path / "run").exists()
