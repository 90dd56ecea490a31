"""Training throughput of the default model under TensorFlow thread-pool settings.

Thread pools are fixed once TensorFlow starts, so each measurement runs in
its own process; settings alternate over `--rounds` so the VM's drift hits
them alike. Each process builds the `full` profile's model (adversarial
training included) and times `--steps` training steps on batches of 64
synthetic reviews, padded to 400 like the pipeline's and bucketed by length
(lengths drawn around the eval split's, median ~200 tokens; the arithmetic
depends on the lengths, not the words).

  python benchmarks/train_threads.py --settings "0/0;1/2" --rounds 3
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from typing import List, Optional

import common


def measure(intra: int, inter: int, steps: int, warmup: int = 5) -> float:
    """Reviews/s of `steps` training steps in this process."""
    import numpy as np
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(intra)
    tf.config.threading.set_inter_op_parallelism_threads(inter)
    import tf_keras as keras

    from imdb_sentiment.pipeline.config import profile_config
    from imdb_sentiment.trainer.model import build_model, compile_model

    hparams = profile_config("full").trainer
    keras.utils.set_random_seed(0)
    model = build_model(hparams, hparams.vocab_size)
    compile_model(model, hparams, total_steps=1000)
    rng = np.random.default_rng(0)
    ids = np.zeros((warmup + steps, hparams.batch_size, hparams.max_sequence_length), np.int64)
    for batch in ids:
        longest = int(np.clip(rng.lognormal(5.3, 0.65), 20, hparams.max_sequence_length))
        for row in batch:
            length = max(5, longest - int(rng.integers(0, 16)))
            row[:length] = rng.integers(2, hparams.vocab_size, length)
    labels = rng.integers(0, 2, (warmup + steps, hparams.batch_size, 1)).astype(np.float32)
    dataset = tf.data.Dataset.from_tensor_slices((ids, labels))
    model.fit(dataset.take(warmup), epochs=1, verbose=0)
    start = time.perf_counter()
    model.fit(dataset.skip(warmup), epochs=1, verbose=0)
    return steps * hparams.batch_size / (time.perf_counter() - start)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--settings", default="0/0;1/2",
                        help="intra/inter pairs, ';'-separated (0 = TensorFlow's default)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--child", default="", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        intra, inter = (int(v) for v in args.child.split("/"))
        print(json.dumps({"reviews_per_second": measure(intra, inter, args.steps)}))
        return 0
    settings = [s.strip() for s in args.settings.split(";") if s.strip()]
    rates = {s: [] for s in settings}
    for round_index in range(args.rounds):
        for setting in settings:
            rate = common.child_result(__file__, "--child", setting,
                                       "--steps", str(args.steps))["reviews_per_second"]
            rates[setting].append(round(rate, 1))
            print(f"round {round_index + 1}, intra/inter {setting}: {rate:.1f} reviews/s",
                  flush=True)
    baseline = statistics.median(rates[settings[0]])
    rows = [{"intra/inter (0 = TF default)": s, "reviews/s per round": " / ".join(map(str, r)),
             "median": round(statistics.median(r), 1),
             f"vs {settings[0]}": f"{statistics.median(r) / baseline:.2f}x"}
            for s, r in rates.items()]
    print(common.table(rows, list(rows[0])))
    path = common.write_result("train-threads", {"steps": args.steps, "rates": rates})
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
