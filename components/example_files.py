"""The files of an Examples artifact, read and written in one place.

TFX's ExampleGen layout: `<uri>/Split-<name>/data_tfrecord-<i>-of-<n>.gz`,
gzipped TFRecords of serialized tf.Examples (file format "tfrecords_gzip",
what StatisticsGen, Transform and the Evaluator read). ImdbExampleGen and
TeacherLabels write it; DataGate, TeacherLabels, ServedModelGate and the run
report read it.
"""

from __future__ import annotations

import os
from typing import Any, Iterable, List


def split_files(examples_uri: str, split: str) -> List[str]:
    import tensorflow as tf  # heavy; only executors and reports need it

    return sorted(tf.io.gfile.glob(os.path.join(examples_uri, f"Split-{split}", "*")))


def split_records(examples_uri: str, split: str) -> List[bytes]:
    """Every serialized tf.Example of a split, in file order."""
    import tensorflow as tf

    files = split_files(examples_uri, split)
    return list(tf.data.TFRecordDataset(files, compression_type="GZIP").as_numpy_iterator())


def split_examples(examples_uri: str, split: str) -> List[Any]:
    """Every tf.train.Example of a split."""
    import tensorflow as tf

    return [tf.train.Example.FromString(record) for record in split_records(examples_uri, split)]


def text_of(example: Any, feature: str) -> str:
    """A bytes feature decoded leniently ("" when absent)."""
    values = example.features.feature[feature].bytes_list.value
    return values[0].decode("utf-8", errors="replace") if values else ""


def write_split(examples_uri: str, split: str, records: Iterable[bytes], shards: int) -> int:
    """Writes serialized tf.Examples round-robin into `shards` files; returns how many."""
    import tensorflow as tf

    split_dir = os.path.join(examples_uri, f"Split-{split}")
    tf.io.gfile.makedirs(split_dir)
    options = tf.io.TFRecordOptions(compression_type="GZIP")
    writers = [tf.io.TFRecordWriter(
        os.path.join(split_dir, f"data_tfrecord-{i:05d}-of-{shards:05d}.gz"), options)
        for i in range(shards)]
    count = 0
    try:
        for record in records:
            writers[count % shards].write(record)
            count += 1
    finally:
        for writer in writers:
            writer.close()
    return count
