"""Training speed and accuracy, side by side in one run: notebooks vs project.

For each variant: training reviews per second (timed training only) and the
training wall time until the eval split (the pipeline's, from train/) first
reaches the target accuracy, evaluated every `--eval-every` of an epoch.
A variant whose loss turns NaN, or whose eval accuracy collapses to chance
after having learned, is recorded as diverged, not hidden.

Variants:
  notebook   the reference notebooks: 10k vocab, pre-padded to 500 steps, no
             mask, BiLSTM(128, dropout=0.3, recurrent_activation='relu'),
             attention(128), BatchNorm, sigmoid; Adam(1e-4, clipnorm=1), batch 128
  project    the pipeline's default TrainerConfig (full profile)
  project:K=V,K=V   the default with TrainerConfig fields overridden
  project+unsup[:K=V]  the default, its PPMI-SVD embeddings computed from the train
             split and the archive's 50,000 unlabelled reviews (--unsup-archive)
  distilled[:K=V]  the default, its first `distill_epochs` (default 1) of the
             `epochs` fitted to the NB-LR teacher's probabilities on the
             unlabelled reviews of `train` movies (--unsup-archive; the teacher
             is fitted on `train`). Before 2026-12-03 evening, `epochs` counted
             the labelled epochs only: "distilled:epochs=2" then = "distilled" now

  python benchmarks/train_benchmark.py --variants "notebook;project"
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

import common  # noqa: F401  (sets TF env before TensorFlow loads)
import numpy as np
import tensorflow as tf
import tf_keras as keras

from imdb_sentiment.pipeline.config import profile_config
from imdb_sentiment.trainer.hparams import TrainerConfig, parse_value
from imdb_sentiment.trainer import features, train
from imdb_sentiment.trainer.attention import BahdanauAttention

NOTEBOOK = {"vocab_size": 10000, "max_length": 500, "units": 128, "batch_size": 128,
            "learning_rate": 1e-4, "epochs": 6}


def notebook_model(vocabulary_size: int) -> keras.Model:
    """The reference notebooks' network (their `004` sigmoid variant), unmasked."""
    ids = keras.Input(shape=(NOTEBOOK["max_length"],), dtype=tf.int64)
    embedded = keras.layers.Embedding(features.vocabulary_input_dim(vocabulary_size), 128)(ids)
    sequence, forward_h, _, backward_h, _ = keras.layers.Bidirectional(keras.layers.LSTM(
        NOTEBOOK["units"], dropout=0.3, return_sequences=True, return_state=True,
        recurrent_activation="relu", recurrent_initializer="glorot_uniform"))(embedded)
    query = keras.layers.Concatenate()([forward_h, backward_h])
    context, _ = BahdanauAttention(128)(sequence, query)
    hidden = keras.layers.BatchNormalization()(context)
    output = keras.layers.Dense(1, activation="sigmoid")(hidden)
    model = keras.Model(ids, output)
    model.compile(optimizer=keras.optimizers.Adam(NOTEBOOK["learning_rate"], clipnorm=1.0),
                  loss="binary_crossentropy",
                  metrics=[keras.metrics.BinaryAccuracy(name="accuracy")])
    return model


class TimeToTarget(keras.callbacks.Callback):
    """Evaluates every `every` batches (at each epoch's end when 0); times training only."""

    def __init__(self, eval_data: tf.data.Dataset, every: int, target: float):
        super().__init__()
        self.eval_data, self.every, self.target = eval_data, every, target
        self.train_seconds, self.batches, self.history = 0.0, 0, []
        self.time_to_target: Optional[float] = None
        self.diverged: Optional[str] = None
        self._best = 0.0

    def on_train_batch_begin(self, batch, logs=None):
        self._start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self.train_seconds += time.perf_counter() - self._start
        self.batches += 1
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(loss) and not self.diverged:
            self.diverged = f"loss became {loss} after {self.batches} batches"
            self.model.stop_training = True
        if self.every and self.batches % self.every == 0:
            self._evaluate()

    def on_epoch_end(self, epoch, logs=None):
        if not self.every:
            self._evaluate()

    def _evaluate(self):
        _, accuracy = self.model.evaluate(self.eval_data, verbose=0)[:2]
        point = {"batches": self.batches, "train_seconds": round(self.train_seconds, 1),
                 "eval_accuracy": round(float(accuracy), 4)}
        self.history.append(point)
        print(f"    {point}", flush=True)
        if self.time_to_target is None and accuracy >= self.target:
            self.time_to_target = self.train_seconds
        if self._best > 0.75 and accuracy < 0.6 and not self.diverged:
            self.diverged = (f"eval accuracy fell from {self._best:.3f} to {accuracy:.3f} "
                             f"after {self.batches} batches")
        self._best = max(self._best, accuracy)


