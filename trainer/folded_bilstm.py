"""The exported network with the embedding folded into the LSTM's input projections.

At inference an LSTM step computes z = x_t·W + h·U + b, and x_t is the
embedding of one token, so x_t·W + b depends only on the token id. Computed
once for the whole vocabulary (E·W + b, one table per direction), it turns
the per-step input matmul into a row lookup: each step keeps only h·U, a
third of the multiply-adds with 128-dim embeddings and 64 units. Serving on
CPU is bound by those per-step matmuls (README, Serving latency).

Right padding needs no per-step mask either: the forward pass reads each
row's final state at its last real token, and the backward pass runs on
each row reversed within its own length, so no padded step ever feeds a real
one. Outputs on padding are not used (attention and max-pool mask them).

The result equals the Keras network's output to float rounding (tests check
it against the trained layers), at the cost of two [vocabulary, 4 × units]
tables (about 61 MB for 30k words and 64 units). It is a CPU inference path:
a GPU would run the Keras layer's cuDNN kernel faster, so export with
`TrainerConfig.serving_folded_lstm=False` for GPU serving.

Small batches take a third path. A single review is bound by per-step op
overhead (hundreds of sequential steps of tiny matrix products), which the
`while_loop` pays at every step; TensorFlow's fused sequence kernel
`BlockLSTMV2` (tensorflow/core/kernels/rnn/lstm_ops.cc, gate layout i, f,
c, o as Keras', no forget bias, no clipping at `cell_clip=0`) runs all steps
inside one op. For large batches the folded loop is faster (the fused kernel
multiplies the whole [embedding; h] input each step). The choice is made in
the served graph by the batch's size (`TrainerConfig.serving_fused_max_batch`,
set from `benchmarks/serving_latency.py`).
"""

from __future__ import annotations

from typing import Tuple

import tensorflow as tf
import tf_keras as keras

from . import features
from .model import ATTENTION_LAYER, LSTM_LAYER, trimmed_length

#: Keras orders an LSTM's gates (input, forget, cell, output); the tables put
#: the three sigmoid gates first so one sigmoid covers them.
_KERAS_GATES = ("i", "f", "g", "o")
_FOLDED_GATES = ("i", "f", "o", "g")


def _reorder_gates(weights: tf.Tensor) -> tf.Tensor:
    blocks = dict(zip(_KERAS_GATES, tf.split(weights, 4, axis=-1)))
    return tf.concat([blocks[gate] for gate in _FOLDED_GATES], axis=-1)


class _FoldedDirection(tf.Module):
    """One LSTM direction: a [vocabulary, 4 × units] input table and U."""

    def __init__(self, embeddings: tf.Tensor, lstm: keras.layers.LSTM, name: str):
        super().__init__(name=name)
        cell = lstm.cell
        if cell.activation is not keras.activations.tanh or \
                cell.recurrent_activation is not keras.activations.sigmoid:
            raise ValueError("folding needs tanh/sigmoid LSTM activations")
        self.units = cell.units
        self.input_table = tf.Variable(
            _reorder_gates(tf.matmul(embeddings, cell.kernel) + cell.bias),
            trainable=False, name="input_table")
        self.recurrent_kernel = tf.Variable(_reorder_gates(cell.recurrent_kernel),
                                            trainable=False, name="recurrent_kernel")

    def __call__(self, token_ids: tf.Tensor, lengths: tf.Tensor,
                 reverse: bool) -> Tuple[tf.Tensor, tf.Tensor]:
        """Outputs [batch, time, units] and the final state h [batch, units]."""
        if reverse:
            token_ids = tf.reverse_sequence(token_ids, lengths, seq_axis=1, batch_axis=0)
        projected = tf.gather(self.input_table, tf.transpose(token_ids))  # [time, batch, 4U]
        steps, batch = tf.shape(projected)[0], tf.shape(projected)[1]
        units, recurrent = self.units, self.recurrent_kernel

        def step(t, h, c, outputs):
            z = projected[t] + tf.matmul(h, recurrent)
            input_gate, forget_gate, output_gate = tf.split(tf.sigmoid(z[:, :3 * units]), 3, axis=1)
            c = forget_gate * c + input_gate * tf.tanh(z[:, 3 * units:])
            h = output_gate * tf.tanh(c)
            return t + 1, h, c, outputs.write(t, h)

        zeros = tf.zeros([batch, units])
        _, _, _, outputs = tf.while_loop(
            lambda t, *_: t < steps, step,
            (tf.constant(0), zeros, zeros, tf.TensorArray(tf.float32, size=steps)))
        sequence = tf.transpose(outputs.stack(), [1, 0, 2])
        final = tf.gather(sequence, lengths - 1, batch_dims=1)
        if reverse:
            sequence = tf.reverse_sequence(sequence, lengths, seq_axis=1, batch_axis=0)
        return sequence, final


