"""ImdbExampleGen: the aclImdb archive in, gzipped tf.Example splits out.

A custom component rather than FileBasedExampleGen because the dataset's
layout carries the label and rating in folder and file names, its official
`test/` split must stay separate from the hash-made `eval` split, and TFX
does not allow input splits and hash-partitioned output splits together.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any, Dict, List

import tensorflow as tf
from tfx import types
from tfx.components.util import examples_utils
from tfx.dsl.components.base import base_component, base_executor, executor_spec
from tfx.proto import example_gen_pb2
from tfx.types import artifact_utils, standard_artifacts
from tfx.types.component_spec import ChannelParameter, ExecutionParameter

from . import imdb_data

#: Name of the JSON report written next to the splits.
REPORT_FILE = "ingestion_report.json"
SHARDS = {"train": 4, "eval": 1, "test": 2}


def review_to_example(review: imdb_data.Review) -> tf.train.Example:
    def _bytes(value: str) -> tf.train.Feature:
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value.encode("utf-8")]))

    def _int(value: int) -> tf.train.Feature:
        return tf.train.Feature(int64_list=tf.train.Int64List(value=[value]))

    return tf.train.Example(features=tf.train.Features(feature={
        "text": _bytes(review.text),
        "label": _int(review.label),
        "rating": _int(review.rating),
        "review_id": _bytes(review.review_id),
    }))


def write_splits(output_uri: str, data: str, cache_dir: str, eval_percent: int,
                 sample_percent: int, split_salt: str, max_skip_fraction: float) -> Dict[str, Any]:
    """Reads the dataset and writes `Split-<name>/data_tfrecord-*.gz`.

    Returns the report (also written as JSON next to the splits). Records of
    a split are written in hash order, so the files are shuffled yet
    byte-identical on every run.
    """
    source = imdb_data.resolve_source(data, Path(cache_dir))
    report = imdb_data.ReadReport()
    splits: Dict[str, List[tuple]] = {}
    for review in imdb_data.iter_reviews(source, report):
        if not imdb_data.in_sample(review, sample_percent, split_salt):
            continue
        split = imdb_data.assign_split(review, eval_percent, split_salt)
        order = imdb_data.hash_bucket(review.review_id, f"order:{split_salt}", 1 << 62)
        splits.setdefault(split, []).append((order, review))
        report.reviews += 1
        report.has_test_split |= split == "test"
        if report.reviews % 5000 == 0:
            logging.info("ImdbExampleGen: read %d reviews", report.reviews)
    imdb_data.check_report(report, source, max_skip_fraction)
    if "train" not in splits or "eval" not in splits:
        raise imdb_data.DataError(
            f"{source}: the sample is too small to make both a train and an eval split "
            f"(got {sorted(splits)}); raise sample_percent or eval_percent")

    counts: Dict[str, Dict[str, int]] = {}
    for split, records in sorted(splits.items()):
        records.sort(key=lambda pair: pair[0])
        split_dir = os.path.join(output_uri, f"Split-{split}")
        tf.io.gfile.makedirs(split_dir)
        shards = SHARDS.get(split, 1)
        options = tf.io.TFRecordOptions(compression_type="GZIP")
        writers = [tf.io.TFRecordWriter(
            os.path.join(split_dir, f"data_tfrecord-{i:05d}-of-{shards:05d}.gz"), options)
            for i in range(shards)]
        positives = 0
        for index, (_, review) in enumerate(records):
            writers[index % shards].write(review_to_example(review).SerializeToString(deterministic=True))
            positives += review.label
        for writer in writers:
            writer.close()
        counts[split] = {"reviews": len(records), "positive": positives}

    summary = {
        "source": os.path.basename(str(source)),
        "splits": counts,
        "skipped": report.skipped,
        "skipped_examples": report.skipped_examples,
        "has_test_split": report.has_test_split,
    }
    with tf.io.gfile.GFile(os.path.join(output_uri, REPORT_FILE), "w") as handle:
        handle.write(json.dumps(summary, indent=2))
    return summary


class Executor(base_executor.BaseExecutor):
    """Runs `write_splits` and marks the artifact like TFX's own ExampleGen."""

    def Do(self, input_dict: Dict[str, List[types.Artifact]],
           output_dict: Dict[str, List[types.Artifact]], exec_properties: Dict[str, Any]) -> None:
        examples = artifact_utils.get_single_instance(output_dict["examples"])
        summary = write_splits(
            output_uri=examples.uri,
            data=exec_properties["data"],
            cache_dir=exec_properties["cache_dir"],
            eval_percent=exec_properties["eval_percent"],
            sample_percent=exec_properties["sample_percent"],
            split_salt=exec_properties["split_salt"],
            max_skip_fraction=exec_properties["max_skip_fraction"],
        )
        examples.split_names = artifact_utils.encode_split_names(sorted(summary["splits"]))
        examples.span = 0
        examples.version = 0
        examples_utils.set_payload_format(examples, example_gen_pb2.FORMAT_TF_EXAMPLE)
        examples_utils.set_file_format(examples, "tfrecords_gzip")
        examples.set_string_custom_property("ingestion_report", json.dumps(summary))
        logging.info("ImdbExampleGen: %s", json.dumps(summary))


class ImdbExampleGenSpec(types.ComponentSpec):
    PARAMETERS = {
        "data": ExecutionParameter(type=str),
        "cache_dir": ExecutionParameter(type=str),
        "eval_percent": ExecutionParameter(type=int),
        "sample_percent": ExecutionParameter(type=int),
        "split_salt": ExecutionParameter(type=str),
        "max_skip_fraction": ExecutionParameter(type=float),
        # Changes when the local data changes, so the cache is not stale.
        "data_fingerprint": ExecutionParameter(type=str),
    }
    INPUTS: Dict[str, ChannelParameter] = {}
    OUTPUTS = {"examples": ChannelParameter(type=standard_artifacts.Examples)}


class ImdbExampleGen(base_component.BaseComponent):
    """Emits `train`, `eval` (hash of review id) and, when present, `test`."""

    SPEC_CLASS = ImdbExampleGenSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(Executor)

    def __init__(self, data: str, cache_dir: str, eval_percent: int = 10,
                 sample_percent: int = 100, split_salt: str = "imdb-v1",
                 max_skip_fraction: float = 0.01, data_fingerprint: str = ""):
        if not 0 < eval_percent < 100:
            raise ValueError(f"eval_percent must be in (0, 100), got {eval_percent}")
        if not 0 < sample_percent <= 100:
            raise ValueError(f"sample_percent must be in (0, 100], got {sample_percent}")
        spec = ImdbExampleGenSpec(
            data=data, cache_dir=cache_dir, eval_percent=eval_percent,
            sample_percent=sample_percent, split_salt=split_salt,
            max_skip_fraction=max_skip_fraction, data_fingerprint=data_fingerprint,
            examples=types.Channel(type=standard_artifacts.Examples))
        super().__init__(spec=spec)


def local_data_fingerprint(data: str) -> str:
    """Size and mtime of a local archive (or the newest file of a directory)."""
    path = Path(data).expanduser()
    if not data or not path.exists():
        return ""
    if path.is_file():
        stat = path.stat()
        return f"{stat.st_size}:{stat.st_mtime_ns}"
    newest, count = 0, 0
    for root, _, files in os.walk(path):
        for name in files:
            newest = max(newest, os.stat(os.path.join(root, name)).st_mtime_ns)
            count += 1
    return f"{count}:{newest}"
