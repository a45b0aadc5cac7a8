"""Test setup: 8 fake CPU devices (set before JAX starts) and the `slow` marker."""

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ["XLA_FLAGS"] = (
  os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
).strip()

import pytest


def pytest_addoption(parser):
  parser.addoption("--runslow", action="store_true", help="also run tests marked slow")


def pytest_collection_modifyitems(config, items):
  if config.getoption("--runslow") or os.environ.get("RUN_SLOW") == "1":
    return
  skip = pytest.mark.skip(reason="slow: run with --runslow or RUN_SLOW=1")
  for item in items:
    if "slow" in item.keywords:
      item.add_marker(skip)