class _FusedDirection(tf.Module):
    """One LSTM direction through the fused `BlockLSTMV2` kernel."""

    def __init__(self, lstm: keras.layers.LSTM, name: str):
        super().__init__(name=name)
        cell = lstm.cell
        self.units = cell.units
        # BlockLSTMV2 multiplies [x_t, h] by one [inputs + units, 4 × units] matrix.
        self.kernel = tf.Variable(tf.concat([cell.kernel, cell.recurrent_kernel], axis=0),
                                  trainable=False, name="kernel")
        self.bias = tf.Variable(cell.bias, trainable=False, name="bias")

    def __call__(self, embeddings: tf.Tensor, token_ids: tf.Tensor, lengths: tf.Tensor,
                 reverse: bool) -> Tuple[tf.Tensor, tf.Tensor]:
        """Outputs [batch, time, units] and the final state h [batch, units]."""
        if reverse:
            token_ids = tf.reverse_sequence(token_ids, lengths, seq_axis=1, batch_axis=0)
        inputs = tf.gather(embeddings, tf.transpose(token_ids))  # [time, batch, embedding]
        batch = tf.shape(inputs)[1]
        zeros = tf.zeros([batch, self.units])
        no_peephole = tf.zeros([self.units])
        outputs = tf.raw_ops.BlockLSTMV2(
            seq_len_max=tf.cast(tf.shape(inputs)[0], tf.int64), x=inputs, cs_prev=zeros,
            h_prev=zeros, w=self.kernel, wci=no_peephole, wcf=no_peephole, wco=no_peephole,
            b=self.bias, cell_clip=0.0, use_peephole=False)
        sequence = tf.transpose(outputs.h, [1, 0, 2])
        final = tf.gather(sequence, lengths - 1, batch_dims=1)
        if reverse:
            sequence = tf.reverse_sequence(sequence, lengths, seq_axis=1, batch_axis=0)
        return sequence, final


class FoldedNetwork(tf.Module):
    """Token ids → (P(positive) [batch], attention [batch, trimmed time]).

    Built from a trained float32 classifier (`model.build_model`); shares its
    attention, max-pool and output layers, replaces its embedding and BiLSTM.
    Batches of at most `fused_max_batch` reviews run the fused kernel (0: never).
    """

    def __init__(self, classifier: keras.Model, fused_max_batch: int = 0):
        super().__init__(name="folded_network")
        embedding = classifier.get_layer("embedding").embeddings
        bilstm = classifier.get_layer(LSTM_LAYER)
        self.forward = _FoldedDirection(embedding, bilstm.forward_layer, "forward")
        self.backward = _FoldedDirection(embedding, bilstm.backward_layer, "backward")
        self.fused_max_batch = fused_max_batch
        if fused_max_batch:
            self.embeddings = tf.Variable(embedding, trainable=False, name="embeddings")
            self.fused_forward = _FusedDirection(bilstm.forward_layer, "fused_forward")
            self.fused_backward = _FusedDirection(bilstm.backward_layer, "fused_backward")
        self.attention = classifier.get_layer(ATTENTION_LAYER)
        names = {layer.name for layer in classifier.layers}
        self.max_pool = classifier.get_layer("max_pool") if "max_pool" in names else None
        self.output_layer = classifier.get_layer("probability")

    # A tf.function, so a loaded SavedModel can call it too (benchmarks do).
    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.int64, name="token_ids")])
    def __call__(self, token_ids: tf.Tensor) -> Tuple[tf.Tensor, tf.Tensor]:
        token_ids = token_ids[:, :trimmed_length(token_ids)]
        mask = tf.not_equal(token_ids, features.PAD_ID)
        # Preprocessing never yields an all-padding row; if one came, it reads step 0.
        lengths = tf.maximum(tf.reduce_sum(tf.cast(mask, tf.int32), axis=1), 1)

        def folded():
            return (*self.forward(token_ids, lengths, reverse=False),
                    *self.backward(token_ids, lengths, reverse=True))

        def fused():
            return (*self.fused_forward(self.embeddings, token_ids, lengths, reverse=False),
                    *self.fused_backward(self.embeddings, token_ids, lengths, reverse=True))

        if self.fused_max_batch:
            forward_sequence, forward_h, backward_sequence, backward_h = tf.cond(
                tf.shape(token_ids)[0] <= self.fused_max_batch, fused, folded)
        else:
            forward_sequence, forward_h, backward_sequence, backward_h = folded()
        sequence = tf.concat([forward_sequence, backward_sequence], axis=-1)
        query = tf.concat([forward_h, backward_h], axis=-1)
        context, attention = self.attention(sequence, query, mask=mask)
        summary = context
        if self.max_pool is not None:
            summary = tf.concat([context, self.max_pool(sequence, mask=mask)], axis=-1)
        probability = self.output_layer(summary)
        return tf.reshape(probability, [-1]), attention
