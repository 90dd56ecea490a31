"""The linear baseline: logistic regression on TF-IDF word n-grams.

It reads the same Transform output as the BiLSTM (`ngram_ids` and their
`ngram_weights`, see `preprocessing.tfidf_weights`) and learns one weight per
n-gram plus a bias. It trains in about a minute and is what the BiLSTM must
beat to be blessed: a sequence model that loses to a bag of n-grams is not
worth serving (docs/evaluation-protocol.md).

`run_fn` adapts TFX's FnArgs; `make_dataset`, `train` and `export` work on
plain file patterns and configs, like `train.py`.
"""

from __future__ import annotations

import json
import logging
import os
import time
from typing import Any, Dict, List, Tuple

import tensorflow as tf
import tensorflow_transform as tft
import tf_keras as keras

from . import features
from .datasets import PREFETCH_BATCHES, fixed_parallelism, parallel_calls
from .hparams import BaselineConfig
from .signatures import SERVING_SIGNATURE, examples_spec, finalize_saved_model, save_keras_model

HISTORY_FILE = features.TRAINING_HISTORY_FILE


def ngram_table_size(tft_output: tft.TFTransformOutput) -> int:
    """Rows of the weight table: the n-gram vocabulary plus its OOV bucket."""
    return tft_output.vocabulary_size_by_name(features.NGRAM_VOCABULARY) + 1


def make_dataset(file_pattern: Any, batch_size: int, training: bool,
                 seed: int = 0) -> Tuple[tf.data.Dataset, int]:
    """Transformed examples as ({ngram_ids, ngram_weights} sparse, label) batches."""
    patterns = [file_pattern] if isinstance(file_pattern, str) else list(file_pattern)
    files = sorted(f for pattern in patterns for f in tf.io.gfile.glob(pattern))
    if not files:
        raise ValueError(f"No transformed examples match {file_pattern}")
    spec = {features.NGRAM_IDS: tf.io.VarLenFeature(tf.int64),
            features.NGRAM_WEIGHTS: tf.io.VarLenFeature(tf.float32),
            features.LABEL: tf.io.FixedLenFeature([], tf.int64)}
    records = tf.data.TFRecordDataset(files, compression_type="GZIP").cache()
    count = int(records.reduce(0, lambda total, _: total + 1).numpy())
    if training:
        records = records.shuffle(count, seed=seed, reshuffle_each_iteration=True)
    batches = records.batch(batch_size).map(
        lambda serialized: _split_label(tf.io.parse_example(serialized, spec)),
        num_parallel_calls=parallel_calls())
    return fixed_parallelism(batches.prefetch(PREFETCH_BATCHES)), count


def _split_label(parsed: Dict[str, Any]) -> Tuple[Dict[str, tf.SparseTensor], tf.Tensor]:
    label = tf.cast(parsed.pop(features.LABEL), tf.float32)
    return parsed, label


