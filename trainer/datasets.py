"""tf.data settings shared by the trainers' input pipelines.

Both trainers read their examples once into memory (`cache`) and then only
shuffle, batch and prefetch, so tf.data's autotuning has nothing to tune.
It does cost time: the autotuning loop sleeps for a period that doubles up
to a minute, and destroying an iterator that a traced step drew from waited
for the rest of that sleep. Keras destroys its last iterators when `fit`
returns, so a long fit ended with up to a minute of idle waiting
(docs/benchmarks.md, `benchmarks/iterator_teardown.py`).
"""

from __future__ import annotations

import os

import tensorflow as tf

#: Batches ready ahead of the model: one in use, one being assembled.
PREFETCH_BATCHES = 2


def parallel_calls() -> int:
    """Threads for a parallel `map`: one per core."""
    return max(1, os.cpu_count() or 1)


def with_autotuning(dataset: tf.data.Dataset, enabled: bool) -> tf.data.Dataset:
    """The dataset with tf.data's autotuning turned on or off."""
    options = tf.data.Options()
    options.autotune.enabled = enabled
    return dataset.with_options(options)


def fixed_parallelism(dataset: tf.data.Dataset) -> tf.data.Dataset:
    """The dataset with autotuning off; its parallelism is set explicitly."""
    return with_autotuning(dataset, enabled=False)
