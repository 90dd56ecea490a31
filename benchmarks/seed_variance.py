"""How much the full profile's result moves with the seed alone.

Trains the `full` profile's model once per seed on the same split (the
pipeline's train/eval split of `train/`), evaluating after every epoch as the
Trainer's early stopping does, and reports each run's best eval accuracy, the
epoch it came at, and the spread across seeds. The seed drives the weight
initialisation, the embedding pre-training's random projection, the shuffle
order and dropout.

  python benchmarks/seed_variance.py --seeds 42,7,1234
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import List, Optional

import common  # noqa: F401  (sets TF env before TensorFlow loads)

import train_benchmark


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=common.DEFAULT_DATA)
    parser.add_argument("--seeds", default="42,7,1234", help="comma-separated seeds")
    parser.add_argument("--sample-percent", type=int, default=100)
    args = parser.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    if len(seeds) < 2:
        parser.error("give at least two seeds")
    if not args.data.exists():
        print(f"no data at {args.data}; pass --data", file=sys.stderr)
        return 2
    train_split, eval_split = common.load_splits(args.data, args.sample_percent)
    # What run_variant reads of the training benchmark's arguments.
    run_args = argparse.Namespace(seed=seeds[0], eval_every=0, target=1.0, unsup_archive=None)
    runs = []
    for seed in seeds:
        started = time.perf_counter()
        result = train_benchmark.run_variant("project", {"seed": seed}, train_split, eval_split,
                                             run_args)
        per_epoch = [p["eval_accuracy"] for p in result["history"]]
        runs.append({"seed": seed, "best_eval_accuracy": result["best_eval_accuracy"],
                     "best_epoch": per_epoch.index(result["best_eval_accuracy"]) + 1,
                     "eval_accuracy_per_epoch": per_epoch,
                     "reviews_per_second": result["reviews_per_second"],
                     "wall_seconds": round(time.perf_counter() - started, 1),
                     "diverged": result["diverged"]})
        print(f"seed {seed}: {runs[-1]}", flush=True)
    best = [r["best_eval_accuracy"] for r in runs]
    summary = {"eval_reviews": len(eval_split[1]), "seeds": seeds,
               "mean": round(statistics.mean(best), 4),
               "stdev": round(statistics.stdev(best), 4),
               "range": round(max(best) - min(best), 4),
               "min": min(best), "max": max(best)}
    print()
    print(common.table(runs, ["seed", "best_eval_accuracy", "best_epoch", "eval_accuracy_per_epoch",
                              "reviews_per_second", "wall_seconds"]))
    print(f"\nbest eval accuracy over {len(seeds)} seeds: mean {summary['mean']}, "
          f"stdev {summary['stdev']}, range {summary['range']} "
          f"({summary['eval_reviews']} eval reviews)")
    path = common.write_result("seed_variance", {"summary": summary, "runs": runs})
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
