"""Bahdanau (additive) attention over a sequence, with a padding mask.

score(query, key_t) = Vᵀ tanh(W₁·key_t + W₂·query); weights = softmax over
time of the unmasked steps; context = Σ_t weight_t · value_t (keys = values =
the BiLSTM outputs). Scores and softmax are computed in float32 even under
mixed precision, and masked steps get exactly zero weight.
"""

from __future__ import annotations

from typing import Optional, Tuple

import tensorflow as tf
import tf_keras as keras

#: Added to the scores of padded steps (float32), far below any real score.
_MASKED_SCORE = -1e9


@keras.utils.register_keras_serializable(package="imdb_sentiment")
class BahdanauAttention(keras.layers.Layer):
    """Returns (context [batch, features], weights [batch, time])."""

    def __init__(self, units: int, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.key_projection = keras.layers.Dense(units, use_bias=False, name="W1")
        self.query_projection = keras.layers.Dense(units, name="W2")
        self.score = keras.layers.Dense(1, use_bias=False, name="V")

    def call(self, values: tf.Tensor, query: tf.Tensor,
             mask: Optional[tf.Tensor] = None) -> Tuple[tf.Tensor, tf.Tensor]:
        hidden = tf.tanh(self.key_projection(values) + self.query_projection(query)[:, tf.newaxis, :])
        scores = tf.cast(tf.squeeze(self.score(hidden), axis=-1), tf.float32)
        if mask is not None:
            scores += (1.0 - tf.cast(mask, tf.float32)) * _MASKED_SCORE
        weights = tf.nn.softmax(scores, axis=1)
        if mask is not None:  # exact zeros on padding, even for extreme scores
            weights *= tf.cast(mask, tf.float32)
            weights /= tf.reduce_sum(weights, axis=1, keepdims=True) + 1e-9
        context = tf.reduce_sum(tf.cast(weights, values.dtype)[:, :, tf.newaxis] * values, axis=1)
        return context, weights

    def compute_mask(self, inputs, mask=None):
        return None

    def get_config(self):
        return {**super().get_config(), "units": self.units}
