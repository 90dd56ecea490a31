"""Training: datasets, devices, the fit loop and TFX's `run_fn`.

`run_fn` only adapts TFX's FnArgs; `make_dataset`, `train` and
`export_serving_model` work on plain file patterns and configs, so they can
be used (and benchmarked) outside a pipeline.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf
import tensorflow_transform as tft
import tf_keras as keras

from .hparams import TrainerConfig
from . import features
from .datasets import PREFETCH_BATCHES, fixed_parallelism, parallel_calls
from .devices import cpu_model_name
from .embeddings import ppmi_svd_embeddings
from .language_model import copy_pretrained_layers, pretrain_language_model
from .model import build_model, compile_model, review_lengths
from .signatures import export_serving_model

HISTORY_FILE = features.TRAINING_HISTORY_FILE
#: The `custom_config` key under which the Trainer's executor names the files
#: of soft-labelled reviews (token ids, teacher probability) to distil from.
SOFT_LABEL_FILES = "soft_label_files"


def bucket_boundaries(max_length: int, buckets: int) -> List[int]:
    """Evenly spaced length boundaries in (1, max_length]."""
    step = max(1, max_length // max(1, buckets))
    return [b for b in range(step, max_length, step)][: max(0, buckets - 1)] or [max_length]


def batch_by_length(examples: tf.data.Dataset, count: int, hparams: TrainerConfig,
                    training: bool) -> tf.data.Dataset:
    """Batches (token_ids, label) pairs, grouping reviews of similar length.

    Grouping by length, with the model trimming each batch to its longest
    review, is what makes the LSTM fast: a batch of short reviews runs few
    steps instead of `max_sequence_length`.
    """
    if training:
        examples = examples.shuffle(min(count, hparams.shuffle_buffer), seed=hparams.seed,
                                    reshuffle_each_iteration=True)
    boundaries = bucket_boundaries(hparams.max_sequence_length, hparams.bucket_count)
    examples = examples.bucket_by_sequence_length(
        element_length_func=lambda ids, _: review_lengths(ids),
        bucket_boundaries=boundaries,
        bucket_batch_sizes=[hparams.batch_size] * (len(boundaries) + 1))
    return fixed_parallelism(examples.prefetch(PREFETCH_BATCHES))


def make_dataset(file_pattern: Any, feature_spec: Dict[str, Any], hparams: TrainerConfig,
                 training: bool) -> Tuple[tf.data.Dataset, int]:
    """Transformed examples (gzipped TFRecords) as length-grouped batches.

    Returns the dataset and the number of examples.
    """
    patterns = [file_pattern] if isinstance(file_pattern, str) else list(file_pattern)
    files = sorted(f for pattern in patterns for f in tf.io.gfile.glob(pattern))
    if not files:
        raise ValueError(f"No transformed examples match {file_pattern}")
    spec = {key: feature_spec[key] for key in (features.TOKEN_IDS, features.LABEL)}
    examples = tf.data.TFRecordDataset(files, compression_type="GZIP")
    examples = examples.map(lambda record: tf.io.parse_single_example(record, spec),
                            num_parallel_calls=parallel_calls())
    examples = examples.map(lambda example: (
        example[features.TOKEN_IDS],
        tf.cast(tf.reshape(example[features.LABEL], []), tf.float32))).cache()
    count = int(examples.reduce(0, lambda total, _: total + 1).numpy())
    return batch_by_length(examples, count, hparams, training), count


def make_distillation_dataset(file_pattern: str, hparams: TrainerConfig,
                              ) -> Tuple[Optional[tf.data.Dataset], int]:
    """Soft-labelled reviews (token_ids, teacher probability) as length-grouped
    training batches; (None, 0) when nothing matches `file_pattern`."""
    files = sorted(tf.io.gfile.glob(file_pattern)) if file_pattern else []
    if not files:
        return None, 0
    spec = {features.TOKEN_IDS: tf.io.FixedLenFeature([hparams.max_sequence_length], tf.int64),
            features.TEACHER_PROBABILITY: tf.io.FixedLenFeature([], tf.float32)}
    examples = tf.data.TFRecordDataset(files, compression_type="GZIP").map(
        lambda record: tf.io.parse_single_example(record, spec), num_parallel_calls=parallel_calls())
    examples = examples.map(lambda example: (example[features.TOKEN_IDS],
                                             example[features.TEACHER_PROBABILITY])).cache()
    count = int(examples.reduce(0, lambda total, _: total + 1).numpy())
    if not count:
        return None, 0
    return batch_by_length(examples, count, hparams, training=True), count


def device_description() -> Dict[str, Any]:
    """What the model trained on: the GPUs TensorFlow saw, and the CPU."""
    gpus = [tf.config.experimental.get_device_details(gpu).get("device_name", gpu.name)
            for gpu in tf.config.list_physical_devices("GPU")]
    return {"gpus": gpus, "cpu": cpu_model_name(), "cpu_cores": os.cpu_count(),
            "tensorflow": tf.__version__}


def distribution_strategy() -> tf.distribute.Strategy:
    """Mirrored across several GPUs; the default (one device) otherwise."""
    gpus = tf.config.list_physical_devices("GPU")
    if len(gpus) > 1:
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def configure_precision(hparams: TrainerConfig) -> str:
    """Sets the Keras dtype policy: float16 compute only where it pays (GPU)."""
    has_gpu = bool(tf.config.list_physical_devices("GPU"))
    mode = hparams.mixed_precision
    policy = "mixed_float16" if mode == "on" or (mode == "auto" and has_gpu) else "float32"
    keras.mixed_precision.set_global_policy(policy)
    return policy


class ProgressLogger(keras.callbacks.Callback):
    """One log line per epoch: metrics, seconds, examples per second."""

    def __init__(self, train_examples: int, phase: str = "labelled"):
        super().__init__()
        self.train_examples, self.phase = train_examples, phase
        self.epochs: List[Dict[str, Any]] = []

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        seconds = time.perf_counter() - self._start
        logs = dict(logs or {})
        if self.phase != "labelled":  # accuracy against soft labels means nothing
            logs = {k: v for k, v in logs.items() if k.startswith("val_") or k == "loss"}
        record = {"epoch": epoch + 1, "phase": self.phase, "seconds": round(seconds, 1),
                  "examples_per_second": round(self.train_examples / seconds, 1),
                  **{k: round(float(v), 4) for k, v in logs.items()}}
        self.epochs.append(record)
        logging.info("Trainer epoch %s", json.dumps(record))


class AverageWeightsEachEpoch(keras.callbacks.Callback):
    """Replaces the weights with the optimizer's moving average once per epoch.

    It happens before the epoch is evaluated: when `fit` validates (its test
    begins), or else at the epoch's end, so a callback placed after this one
    that evaluates in `on_epoch_end` sees the averaged weights too. Training
    continues from them.
    """

    def on_epoch_begin(self, epoch, logs=None):
        self._averaged = False

    def on_test_begin(self, logs=None):
        self._average()

    def on_epoch_end(self, epoch, logs=None):
        self._average()

    def _average(self) -> None:
        optimizer = getattr(self.model.optimizer, "inner_optimizer", self.model.optimizer)
        if getattr(self, "_averaged", True) or not optimizer.use_ema:
            return
        optimizer.finalize_variable_values(self.model.trainable_variables)
        self._averaged = True


def epoch_callbacks(hparams: TrainerConfig) -> List[keras.callbacks.Callback]:
    """Callbacks that are part of the training recipe (shared with the benchmarks)."""
    return [AverageWeightsEachEpoch()] if hparams.weight_average_momentum > 0 else []


def token_id_matrix(dataset: tf.data.Dataset) -> np.ndarray:
    """All token-id rows of a (token_ids, label) dataset, as one array."""
    return np.concatenate([ids.numpy() for ids, _ in dataset])


def training_steps(hparams: TrainerConfig, train_examples: int, distill_examples: int = 0) -> int:
    """Optimiser steps of the whole fit: the distillation epochs, then the labelled ones."""
    def batches(examples: int) -> int:
        return -(-examples // hparams.batch_size)
    distilling = bool(distill_examples and hparams.distill_epochs)
    return (batches(train_examples) * hparams.labelled_epochs(distilling)
            + (batches(distill_examples) * hparams.distill_epochs if distilling else 0))


def build_classifier(hparams: TrainerConfig, vocabulary_size: int, train_examples: int,
                     train_token_ids: Optional[np.ndarray] = None,
                     distill_examples: int = 0) -> keras.Model:
    """The compiled classifier, its layers pre-trained on `train_token_ids`.

    Shared by `train` and the training benchmarks, so both start from the same
    model. The rows are required when `needs_train_rows(hparams)`. The
    learning-rate schedule spans the distillation epochs over
    `distill_examples` soft-labelled reviews, when there are any.
    """
    with distribution_strategy().scope():
        model = build_model(hparams, vocabulary_size)
        compile_model(model, hparams,
                      total_steps=training_steps(hparams, train_examples, distill_examples))
        if needs_train_rows(hparams) and train_token_ids is None:
            raise ValueError("pre-training needs the train split's token ids")
        vectors = None
        if hparams.pretrain_embeddings:
            vectors = ppmi_svd_embeddings(train_token_ids,
                                          features.vocabulary_input_dim(vocabulary_size),
                                          hparams.embedding_dim, hparams.pretrain_window,
                                          seed=hparams.seed, scale=hparams.pretrain_scale)
            model.get_layer("embedding").set_weights([vectors])
        if hparams.pretrain_lm_epochs:
            encoder, _ = pretrain_language_model(hparams, vocabulary_size, train_token_ids, vectors)
            copy_pretrained_layers(encoder, model)
    return model


def fit_phases(model: keras.Model, hparams: TrainerConfig, train_dataset: tf.data.Dataset,
               distill_dataset: Optional[tf.data.Dataset] = None,
               distill_callbacks: Sequence[keras.callbacks.Callback] = (),
               labelled_callbacks: Sequence[keras.callbacks.Callback] = (),
               validation_data: Optional[tf.data.Dataset] = None) -> None:
    """Distillation, then the labels: the recipe's two phases of `fit`.

    With a `distill_dataset` of (token ids, teacher probability) pairs, the
    model first fits the teacher's soft labels for `distill_epochs`, then the
    labelled reviews for the rest of the `epochs`; one optimiser and one
    learning-rate schedule run through both. Without one, every epoch is
    labelled. Early stopping belongs in `labelled_callbacks`: only a labelled
    epoch may be the one kept.
    """
    distill_epochs = hparams.distill_epochs if distill_dataset is not None else 0
    if distill_epochs:
        model.fit(distill_dataset, validation_data=validation_data, epochs=distill_epochs,
                  callbacks=[*epoch_callbacks(hparams), *distill_callbacks], verbose=0)
    # Epochs are numbered on from the distillation's, so a history reads in order.
    model.fit(train_dataset, validation_data=validation_data, initial_epoch=distill_epochs,
              epochs=hparams.epochs,
              callbacks=[*epoch_callbacks(hparams), *labelled_callbacks], verbose=0)


def needs_train_rows(hparams: TrainerConfig) -> bool:
    """Whether building the classifier reads the train split's token ids."""
    return hparams.pretrain_embeddings or hparams.pretrain_lm_epochs > 0