@keras.utils.register_keras_serializable(package="imdb_sentiment")
class SparseLinear(keras.layers.Layer):
    """logit = Σ weight(n-gram) × tf-idf(n-gram) + bias, over a review's n-grams."""

    def __init__(self, table_size: int, l2: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        self.table_size, self.l2 = table_size, l2

    def build(self, input_shape):
        self.kernel = self.add_weight(
            name="kernel", shape=[self.table_size, 1], initializer="zeros",
            regularizer=keras.regularizers.L2(self.l2) if self.l2 else None)
        self.bias = self.add_weight(name="bias", shape=[1], initializer="zeros")

    def call(self, inputs: Dict[str, tf.SparseTensor]) -> tf.Tensor:
        ids, weights = inputs[features.NGRAM_IDS], inputs[features.NGRAM_WEIGHTS]
        logit = tf.nn.embedding_lookup_sparse(self.kernel, ids, weights, combiner="sum")
        # Trailing reviews with no n-gram get no row from the lookup: pad them (bias only).
        rows = ids.dense_shape[0]
        logit = tf.pad(logit, [[0, rows - tf.shape(logit, out_type=tf.int64)[0]], [0, 0]])
        return logit + self.bias

    def get_config(self):
        return {**super().get_config(), "table_size": self.table_size, "l2": self.l2}


def build_model(table_size: int, hparams: BaselineConfig) -> keras.Model:
    inputs = {name: keras.Input(shape=(None,), sparse=True, dtype=dtype, name=name)
              for name, dtype in ((features.NGRAM_IDS, tf.int64),
                                  (features.NGRAM_WEIGHTS, tf.float32))}
    logit = SparseLinear(table_size, hparams.l2, name="linear")(inputs)
    probability = keras.layers.Activation("sigmoid", name="probability")(logit)
    model = keras.Model(inputs, probability, name="linear_baseline")
    model.compile(optimizer=keras.optimizers.Adam(hparams.learning_rate),
                  loss=keras.losses.BinaryCrossentropy(),
                  metrics=[keras.metrics.BinaryAccuracy(name="accuracy")])
    return model


def train(hparams: BaselineConfig, train_dataset: tf.data.Dataset, eval_dataset: tf.data.Dataset,
          table_size: int) -> Tuple[keras.Model, Dict[str, Any]]:
    """Fits the weights; keeps the epoch with the best eval accuracy."""
    keras.utils.set_random_seed(hparams.seed)
    start = time.perf_counter()
    model = build_model(table_size, hparams)
    stop = keras.callbacks.EarlyStopping(monitor="val_accuracy", mode="max",
                                         patience=hparams.early_stopping_patience,
                                         restore_best_weights=True)
    fitted = model.fit(train_dataset, validation_data=eval_dataset, epochs=hparams.epochs,
                       callbacks=[stop], verbose=0)
    epochs: List[Dict[str, float]] = [
        {"epoch": i + 1, **{k: round(float(v[i]), 4) for k, v in fitted.history.items()}}
        for i in range(len(fitted.history["loss"]))]
    best = max(epochs, key=lambda e: e["val_accuracy"])
    return model, {"seconds": round(time.perf_counter() - start, 1), "epochs": epochs,
                   "best_epoch": best, "table_size": table_size}


def export(model: keras.Model, tft_output: tft.TFTransformOutput, export_dir: str) -> None:
    """A SavedModel with `serving_default`: serialized tf.Examples → `probability`."""
    model.tft_layer = tft_output.transform_features_layer()
    text_spec = {features.TEXT: tft_output.raw_feature_spec()[features.TEXT]}

    @tf.function(input_signature=[examples_spec("examples")])
    def serve_examples(examples):
        transformed = model.tft_layer(tf.io.parse_example(examples, text_spec))
        inputs = {name: transformed[name] for name in (features.NGRAM_IDS, features.NGRAM_WEIGHTS)}
        return {"probability": tf.reshape(model(inputs, training=False), [-1])}

    save_keras_model(model, export_dir, {SERVING_SIGNATURE: serve_examples.get_concrete_function()})
    finalize_saved_model(export_dir)


def run_fn(fn_args) -> None:
    """TFX Trainer entry point (referenced by dotted path)."""
    hparams = BaselineConfig.from_custom_config(fn_args.custom_config)
    tft_output = tft.TFTransformOutput(fn_args.transform_output)
    table_size = ngram_table_size(tft_output)
    train_dataset, train_examples = make_dataset(fn_args.train_files, hparams.batch_size, True,
                                                 hparams.seed)
    eval_dataset, eval_examples = make_dataset(fn_args.eval_files, 256, False)
    logging.info("Linear baseline: %d train / %d eval examples, %d n-grams", train_examples,
                 eval_examples, table_size)
    model, history = train(hparams, train_dataset, eval_dataset, table_size)
    export(model, tft_output, fn_args.serving_model_dir)
    history.update(train_examples=train_examples, eval_examples=eval_examples)
    logging.info("Linear baseline trained: %s", json.dumps(history["best_epoch"]))
    with tf.io.gfile.GFile(os.path.join(fn_args.model_run_dir, HISTORY_FILE), "w") as handle:
        handle.write(json.dumps(history, indent=2))
