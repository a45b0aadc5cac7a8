"""Fixed evaluation sets as TFDS datasets in array_record files, built and read without TensorFlow.

An eval set is a TFDS dataset `name` under `data_dir` (files in `data_dir/name/1.0.0/`) whose
splits hold one example per video: `frames` uint8 [T, H, W, 3] (zlib-compressed on disk),
`params` [P], `position` [T, K, 2], `velocity` [T, K, 2], `radius` [K], an optional string
`level` and any further arrays. The features are derived from the arrays given; the metadata
(a JSON-serializable dict) lands in `metadata.json` beside the data. Examples keep their order.

write_eval_set("/data/eval", "uniform_motion_eval", {"id": arrays, "ood_v_low": ...}, metadata)
splits, metadata = read_eval_set("/data/eval", "uniform_motion_eval")
source = tfds.data_source("uniform_motion_eval", data_dir="/data/eval")  # random access

Only numpy-backed TFDS features are used, so neither writing nor reading imports TensorFlow.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import tensorflow_datasets as tfds

DATASET_VERSION = "1.0.0"
REQUIRED_FIELDS = ("frames", "params", "position", "velocity", "radius")
_NAME = re.compile(r"[a-z][a-z0-9_]*")
_SPLIT = re.compile(r"[A-Za-z0-9_]+")

Split = dict[str, np.ndarray]


def write_eval_set(
  data_dir: str,
  name: str,
  splits: Mapping[str, Mapping[str, np.ndarray]],
  metadata: Mapping[str, Any] | None = None,
  overwrite: bool = False,
) -> str:
  """Writes `splits` (split name -> equal-length arrays) as eval set `name`; returns its directory.

  Every split must have the same fields with the same per-example shapes and dtypes. An existing
  eval set of that name is replaced only with `overwrite=True`.
  """
  if not _NAME.fullmatch(name):
    raise ValueError(f"eval set name {name!r} must be lower_snake_case (letters, digits, _)")
  if name in tfds.list_builders(with_community_datasets=False):
    raise ValueError(f"eval set name {name!r} is a TFDS catalog dataset; choose another name")
  splits = {
    split: {k: np.asarray(v) for k, v in arrays.items()} for split, arrays in splits.items()
  }
  features = _features(splits)
  dataset_dir = os.path.join(data_dir, name)
  if os.path.exists(dataset_dir):
    if not overwrite:
      raise FileExistsError(f"eval set {name!r} already exists in {data_dir}; pass overwrite=True")
    shutil.rmtree(dataset_dir)
  builder = _builder_class(name, features, splits, dict(metadata or {}))(
    data_dir=data_dir, file_format="array_record"
  )
  with tempfile.TemporaryDirectory() as download_dir:
    builder.download_and_prepare(download_dir=download_dir)
  return os.fspath(builder.data_dir)


def read_eval_set(
  data_dir: str, name: str, splits: Sequence[str] | None = None
) -> tuple[dict[str, Split], dict[str, Any]]:
  """Loads every split (or the named `splits`) fully into numpy arrays, plus the metadata.

  String fields (such as `level`) come back as numpy str arrays.
  """
  version_dir = os.path.join(data_dir, name, DATASET_VERSION)
  if not os.path.exists(os.path.join(version_dir, "dataset_info.json")):
    found = sorted(p.split(os.sep)[-3] for p in glob.glob(f"{data_dir}/*/*/dataset_info.json"))
    raise FileNotFoundError(
      f"no eval set {name!r} in {data_dir} (eval sets there: {', '.join(found) or 'none'})"
    )
  builder = tfds.builder_from_directory(version_dir)
  available = list(builder.info.splits)
  for split in splits or ():
    if split not in available:
      raise KeyError(f"eval set {name!r} has no split {split!r} (splits: {', '.join(available)})")
  source = builder.as_data_source()
  text_fields = [k for k, f in builder.info.features.items() if isinstance(f, tfds.features.Text)]
  arrays = {split: _stack(source[split], text_fields) for split in splits or available}
  return arrays, dict(builder.info.metadata or {})


def _features(splits: dict[str, Split]) -> tfds.features.FeaturesDict:
  """One feature per field, checked to agree across splits."""
  if not splits:
    raise ValueError("an eval set needs at least one split")
  reference_split, specs = None, None
  for split, arrays in splits.items():
    if not _SPLIT.fullmatch(split):
      raise ValueError(f"split name {split!r} must use only letters, digits and _")
    missing = [f for f in REQUIRED_FIELDS if f not in arrays]
    if missing:
      raise ValueError(f"split {split!r} lacks fields {', '.join(missing)}")
    lengths = {k: len(v) for k, v in arrays.items()}
    if len(set(lengths.values())) != 1:
      raise ValueError(f"split {split!r} has fields of different lengths: {lengths}")
    if not lengths["frames"]:
      raise ValueError(f"split {split!r} is empty")
    frames = arrays["frames"]
    if frames.dtype != np.uint8 or frames.ndim != 5 or frames.shape[-1] != 3:
      raise ValueError(
        f"split {split!r}: frames must be uint8 [N, T, H, W, 3], got {frames.dtype} {frames.shape}"
      )
    split_specs = {k: (v.shape[1:], _kind(v)) for k, v in arrays.items()}
    if specs is None:
      reference_split, specs = split, split_specs
    elif split_specs != specs:
      raise ValueError(
        f"split {split!r} fields {split_specs} differ from split {reference_split!r}: {specs}"
      )
  features = {}
  for field, (shape, kind) in specs.items():
    if kind == "str":
      features[field] = tfds.features.Text()
    elif field == "frames":
      features[field] = tfds.features.Tensor(
        shape=shape, dtype=np.uint8, encoding=tfds.features.Encoding.ZLIB
      )
    else:
      features[field] = tfds.features.Tensor(shape=shape, dtype=np.dtype(kind))
  return tfds.features.FeaturesDict(features)


def _kind(array: np.ndarray) -> str:
  return "str" if array.dtype.kind in "USO" else array.dtype.name


def _builder_class(
  dataset_name: str,
  features: tfds.features.FeaturesDict,
  splits: dict[str, Split],
  metadata: dict[str, Any],
) -> type[tfds.core.GeneratorBasedBuilder]:
  """An unregistered builder class writing `splits` as dataset `dataset_name`."""

  class EvalSet(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    name = dataset_name
    VERSION = tfds.core.Version(DATASET_VERSION)
    code_path = None  # no source directory, so no download checksums file to look for

    def _info(self) -> tfds.core.DatasetInfo:
      return tfds.core.DatasetInfo(
        builder=self,
        features=features,
        metadata=tfds.core.MetadataDict(metadata),
        disable_shuffling=True,
      )

    def _split_generators(self, dl_manager):
      return {split: self._generate_examples(arrays) for split, arrays in splits.items()}

    def _generate_examples(self, arrays):
      for index in range(len(arrays["frames"])):
        yield index, {field: values[index] for field, values in arrays.items()}

  return EvalSet


def _stack(source, text_fields: Sequence[str]) -> Split:
  examples = source.__getitems__(range(len(source)))
  return {
    field: np.asarray([x[field].decode() for x in examples])
    if field in text_fields
    else np.stack([x[field] for x in examples])
    for field in examples[0]
  }
