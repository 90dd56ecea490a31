"""Re-exports one trained model both ways, for a side-by-side serving benchmark.

Reads a pipeline run's Trainer output (`<home>/tfx/Trainer/model/<id>/Format-Serving`,
whose Keras model carries the trained weights) and its Transform graph, and
writes two SavedModels from the same weights with the pipeline's own export:
`<out>/keras/1` (the Keras layers), `<out>/folded/1` (the embedding folded
into the LSTM's input projections, every batch through the folded loop) and
`<out>/fused/1` (the default: small batches through the fused LSTM kernel). It
checks that all give the same probabilities on eval reviews, one at a time and
in batches.

  python benchmarks/export_variants.py --home pipeline_home --out /tmp/variants
  python benchmarks/serving_latency.py --model /tmp/variants/keras --intra-op-threads 1 ...
  python benchmarks/serving_latency.py --model /tmp/variants/folded --intra-op-threads 1 ...
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import List, Optional, Tuple

import common  # noqa: F401  (sets TF env before TensorFlow loads)
import numpy as np
import tensorflow as tf
import tensorflow_transform as tft
import tf_keras as keras

from imdb_sentiment.reporting import serving_client
from imdb_sentiment.pipeline.config import profile_config
from imdb_sentiment.trainer import features
from imdb_sentiment.trainer import model as _registers_layers  # noqa: F401
from imdb_sentiment.trainer.signatures import export_serving_model
from serving_latency import eval_reviews


def latest(pattern: str, home: Path) -> Path:
    found = sorted(home.glob(pattern), key=lambda p: int(p.parts[-2] if p.name == "Format-Serving"
                                                         else p.name))
    if not found:
        raise SystemExit(f"no {pattern} under {home}: run the pipeline first")
    return found[-1]


def load_trained_run(home: Path, profile: str) -> Tuple[keras.Model, tft.TFTransformOutput, int]:
    """A finished run's trained classifier, its Transform output and vocabulary size."""
    trained_dir = latest("tfx/Trainer/model/*/Format-Serving", home)
    transform_dir = latest("tfx/Transform/transform_graph/*", home)
    print(f"weights: {trained_dir}\ntransform: {transform_dir}")
    trained = keras.models.load_model(str(trained_dir), compile=False)
    tft_output = tft.TFTransformOutput(str(transform_dir))
    return trained, tft_output, tft_output.vocabulary_size_by_name(features.VOCABULARY)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--home", type=Path, required=True, help="pipeline home of a full run")
    parser.add_argument("--profile", default="full", help="profile the run used")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--data", type=Path, default=common.DEFAULT_DATA)
    args = parser.parse_args(argv)

    hparams = profile_config(args.profile).trainer
    trained, tft_output, vocabulary_size = load_trained_run(args.home, args.profile)

    probabilities = {}
    reviews = eval_reviews(args.data)[:512]
    sample = serving_client.serialize_reviews(reviews)
    singles = [serving_client.serialize_reviews([review]) for review in reviews[:32]]
    variants = (("keras", dict(serving_folded_lstm=False)),
                ("folded", dict(serving_folded_lstm=True, serving_fused_max_batch=0)),
                ("fused", dict(serving_folded_lstm=True, serving_fused_max_batch=max(
                    1, hparams.serving_fused_max_batch))))
    for name, changes in variants:
        export_dir = args.out / name / "1"
        export_serving_model(trained, tft_output, dataclasses.replace(hparams, **changes),
                             vocabulary_size, str(export_dir))
        serve = tf.saved_model.load(str(export_dir)).signatures["serving_default"]
        probabilities[name] = np.concatenate([
            serve(examples=sample)["probability"].numpy(),
            *[serve(examples=single)["probability"].numpy() for single in singles]])
        print(f"wrote {export_dir}")
    difference = max(float(np.max(np.abs(probabilities["keras"] - probabilities[name])))
                     for name in ("folded", "fused"))
    print(f"largest probability difference from the Keras layers on 512 eval reviews "
          f"(a batch) and 32 (one at a time): {difference:.2e}")
    return 0 if difference < 1e-5 else 1


if __name__ == "__main__":
    sys.exit(main())