def train(hparams: TrainerConfig, train_dataset: tf.data.Dataset, eval_dataset: tf.data.Dataset,
          train_examples: int, vocabulary_size: int,
          log_dir: Optional[str] = None, distill_dataset: Optional[tf.data.Dataset] = None,
          distill_examples: int = 0) -> Tuple[keras.Model, Dict[str, Any]]:
    """Fits the classifier (after distillation, when given soft-labelled
    reviews); keeps the weights of the best labelled eval epoch."""
    keras.utils.set_random_seed(hparams.seed)
    policy = configure_precision(hparams)
    start = time.perf_counter()
    if not (distill_dataset is not None and hparams.distill_epochs and distill_examples):
        distill_dataset, distill_examples = None, 0
    rows = token_id_matrix(train_dataset) if needs_train_rows(hparams) else None
    model = build_classifier(hparams, vocabulary_size, train_examples, rows, distill_examples)
    setup_seconds = round(time.perf_counter() - start, 1)
    distill_progress = ProgressLogger(distill_examples, phase="distill")
    progress = ProgressLogger(train_examples)
    common: List[keras.callbacks.Callback] = (
        [keras.callbacks.TensorBoard(log_dir=log_dir, update_freq="epoch")] if log_dir else [])
    fit_phases(model, hparams, train_dataset, distill_dataset,
               distill_callbacks=[distill_progress, *common],
               labelled_callbacks=[progress, keras.callbacks.EarlyStopping(
                   monitor="val_accuracy", mode="max", patience=hparams.early_stopping_patience,
                   restore_best_weights=True), *common],
               validation_data=eval_dataset)
    logging.info("Trainer: fit returned after %.1fs", time.perf_counter() - start)
    best = max(progress.epochs, key=lambda e: e.get("val_accuracy", 0.0)) if progress.epochs else {}
    history = {"policy": policy, "seconds": round(time.perf_counter() - start, 1),
               "setup_seconds": setup_seconds, "train_examples": train_examples,
               "distill_examples": distill_examples,
               "epochs": distill_progress.epochs + progress.epochs, "best_epoch": best}
    return model, history


