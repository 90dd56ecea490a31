"""Serving latency of an exported model on CPU, raw text in (transform included).

Loads the SavedModel with TensorFlow (as TF Serving's runtime would) and
times the `serving_default` signature on serialized tf.Examples:
- one review of median length (eval split), repeated: p50 / p90 / p99 ms;
- batches of 256 eval reviews: reviews per second (median over batches).
The `explain` signature (raw strings in) is timed the same way for reference.
With `--chunk-sweep 32,64,128,256` it also times the transform alone and the
networks alone (the Keras model and, if exported, the folded network) on one
length-sorted batch cut into chunks of each size (what `serving_chunk_size`
trades off), to show where serving time goes.
`--intra-op-threads` / `--inter-op-threads` set TensorFlow's thread pools as
TF Serving's `--tensorflow_intra_op_parallelism` / `--tensorflow_inter_op_parallelism`
flags do (on 2 cores, 1 / 2 is much faster than the defaults: README).

With several `--model`s (e.g. `export_variants.py`'s folded and fused exports)
the models are loaded in one process and measured in alternating rounds
(`--rounds`), so a drift of the host hits every model alike; medians over rounds.

  python benchmarks/serving_latency.py --model pipeline_home/serving/imdb_sentiment
  python benchmarks/serving_latency.py --model /tmp/v/folded --model /tmp/v/fused --rounds 5 \
      --intra-op-threads 1 --inter-op-threads 2
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional

import common  # noqa: F401  (sets TF env before TensorFlow loads)
import numpy as np
import tensorflow as tf

from imdb_sentiment.components import imdb_data
from imdb_sentiment.reporting import serving_client
from imdb_sentiment.pipeline.config import IngestionConfig


def eval_reviews(data: Path) -> List[str]:
    rule = IngestionConfig().split_rule()
    return [r.text for r in imdb_data.read_reviews(data, imdb_data.ReadReport())
            if rule.split_of(r) == "eval"]


def timings_ms(call: Callable[[], object], repeats: int, warmup: int = 10) -> List[float]:
    for _ in range(warmup):
        call()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        samples.append((time.perf_counter() - start) * 1000)
    return samples


def percentiles(samples: List[float]) -> Dict[str, float]:
    return {f"p{q}": round(float(np.percentile(samples, q)), 2) for q in (50, 90, 99)}


def chunk_sweep(model, examples: tf.Tensor, sizes: List[int]) -> Dict[str, float]:
    """Reviews/s of the transform alone, and of the networks alone per chunk size.

    Times the Keras classifier and, in a model exported with the embedding
    folded into the LSTM (`serving_folded_lstm`), the folded network that
    the signatures run: same weights, side by side.
    """
    if not sizes:
        return {}
    transform = model.signatures["transform_features"]
    ids = transform(examples=examples)["token_ids"]
    count = int(ids.shape[0])
    lengths = tf.reduce_sum(tf.cast(ids != 0, tf.int32), axis=1)
    ordered = tf.gather(ids, tf.argsort(lengths, stable=True))

    def rate(call: Callable[[], object]) -> float:
        return round(count / (statistics.median(timings_ms(call, 10, warmup=2)) / 1000), 1)

    results = {"transform_features alone": rate(lambda: transform(examples=examples))}
    networks = {"Keras model": lambda ids: model(ids, training=False)}
    if hasattr(getattr(model, "inference_network", None), "forward"):
        networks["folded network"] = model.inference_network
    for size in sizes:
        for name, network in networks.items():
            def chunks(size=size, network=network):
                for start in range(0, count, size):
                    network(ordered[start:start + size])
            results[f"{name} alone, sorted chunks of {size}"] = rate(chunks)
    return results


def compare(args) -> int:
    """serving_default of several models, one review and batches, in alternating rounds."""
    models = {}
    for given in args.model:
        model_dir = serving_client.resolve_model_dir(given)
        models[str(given)] = tf.saved_model.load(str(model_dir)).signatures["serving_default"]
    reviews = eval_reviews(args.data)
    median_review = sorted(reviews, key=lambda r: len(r.split()))[len(reviews) // 2]
    single = serving_client.serialize_reviews([median_review])
    rng = np.random.default_rng(0)
    batches = [serving_client.serialize_reviews(list(rng.choice(reviews, args.batch_size)))
               for _ in range(args.batches)]
    single_p50: Dict[str, List[float]] = {name: [] for name in models}
    rates: Dict[str, List[float]] = {name: [] for name in models}
    for _ in range(args.rounds):
        for name, serve in models.items():
            single_p50[name].append(float(np.percentile(
                timings_ms(lambda: serve(examples=single), args.repeats), 50)))
            serve(examples=batches[0])
            for batch in batches:
                start = time.perf_counter()
                serve(examples=batch)
                rates[name].append(args.batch_size / (time.perf_counter() - start))
    rows = [{"model": name,
             "1 review p50 ms (median of rounds)": round(statistics.median(single_p50[name]), 2),
             "per round": " ".join(f"{v:.2f}" for v in single_p50[name]),
             f"batch {args.batch_size} reviews/s (median)": round(statistics.median(rates[name]), 1)}
            for name in models]
    print(f"median review: {len(median_review.split())} words; {args.rounds} alternating rounds of "
          f"{args.repeats} single requests and {args.batches} batches; threads: intra-op "
          f"{args.intra_op_threads or 'default'}, inter-op {args.inter_op_threads or 'default'}")
    print(common.table(rows, list(rows[0])))
    path = common.write_result("serving_compare", {
        "models": list(models), "median_review_words": len(median_review.split()),
        "rounds": args.rounds, "single_p50_ms": single_p50, "batch_reviews_per_second": rates,
        "intra_op_threads": args.intra_op_threads, "inter_op_threads": args.inter_op_threads})
    print(f"wrote {path}")
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, action="append",
                        help="SavedModel dir or serving dir; repeat to compare in alternation")
    parser.add_argument("--rounds", type=int, default=1,
                        help="alternating rounds when comparing models")
    parser.add_argument("--data", type=Path, default=common.DEFAULT_DATA)
    parser.add_argument("--repeats", type=int, default=300)
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--chunk-sweep", default="", help="e.g. 32,64,128,256")
    parser.add_argument("--intra-op-threads", type=int, default=0,
                        help="TF Serving's --tensorflow_intra_op_parallelism (0: TF's default)")
    parser.add_argument("--inter-op-threads", type=int, default=0,
                        help="TF Serving's --tensorflow_inter_op_parallelism (0: TF's default)")
    args = parser.parse_args(argv)
    # Must precede any TensorFlow op: thread pools are fixed once created.
    tf.config.threading.set_intra_op_parallelism_threads(args.intra_op_threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.inter_op_threads)

    if len(args.model) > 1:
        return compare(args)
    model_dir = serving_client.resolve_model_dir(args.model[0])
    model = tf.saved_model.load(str(model_dir))
    serve = model.signatures["serving_default"]
    explain = model.signatures["explain"]
    reviews = eval_reviews(args.data)
    by_length = sorted(reviews, key=lambda r: len(r.split()))
    median_review = by_length[len(by_length) // 2]

    single = serving_client.serialize_reviews([median_review])
    single_ms = timings_ms(lambda: serve(examples=single), args.repeats)
    single_text = tf.constant([median_review])
    explain_ms = timings_ms(lambda: explain(text=single_text), args.repeats)

    rng = np.random.default_rng(0)
    throughputs = []
    batches = [serving_client.serialize_reviews(list(rng.choice(reviews, args.batch_size)))
               for _ in range(args.batches)]
    serve(examples=batches[0])  # warm-up
    for batch in batches:
        start = time.perf_counter()
        serve(examples=batch)
        throughputs.append(args.batch_size / (time.perf_counter() - start))

    rows = [
        {"case": f"serving_default, 1 review ({len(median_review.split())} words, median)",
         **percentiles(single_ms)},
        {"case": "explain (raw text), 1 review", **percentiles(explain_ms)},
        {"case": f"serving_default, batch {args.batch_size}: reviews/s (median of {args.batches})",
         "p50": round(statistics.median(throughputs), 1)},
    ]
    sweep = chunk_sweep(model, batches[0], [int(c) for c in args.chunk_sweep.split(",") if c])
    rows += [{"case": f"{case}: reviews/s (median of 10)", "p50": value}
             for case, value in sweep.items()]
    print(f"model: {model_dir}; threads: intra-op {args.intra_op_threads or 'default'}, "
          f"inter-op {args.inter_op_threads or 'default'}")
    print(common.table(rows, ["case", "p50", "p90", "p99"]))
    path = common.write_result("serving", {
        "intra_op_threads": args.intra_op_threads, "inter_op_threads": args.inter_op_threads,
        "chunk_sweep": sweep,
        "model": model_dir.name, "median_review_words": len(median_review.split()),
        "single_review_ms": percentiles(single_ms), "explain_single_ms": percentiles(explain_ms),
        "batch_size": args.batch_size,
        "batch_reviews_per_second": {"median": round(statistics.median(throughputs), 1),
                                     "min": round(min(throughputs), 1)},
    })
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
