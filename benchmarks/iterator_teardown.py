"""What ending an epoch's input pipeline costs, with tf.data autotuning on and off.

Builds the Trainer's own training dataset (`train.make_dataset`) from the
transformed examples a finished local run left in its home, then for each
setting, alternating: one full pass with no model (the input pipeline
alone), and iterators kept alive for each of `--lifetimes` seconds while a
traced step draws batches at the pace of training (`--step-seconds` each),
as Keras' train function does, then destroyed, timed. Keras destroys its
last iterators when `fit` returns.

With autotuning on, the wait is whatever is left of the autotuning thread's
current sleep, which doubles from 10 ms to a 60 s ceiling over an iterator's
first 82 s: so it depends on the lifetime, and each lifetime is reported.

  python benchmarks/iterator_teardown.py --home <a finished run's home>
"""

from __future__ import annotations

import gc
import statistics
import sys
import time
from typing import Dict, List, Optional

import common  # noqa: F401  (sets TF env before TensorFlow loads)
import tensorflow as tf
import tensorflow_transform as tft

from imdb_sentiment.pipeline.config import profile_config
from imdb_sentiment.reporting.run_report import RunOutputs
from imdb_sentiment.trainer import train
from imdb_sentiment.trainer.datasets import with_autotuning


def full_pass_seconds(dataset: tf.data.Dataset) -> float:
    started = time.perf_counter()
    for _ in dataset:
        pass
    return time.perf_counter() - started


def teardown_seconds(dataset: tf.data.Dataset, lifetime: float, step_seconds: float) -> float:
    """Seconds to destroy an iterator that fed `lifetime` seconds of paced steps."""
    iterator = iter(dataset.repeat())

    @tf.function
    def step(batches) -> tf.Tensor:  # as Keras' train_function draws its batch: in the graph
        token_ids, labels = next(batches)
        return tf.reduce_sum(token_ids) + tf.cast(tf.reduce_sum(labels), tf.int64)

    started = time.perf_counter()
    while time.perf_counter() - started < lifetime:
        step(iterator)
        time.sleep(step_seconds)
    started = time.perf_counter()
    del iterator
    gc.collect()
    return time.perf_counter() - started


def main(argv: Optional[List[str]] = None) -> int:
    parser = common.finished_run_parser(__doc__)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--lifetimes", default="100,145",
                        help="comma-separated seconds an iterator lives (a full run's epoch: 140-195)")
    parser.add_argument("--step-seconds", type=float, default=0.3)
    args = parser.parse_args(argv)

    hparams = profile_config(args.profile).trainer
    outputs = RunOutputs(args.home)
    tft_output = tft.TFTransformOutput(outputs.uri("Transform", "transform_graph"))
    examples = outputs.uri("Transform", "transformed_examples")
    dataset, count = train.make_dataset(f"{examples}/Split-train/*",
                                        tft_output.transformed_feature_spec(), hparams, True)
    print(f"{count} training reviews from {examples}", flush=True)

    lifetimes = [float(value) for value in args.lifetimes.split(",")]
    keys = ["full_pass_s"] + [f"teardown_after_{lifetime:g}s" for lifetime in lifetimes]
    runs: Dict[str, Dict[str, List[float]]] = {
        name: {key: [] for key in keys} for name in ("autotune on", "autotune off")}
    for round_index in range(args.rounds):
        order = (True, False) if round_index % 2 == 0 else (False, True)
        for enabled in order:
            name = "autotune on" if enabled else "autotune off"
            variant = with_autotuning(dataset, enabled)
            runs[name]["full_pass_s"].append(full_pass_seconds(variant))
            for key, lifetime in zip(keys[1:], lifetimes):
                runs[name][key].append(teardown_seconds(variant, lifetime, args.step_seconds))
            print(f"  round {round_index + 1}, {name}: "
                  f"{ {k: round(v[-1], 2) for k, v in runs[name].items()} }", flush=True)
    rows = [{"setting": name, **{f"{key} (median)": round(statistics.median(values), 2)
                                 for key, values in r.items()}}
            for name, r in runs.items()]
    print()
    print(common.table(rows, list(rows[0])))
    path = common.write_result("iterator_teardown", {
        "home": str(args.home), "rounds": args.rounds, "lifetimes_s": lifetimes,
        "step_seconds": args.step_seconds, "runs": runs})
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
