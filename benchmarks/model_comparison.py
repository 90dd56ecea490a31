"""Exported models side by side on one split of a run, review by review.

For each model: accuracy with its 95% Wilson interval. For each pair: the
accuracy difference with a paired bootstrap 95% interval and the reviews only
one of them gets right. Optionally the average of the models' logits (an
ensemble), to see whether they err on different reviews.

Choosing reads `eval`; the split the project reports is `report`, read only to
report (docs/evaluation-protocol.md).

  python benchmarks/model_comparison.py --home pipeline_home --split eval \\
      --model bilstm=<SavedModel dir> --model linear=<SavedModel dir> [--ensemble]
  python benchmarks/model_comparison.py --home pipeline_home --split report --latest-run
"""

from __future__ import annotations

import argparse
import glob
import itertools
import os
from pathlib import Path
from typing import Dict, List, Tuple

import common  # noqa: F401  (sets TF env before TensorFlow loads)
import numpy as np
import tensorflow as tf

from imdb_sentiment.components.evaluation_results import wilson_interval
from imdb_sentiment.trainer import features


def newest(pattern: str) -> str:
    found = sorted(glob.glob(pattern), key=lambda p: int(p.rstrip("/").rsplit("/", 1)[1]))
    if not found:
        raise SystemExit(f"nothing matches {pattern}")
    return found[-1]


def split_records(home: Path, split: str) -> Tuple[List[bytes], np.ndarray]:
    uri = newest(str(home / "tfx" / "ImdbExampleGen" / "examples" / "*"))
    files = sorted(glob.glob(os.path.join(uri, f"Split-{split}", "*")))
    records = [r.numpy() for r in tf.data.TFRecordDataset(files, compression_type="GZIP")]
    labels = np.array([tf.train.Example.FromString(r).features.feature[features.LABEL]
                       .int64_list.value[0] for r in records])
    return records, labels


def probabilities(model_dir: str, records: List[bytes], batch: int = 256) -> np.ndarray:
    serve = tf.saved_model.load(model_dir).signatures["serving_default"]
    return np.concatenate([serve(examples=tf.constant(records[i:i + batch]))["probability"].numpy()
                           for i in range(0, len(records), batch)])


def paired_difference(right_a: np.ndarray, right_b: np.ndarray, resamples: int = 10000,
                      seed: int = 0) -> Dict[str, float]:
    rng = np.random.default_rng(seed)
    difference = right_a.astype(float) - right_b.astype(float)
    draws = rng.integers(0, len(difference), size=(resamples, len(difference)))
    means = difference[draws].mean(axis=1)
    return {"difference": round(float(difference.mean()), 4),
            "ci95": [round(float(np.percentile(means, 2.5)), 4),
                     round(float(np.percentile(means, 97.5)), 4)],
            "only_first_right": int(((right_a == 1) & (right_b == 0)).sum()),
            "only_second_right": int(((right_a == 0) & (right_b == 1)).sum())}


def latest_run_models(home: Path) -> Dict[str, str]:
    return {"bilstm": newest(str(home / "tfx" / "Trainer" / "model" / "*")) + "/Format-Serving",
            "linear": newest(str(home / "tfx" / "BaselineTrainer" / "model" / "*"))
            + "/Format-Serving"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, required=True, help="a local run's home")
    parser.add_argument("--split", default="eval", choices=("eval", "report", "test"))
    parser.add_argument("--model", action="append", default=[], metavar="NAME=DIR")
    parser.add_argument("--latest-run", action="store_true",
                        help="compare the home's latest BiLSTM and linear baseline")
    parser.add_argument("--ensemble", action="store_true", help="also score the mean logit")
    args = parser.parse_args()
    models = dict(m.split("=", 1) for m in args.model)
    if args.latest_run:
        models.update(latest_run_models(args.home))
    records, labels = split_records(args.home, args.split)
    scores = {name: probabilities(path, records) for name, path in models.items()}
    if args.ensemble and len(scores) > 1:
        logits = [np.log(np.clip(p, 1e-7, 1 - 1e-7) / np.clip(1 - p, 1e-7, 1)) for p in scores.values()]
        scores["mean logit of " + "+".join(models)] = 1 / (1 + np.exp(-np.mean(logits, axis=0)))
    right = {name: ((p >= 0.5) == (labels == 1)).astype(int) for name, p in scores.items()}
    print(f"{args.split} split: {len(labels)} reviews")
    rows = [{"model": name, "accuracy": f"{r.mean():.4f}",
             "95% interval": str(wilson_interval(float(r.mean()), len(r)))} for name, r in right.items()]
    print(common.table(rows, ["model", "accuracy", "95% interval"]))
    pairs = []
    for a, b in itertools.combinations(right, 2):
        result = paired_difference(right[a], right[b])
        pairs.append({"first - second": f"{a} - {b}", "difference": f"{result['difference']:+.4f}",
                      "paired 95% interval": str(result["ci95"]),
                      "only first / only second right":
                          f"{result['only_first_right']} / {result['only_second_right']}"})
    if pairs:
        print(common.table(pairs, list(pairs[0])))
    path = common.write_result(f"model_comparison-{args.split}", {
        "split": args.split, "reviews": len(labels), "models": models,
        "accuracy": {n: float(r.mean()) for n, r in right.items()}, "pairs": pairs})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