def run_variant(name: str, overrides: Dict[str, Any], train_split, eval_split, args) -> Dict[str, Any]:
    keras.utils.set_random_seed(overrides.get("seed", args.seed))  # `project:seed=N` varies all
    train_tokens, train_labels = train_split
    eval_tokens, eval_labels = eval_split
    if name == "notebook":
        vocabulary = common.build_vocabulary(train_tokens, NOTEBOOK["vocab_size"] - 3, 1)
        x_train = common.encode(train_tokens, vocabulary, NOTEBOOK["max_length"], padding="pre")
        x_eval = common.encode(eval_tokens, vocabulary, NOTEBOOK["max_length"], padding="pre")
        model = notebook_model(len(vocabulary))
        batch_size, epochs = NOTEBOOK["batch_size"], args.notebook_epochs
        train_data = tf.data.Dataset.from_tensor_slices((x_train, train_labels)).shuffle(
            len(x_train), seed=args.seed).batch(batch_size).prefetch(2)
        eval_data = tf.data.Dataset.from_tensor_slices((x_eval, eval_labels)).batch(256)
        config: Dict[str, Any] = dict(NOTEBOOK, epochs=epochs)
        setup_seconds = 0.0
    else:
        hparams = dataclasses.replace(profile_config("full").trainer, **overrides)
        vocabulary = common.build_vocabulary(train_tokens, hparams.vocab_size, hparams.min_frequency)
        x_train = common.encode(train_tokens, vocabulary, hparams.max_sequence_length,
                                head=hparams.head_tokens)
        x_eval = common.encode(eval_tokens, vocabulary, hparams.max_sequence_length,
                               head=hparams.head_tokens)
        train_data = train.batch_by_length(tf.data.Dataset.from_tensor_slices(
            (x_train, train_labels)).cache(), len(x_train), hparams, training=True)
        eval_data = train.batch_by_length(tf.data.Dataset.from_tensor_slices(
            (x_eval, eval_labels)).cache(), len(x_eval), hparams, training=False)
        distill_data, distill_examples = None, 0
        if name == "distilled":
            hparams = dataclasses.replace(hparams, distill_epochs=overrides.get("distill_epochs", 1))
            unsup_tokens, soft_labels = distillation_labels(train_split, args)
            if hparams.distill_max_reviews:
                unsup_tokens = unsup_tokens[:hparams.distill_max_reviews]
                soft_labels = soft_labels[:hparams.distill_max_reviews]
            x_unsup = common.encode(unsup_tokens, vocabulary, hparams.max_sequence_length,
                                    head=hparams.head_tokens)
            distill_examples = len(x_unsup)
            distill_data = train.batch_by_length(tf.data.Dataset.from_tensor_slices(
                (x_unsup, soft_labels)).cache(), distill_examples, hparams, training=True)
        pretrain_start = time.perf_counter()  # embedding pre-training counts as training time
        rows = x_train
        if name == "project+unsup":  # embeddings from train and the unlabelled reviews
            unsup = common.tokenize(common.load_unlabelled_texts(args.unsup_archive))
            rows = np.concatenate([x_train, common.encode(
                unsup, vocabulary, hparams.max_sequence_length, head=hparams.head_tokens)])
        model = train.build_classifier(hparams, len(vocabulary), len(x_train), rows,
                                       distill_examples)
        setup_seconds = time.perf_counter() - pretrain_start
        batch_size, epochs = hparams.batch_size, hparams.epochs
        config = dataclasses.asdict(hparams)
    batches_per_epoch = -(-len(x_train) // batch_size)
    # Length buckets make more batches than this estimate: 0 evaluates at epoch ends exactly.
    every = max(1, int(batches_per_epoch * args.eval_every)) if args.eval_every else 0
    timer = TimeToTarget(eval_data, every, args.target)
    timer.train_seconds = setup_seconds
    cadence = f"eval every {every} batches" if every else "eval at each epoch's end"
    print(f"== {name}: {len(x_train)} train / {len(x_eval)} eval reviews, {epochs} epochs, "
          f"{cadence}", flush=True)
    if name == "notebook":
        model.fit(train_data, epochs=epochs, callbacks=[timer], verbose=0)
    else:
        train.fit_phases(model, hparams, train_data, distill_data, distill_callbacks=[timer],
                         labelled_callbacks=[timer])
    examples = timer.batches * batch_size
    best = max(timer.history, key=lambda p: p["eval_accuracy"]) if timer.history else {}
    seen = len(x_train) * epochs if name != "distilled" else (
        len(x_train) * hparams.labelled_epochs(distill_data is not None)
        + distill_examples * hparams.distill_epochs)
    return {
        "variant": name, "config": config, "train_reviews": len(x_train),
        "distill_reviews": distill_examples if name == "distilled" else 0,
        "reviews_per_second": round(min(examples, seen) / timer.train_seconds, 1),
        "train_seconds": round(timer.train_seconds, 1),
        "seconds_to_target": None if timer.time_to_target is None else round(timer.time_to_target, 1),
        "best_eval_accuracy": best.get("eval_accuracy"), "best_at_seconds": best.get("train_seconds"),
        "final_eval_accuracy": timer.history[-1]["eval_accuracy"] if timer.history else None,
        "diverged": timer.diverged, "history": timer.history,
    }


_TEACHER_CACHE: Dict[str, Any] = {}


def distillation_labels(train_split, args):
    """Token lists of the unlabelled reviews of `train` movies and the NB-LR
    teacher's probabilities for them (the teacher fitted on `train`; its eval
    accuracy is printed beside the variants'). Computed once per benchmark run."""
    if "labels" not in _TEACHER_CACHE:
        from imdb_sentiment.trainer.teacher import NbLrTeacher

        start = time.perf_counter()
        (unsup_texts, _), (eval_texts, eval_labels) = common.load_raw_splits(
            args.unsup_archive, args.sample_percent, splits=("unsup", "eval"))
        unsup_tokens = common.tokenize(unsup_texts)
        teacher = NbLrTeacher().fit(train_split[0], train_split[1])
        soft = teacher.probabilities(unsup_tokens)
        eval_accuracy = float(np.mean((teacher.probabilities(common.tokenize(eval_texts)) > 0.5)
                                      == (eval_labels > 0.5)))
        _TEACHER_CACHE.update(labels=(unsup_tokens, soft), teacher={
            "eval_accuracy": round(eval_accuracy, 4), "unlabelled_reviews": len(unsup_tokens),
            "ngrams": teacher.ngram_count, "seconds": round(time.perf_counter() - start, 1)})
        print(f"== teacher (NB-LR): {_TEACHER_CACHE['teacher']}", flush=True)
    return _TEACHER_CACHE["labels"]


def parse_variant(text: str):
    name, _, rest = text.partition(":")
    overrides: Dict[str, Any] = {}
    defaults = TrainerConfig()
    for pair in filter(None, rest.split(",")):
        key, _, raw = pair.partition("=")
        overrides[key] = parse_value(getattr(defaults, key), raw)
    return name, overrides, text


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=common.DEFAULT_DATA)
    parser.add_argument("--variants", default="notebook;project",
                        help="';'-separated: notebook, project, project:field=value,...")
    parser.add_argument("--target", type=float, default=0.85)
    parser.add_argument("--eval-every", type=float, default=0.25,
                        help="fraction of an epoch; 0 evaluates at each epoch's end")
    parser.add_argument("--notebook-epochs", type=int, default=NOTEBOOK["epochs"])
    parser.add_argument("--sample-percent", type=int, default=100)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--unsup-archive", type=Path,
                        default=common.DEFAULT_DATA.with_name("aclImdb_train_unsup.tar.gz"),
                        help="archive with train/unsup/ for the project+unsup variant")
    args = parser.parse_args(argv)
    if not args.data.exists():
        print(f"no data at {args.data}; pass --data", file=sys.stderr)
        return 2
    train_split, eval_split = common.load_splits(args.data, args.sample_percent)
    results = []
    for variant in args.variants.split(";"):
        name, overrides, label = parse_variant(variant.strip())
        result = run_variant(name, overrides, train_split, eval_split, args)
        result["label"] = label
        results.append(result)
    rows = [{k: r[k] for k in ("label", "reviews_per_second", "seconds_to_target", "best_eval_accuracy",
                               "best_at_seconds", "train_seconds", "diverged")} for r in results]
    ratios = {}
    if len(results) > 1:
        base = results[0]
        for r in results[1:]:
            ratios[r["label"]] = {
                "throughput_ratio": round(r["reviews_per_second"] / base["reviews_per_second"], 2),
                "time_to_target_ratio": (round(base["seconds_to_target"] / r["seconds_to_target"], 2)
                                         if base["seconds_to_target"] and r["seconds_to_target"] else None),
            }
    print()
    print(common.table(rows, list(rows[0])))
    if ratios:
        print(f"\nagainst {results[0]['label']}: {ratios}")
    path = common.write_result("train", {"target": args.target, "results": results, "ratios": ratios,
                                         "teacher": _TEACHER_CACHE.get("teacher")})
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
