"""What the adversarial training step costs to trace, and per step, on the default model.

Each measurement runs in a fresh process (a trace happens once per process):
the default classifier (`profile_config("full").trainer`, embeddings not
pre-trained) fits 2 steps on random token ids (its first `fit`: trace and
steps), then `--steps` more (its second `fit`: steps only). Variants,
alternated:

- `plain`: `adversarial_epsilon=0`, one forward and backward pass per step;
- `every_step`: every step perturbed (`adversarial_every=1`);
- `every_other_step`: the default, a `tf.cond` between a perturbed and a
  plain step (`adversarial_every=2`).

The trace is the first fit's seconds less its two steps at the second fit's
pace. Reports medians over `--repeats`.

    python benchmarks/adversarial_trace.py --repeats 2
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import time

from common import child_result, table, write_result

VARIANTS = {"plain": (0.0, 1), "every_step": (0.05, 1), "every_other_step": (0.05, 2)}


def measure(variant: str, steps: int) -> dict:
    """One variant in this process: build, first fit (trace + 2 steps), second fit."""
    import numpy as np
    import tensorflow as tf

    from imdb_sentiment.pipeline.config import profile_config
    from imdb_sentiment.trainer import train

    epsilon, every = VARIANTS[variant]
    hparams = dataclasses.replace(profile_config("full").trainer, pretrain_embeddings=False,
                                  adversarial_epsilon=epsilon, adversarial_every=every)
    rng = np.random.default_rng(0)
    rows = 64 * (steps + 2)
    tokens = rng.integers(2, hparams.vocab_size, size=(rows, hparams.max_sequence_length))
    labels = rng.integers(0, 2, size=rows).astype(np.float32)
    start = time.perf_counter()
    model = train.build_classifier(hparams, hparams.vocab_size, rows, tokens)
    built = time.perf_counter() - start
    data = tf.data.Dataset.from_tensor_slices((tokens, labels)).batch(hparams.batch_size).repeat()
    start = time.perf_counter()
    model.fit(data, steps_per_epoch=2, epochs=1, verbose=0)
    first = time.perf_counter() - start
    start = time.perf_counter()
    model.fit(data, steps_per_epoch=steps, epochs=1, verbose=0)
    per_step = (time.perf_counter() - start) / steps
    return {"build": built, "first_fit": first, "per_step": per_step,
            "trace": first - 2 * per_step}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--one", choices=sorted(VARIANTS), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:  # the child process
        print(json.dumps(measure(args.one, args.steps)))
        return
    runs = {variant: [] for variant in VARIANTS}
    for _ in range(args.repeats):
        for variant in VARIANTS:
            runs[variant].append(child_result(__file__, "--one", variant, "--steps", str(args.steps)))
            print(variant, runs[variant][-1], flush=True)
    rows = [{"variant": variant,
             **{f"{key} (median s)": round(statistics.median(r[key] for r in results), 3)
                for key in ("trace", "per_step", "build")}}
            for variant, results in runs.items()]
    print(table(rows, list(rows[0])))
    write_result("adversarial_trace", {"repeats": args.repeats, "steps": args.steps,
                                       "runs": runs, "medians": rows})


if __name__ == "__main__":
    main()
