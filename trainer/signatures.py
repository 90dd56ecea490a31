"""The exported SavedModel and its signatures (raw text in, transform inside).

- `serving_default`: serialized tf.Examples (`examples`; only `text` is
  required) → `probability` [batch], P(review is positive). TFMA uses it.
- `transform_features`: serialized tf.Examples → transformed features
  (for TFMA; features other than `text` are optional, label -1 if absent).
- `explain`: raw review strings (`text` [batch]) → `probability`, `tokens`
  (what the model saw, "" = padding) and `attention` (one weight per token).
- `classify`: TF Serving Classify API shape: `inputs` (serialized
  tf.Examples) → `classes` [batch, 2] and `scores` [batch, 2]; its method
  name is set to `tensorflow/serving/classify` after saving.

The model is exported from a float32 twin that carries the trained weights,
so a model trained with mixed precision serves in float32 on any CPU. The
signatures run that twin with its embedding folded into the LSTM's input
projections (`folded_bilstm.FoldedNetwork`: same outputs, faster on CPU),
or the Keras layers themselves with `serving_folded_lstm=False`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
from typing import Callable, Dict, Tuple

import tensorflow as tf
import tensorflow_transform as tft
import tf_keras as keras
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow.python.saved_model import fingerprinting_utils

from .hparams import TrainerConfig
from . import features, preprocessing
from .folded_bilstm import FoldedNetwork
from .model import build_model, explainer_model, review_lengths
from .warmup import write_warmup_requests

SERVING_SIGNATURE = "serving_default"
TRANSFORM_SIGNATURE = "transform_features"
EXPLAIN_SIGNATURE = "explain"
CLASSIFY_SIGNATURE = "classify"
CLASSIFY_METHOD = "tensorflow/serving/classify"


def examples_spec(name: str) -> tf.TensorSpec:
    return tf.TensorSpec(shape=[None], dtype=tf.string, name=name)


class KerasNetwork(tf.Module):
    """The Keras layers as trained: their LSTM can pick cuDNN on a GPU server.

    Same interface as `folded_bilstm.FoldedNetwork`: token ids [batch, time]
    → (P(positive) [batch], attention [batch, trimmed time]).
    """

    def __init__(self, classifier: keras.Model):
        super().__init__(name="keras_network")
        self.explainer = explainer_model(classifier)

    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.int64, name="token_ids")])
    def __call__(self, token_ids: tf.Tensor) -> Tuple[tf.Tensor, tf.Tensor]:
        probability, attention = self.explainer(token_ids, training=False)
        return tf.reshape(probability, [-1]), attention


def inference_network(model: keras.Model, folded: bool, fused_max_batch: int = 0) -> tf.Module:
    """What the signatures run: the CPU path (the folded network, small batches
    through the fused kernel; default) or the Keras layers (cuDNN on a GPU)."""
    return FoldedNetwork(model, fused_max_batch) if folded else KerasNetwork(model)


def build_signatures(model: keras.Model, tft_output: tft.TFTransformOutput,
                     hparams: TrainerConfig) -> Dict[str, tf.types.experimental.ConcreteFunction]:
    """Concrete functions for every signature.

    `model` gains `tft_layer` and `inference_network` (what the signatures
    run), so the SavedModel tracks their variables and exposes both.
    """
    model.tft_layer = tft_output.transform_features_layer()
    network = model.inference_network = inference_network(
        model, hparams.serving_folded_lstm, hparams.serving_fused_max_batch)
    raw_spec = tft_output.raw_feature_spec()
    text_only_spec = {features.TEXT: raw_spec[features.TEXT]}
    # Only `text` is required anywhere; other features default (label -1 = unknown).
    optional_spec = {name: spec if name == features.TEXT else tf.io.FixedLenFeature(
        spec.shape, spec.dtype, default_value=tf.constant(
            -1 if spec.dtype.is_integer else "", spec.dtype, shape=spec.shape))
        for name, spec in raw_spec.items()}

    def probability_of(raw_features: Dict[str, tf.Tensor]) -> tf.Tensor:
        transformed = model.tft_layer(raw_features)
        return predict_by_length(lambda ids: network(ids)[0], transformed[features.TOKEN_IDS],
                                 hparams.serving_chunk_size)

    @tf.function(input_signature=[examples_spec("examples")])
    def serve_examples(examples):
        parsed = tf.io.parse_example(examples, text_only_spec)
        return {"probability": probability_of(parsed)}

    @tf.function(input_signature=[examples_spec("examples")])
    def transform_features(examples):
        parsed = tf.io.parse_example(examples, optional_spec)
        return model.tft_layer(parsed)

    @tf.function(input_signature=[tf.TensorSpec(shape=[None], dtype=tf.string, name="text")])
    def explain(text):
        raw = {features.TEXT: tf.reshape(text, [-1, 1])}
        token_ids = model.tft_layer(raw)[features.TOKEN_IDS]
        probability, attention = network(token_ids)
        tokens = preprocessing.tokenize(text, hparams.max_sequence_length, hparams.head_tokens)
        width = tf.shape(attention)[1]
        tokens = tokens.to_tensor(default_value="")[:, :width]
        tokens = tf.pad(tokens, [[0, 0], [0, width - tf.shape(tokens)[1]]], constant_values="")
        return {"probability": probability, "tokens": tokens,
                "attention": attention}

    @tf.function(input_signature=[examples_spec("inputs")])
    def classify(inputs):
        parsed = tf.io.parse_example(inputs, text_only_spec)
        positive = probability_of(parsed)
        scores = tf.stack([1.0 - positive, positive], axis=1)
        classes = tf.tile(tf.constant([list(features.CLASS_NAMES)]), [tf.shape(scores)[0], 1])
        return {"classes": classes, "scores": scores}

    return {
        SERVING_SIGNATURE: serve_examples.get_concrete_function(),
        TRANSFORM_SIGNATURE: transform_features.get_concrete_function(),
        EXPLAIN_SIGNATURE: explain.get_concrete_function(),
        CLASSIFY_SIGNATURE: classify.get_concrete_function(),
    }


def predict_by_length(probability_of_ids: Callable[[tf.Tensor], tf.Tensor], token_ids: tf.Tensor,
                      chunk_size: int) -> tf.Tensor:
    """P(positive) [batch], running the batch in chunks of similar length.

    A request batch mixes short and long reviews; run as one, every review
    pays for the longest. Sorted by length and cut into chunks, each chunk
    is trimmed (by the network) to its own longest review; results are put
    back in request order. `probability_of_ids`: token ids → P(positive) [batch].
    """
    order = tf.argsort(review_lengths(token_ids), stable=True)
    ordered_ids = tf.gather(token_ids, order)
    size = tf.shape(token_ids)[0]
    chunks = (size + chunk_size - 1) // chunk_size
    results = tf.TensorArray(tf.float32, size=chunks, infer_shape=False,
                             element_shape=tf.TensorShape([None]))
    for index in tf.range(chunks):
        chunk = ordered_ids[index * chunk_size:(index + 1) * chunk_size]
        results = results.write(index, tf.reshape(probability_of_ids(chunk), [-1]))
    return tf.scatter_nd(order[:, tf.newaxis], results.concat(), [size])


def float32_twin(trained: keras.Model, hparams: TrainerConfig, vocabulary_size: int) -> keras.Model:
    """A float32 copy of `trained` (which may have used mixed precision)."""
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("float32")
    try:
        # A plain keras.Model: adversarial training only changes train_step.
        twin = build_model(dataclasses.replace(hparams, adversarial_epsilon=0.0), vocabulary_size)
    finally:
        keras.mixed_precision.set_global_policy(previous)
    twin.set_weights(trained.get_weights())
    return twin


#: A local file path quoted inside a string attribute (TF Transform's vocabulary
#: table is named after the file it was first read from, a temp path under the
#: pipeline root: `hash_table_tf.Tensor(b'/…/tftransform_tmp/tokens', …)_…`).
_QUOTED_PATH = re.compile(rb"b'(/[^']+|[a-zA-Z]:\\\\[^']+|[a-z0-9]+://[^']+)'")


def _scrub_paths(value: bytes) -> bytes:
    """Replaces each quoted path by a digest of it: as unique, no longer a path."""
    return _QUOTED_PATH.sub(
        lambda match: b"b'path-" + hashlib.sha256(match.group(1)).hexdigest()[:16].encode()
        + b"/" + match.group(1).rstrip(b"/").rsplit(b"/", 1)[-1] + b"'", value)


def finalize_saved_model(export_dir: str) -> int:
    """Post-processes saved_model.pb in place; returns how many names were scrubbed.

    - Marks the classify signature, if any, `tensorflow/serving/classify`:
      tf.saved_model always writes `tensorflow/serving/predict`, and TF
      Serving's Classify API only accepts the former.
    - Removes machine-local paths from `shared_name` attributes. Resource
      names must stay unique per vocabulary (two models loaded in one process
      must not share a table), so each path becomes a digest of itself.
    - Rewrites fingerprint.pb, which hashes saved_model.pb.
    """
    path = os.path.join(export_dir, "saved_model.pb")
    saved_model = saved_model_pb2.SavedModel()
    with tf.io.gfile.GFile(path, "rb") as handle:
        saved_model.ParseFromString(handle.read())
    scrubbed = 0
    for meta_graph in saved_model.meta_graphs:
        if CLASSIFY_SIGNATURE in meta_graph.signature_def:
            meta_graph.signature_def[CLASSIFY_SIGNATURE].method_name = CLASSIFY_METHOD
        graph = meta_graph.graph_def
        nodes = list(graph.node) + [n for f in graph.library.function for n in f.node_def]
        for node in nodes:
            if "shared_name" in node.attr:
                old = node.attr["shared_name"].s
                new = _scrub_paths(old)
                if new != old:
                    node.attr["shared_name"].s = new
                    scrubbed += 1
    with tf.io.gfile.GFile(path, "wb") as handle:
        handle.write(saved_model.SerializeToString())
    fingerprinting_utils.write_fingerprint(export_dir)
    return scrubbed


def save_keras_model(model: keras.Model, export_dir: str,
                     signatures: Dict[str, tf.types.experimental.ConcreteFunction]) -> None:
    """Saves the signatures and the Keras model's config and weights, without
    Keras' traced call functions.

    Nothing that loads the export needs the traces: TF Serving, TFMA (the
    pipeline's EvalConfig names both models `tf_generic`, so TFMA calls the
    signatures) and `imdb-pipeline predict` run the signatures only. The
    traces would double the export's time and every load's. The Keras model
    itself still comes back with `keras.models.load_model` in a process that
    imported this package, whose layers are registered as serializable.
    """
    model.save(export_dir, save_format="tf", signatures=signatures, include_optimizer=False,
               save_traces=False)


def export_serving_model(trained: keras.Model, tft_output: tft.TFTransformOutput,
                         hparams: TrainerConfig, vocabulary_size: int, export_dir: str) -> None:
    """Writes the SavedModel TF Serving, TFMA and `imdb-pipeline predict` load."""
    model = float32_twin(trained, hparams, vocabulary_size)
    save_keras_model(model, export_dir, build_signatures(model, tft_output, hparams))
    finalize_saved_model(export_dir)
    write_warmup_requests(export_dir)
