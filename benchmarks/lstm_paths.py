"""The two CPU inference paths of the BiLSTM, side by side by batch size.

The folded loop (`folded_bilstm._FoldedDirection`: one `while_loop` step per
token) against TensorFlow's fused sequence kernel (`_FusedDirection`:
`BlockLSTMV2`), on the default full-profile network (30,000 words, 128-dim
embeddings, 64 units), for batches of 1 to 256 reviews of one length. The
weights are random: time does not depend on their values, and equality of
the two paths is checked here and in tests/test_model.py. Rounds alternate
the two paths, so a drift of the host hits both; medians over rounds.
`serving_fused_max_batch` is the largest batch size at which the fused
kernel is faster.

  python benchmarks/lstm_paths.py --intra-op-threads 1 --inter-op-threads 2
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from typing import List, Optional

import common  # noqa: F401  (sets TF env before TensorFlow loads)
import numpy as np
import tensorflow as tf

from imdb_sentiment.pipeline.config import profile_config
from imdb_sentiment.trainer.folded_bilstm import FoldedNetwork
from imdb_sentiment.trainer.model import build_model


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokens", type=int, default=230, help="review length (eval median: 230)")
    parser.add_argument("--batch-sizes", default="1,2,4,8,16,32,64,256")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--calls", type=int, default=20, help="calls per path per round")
    parser.add_argument("--intra-op-threads", type=int, default=1)
    parser.add_argument("--inter-op-threads", type=int, default=2)
    args = parser.parse_args(argv)
    tf.config.threading.set_intra_op_parallelism_threads(args.intra_op_threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.inter_op_threads)

    hparams = profile_config("full").trainer
    vocabulary = hparams.vocab_size
    model = build_model(hparams, vocabulary)
    rng = np.random.default_rng(0)
    model.set_weights([w + rng.normal(0, 0.05, w.shape).astype(w.dtype) for w in model.get_weights()])
    folded = FoldedNetwork(model, fused_max_batch=0)
    fused = FoldedNetwork(model, fused_max_batch=1 << 30)
    rows, results = [], {}
    for size in [int(s) for s in args.batch_sizes.split(",")]:
        ids = tf.constant(rng.integers(1, vocabulary + 2, (size, args.tokens)), tf.int64)
        difference = float(np.max(np.abs(folded(ids)[0].numpy() - fused(ids)[0].numpy())))
        times = {"folded loop": [], "fused kernel": []}
        for _ in range(args.rounds):
            for name, network in (("folded loop", folded), ("fused kernel", fused)):
                start = time.perf_counter()
                for _ in range(args.calls):
                    network(ids)
                times[name].append((time.perf_counter() - start) * 1000 / args.calls)
        medians = {name: statistics.median(values) for name, values in times.items()}
        results[size] = {**{k: round(v, 3) for k, v in medians.items()}, "max_difference": difference}
        rows.append({"batch": size, "folded loop ms": f"{medians['folded loop']:.2f}",
                     "fused kernel ms": f"{medians['fused kernel']:.2f}",
                     "fused / folded": f"{medians['fused kernel'] / medians['folded loop']:.2f}",
                     "max |difference|": f"{difference:.1e}"})
    print(f"{args.tokens} tokens; threads: intra-op {args.intra_op_threads}, "
          f"inter-op {args.inter_op_threads}; medians of {args.rounds} alternating rounds")
    print(common.table(rows, list(rows[0])))
    faster = [size for size, r in results.items() if r["fused kernel"] < r["folded loop"]]
    print(f"fused kernel faster at batch sizes: {faster}")
    path = common.write_result("lstm_paths", {"tokens": args.tokens, "results": results,
                                              "intra_op_threads": args.intra_op_threads,
                                              "inter_op_threads": args.inter_op_threads})
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