def run_fn(fn_args) -> None:
    """TFX Trainer entry point (referenced by dotted path)."""
    hparams = TrainerConfig.from_custom_config(fn_args.custom_config)
    tft_output = tft.TFTransformOutput(fn_args.transform_output)
    vocabulary_size = tft_output.vocabulary_size_by_name(features.VOCABULARY)
    feature_spec = tft_output.transformed_feature_spec()
    train_dataset, train_examples = make_dataset(fn_args.train_files, feature_spec, hparams, True)
    eval_dataset, eval_examples = make_dataset(fn_args.eval_files, feature_spec, hparams, False)
    distill_dataset, distill_examples = (None, 0)
    if hparams.distill_epochs:
        distill_dataset, distill_examples = make_distillation_dataset(
            (fn_args.custom_config or {}).get(SOFT_LABEL_FILES, ""), hparams)
        if not distill_examples:
            logging.info("Trainer: no soft-labelled reviews: distillation skipped, "
                         "the BiLSTM learns from the labels only")
    logging.info("Trainer: %d train / %d eval / %d soft-labelled examples, vocabulary %d, %s",
                 train_examples, eval_examples, distill_examples, vocabulary_size,
                 json.dumps(hparams.__dict__))
    model, history = train(hparams, train_dataset, eval_dataset, train_examples, vocabulary_size,
                           log_dir=fn_args.model_run_dir, distill_dataset=distill_dataset,
                           distill_examples=distill_examples)
    start = time.perf_counter()
    export_serving_model(model, tft_output, hparams, vocabulary_size, fn_args.serving_model_dir)
    logging.info("Trainer: exported the serving model in %.1fs", time.perf_counter() - start)
    history.update(eval_examples=eval_examples, vocabulary_size=vocabulary_size,
                   device=device_description(), hparams=dataclasses.asdict(hparams))
    # Once beside the run's TensorBoard logs, once inside the model (it travels with every push).
    for directory in (fn_args.model_run_dir, os.path.join(fn_args.serving_model_dir, features.ASSETS_EXTRA)):
        tf.io.gfile.makedirs(directory)
        with tf.io.gfile.GFile(os.path.join(directory, HISTORY_FILE), "w") as handle:
            handle.write(json.dumps(history, indent=2))
