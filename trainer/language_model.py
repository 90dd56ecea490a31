"""Language-model pre-training of the classifier's embedding and BiLSTM.

Before the classifier sees a label, its embedding and BiLSTM learn to predict
words from the training reviews' own text (Dai & Le, 2015, "Semi-supervised
sequence learning"): the forward LSTM's output at step t predicts token t+1,
the backward LSTM's predicts token t-1. A sampled softmax over the vocabulary
keeps the cost of each step near that of a classifier step. The pre-trained
layers are then copied into the classifier, which is fine-tuned as usual.
Only the rows it is given are read: the train split's (never eval or report).
"""

from __future__ import annotations

import logging
import time
from typing import List, Optional, Tuple

import numpy as np
import tensorflow as tf
import tf_keras as keras

from .hparams import TrainerConfig
from . import features
from .model import LSTM_LAYER, build_lstm, trimmed_length


def build_encoder(hparams: TrainerConfig, vocabulary_size: int) -> keras.Model:
    """Token ids → BiLSTM outputs [batch, time, 2 × units], layers named as in the classifier."""
    token_ids = keras.Input(shape=(None,), dtype=tf.int64)
    embedded = keras.layers.Embedding(features.vocabulary_input_dim(vocabulary_size),
                                      hparams.embedding_dim, mask_zero=True,
                                      name="embedding")(token_ids)
    sequence = keras.layers.Bidirectional(build_lstm(hparams), name=LSTM_LAYER)(embedded)[0]
    return keras.Model(token_ids, sequence, name="language_model_encoder")


class _SoftmaxHead(tf.Module):
    """Output word vectors and biases of one direction's next-word softmax."""

    def __init__(self, classes: int, units: int, name: str):
        super().__init__(name=name)
        self.weights = tf.Variable(tf.random.normal([classes, units], stddev=units ** -0.5),
                                   name="weights")
        self.biases = tf.Variable(tf.zeros([classes]), name="biases")


def _direction_loss(head: _SoftmaxHead, outputs: tf.Tensor, targets: tf.Tensor,
                    keep: tf.Tensor, num_sampled: int, classes: int) -> tf.Tensor:
    """Mean sampled-softmax loss of predicting `targets` from `outputs` where `keep`."""
    inputs = tf.boolean_mask(outputs, keep)
    labels = tf.reshape(tf.boolean_mask(targets, keep), [-1, 1])
    # Token ids are ordered by frequency, which the log-uniform sampler assumes.
    losses = tf.nn.sampled_softmax_loss(head.weights, head.biases, labels, inputs,
                                        num_sampled=num_sampled, num_classes=classes)
    return tf.reduce_mean(losses)


def pretrain_language_model(hparams: TrainerConfig, vocabulary_size: int, token_ids: np.ndarray,
                            initial_embeddings: Optional[np.ndarray] = None,
                            num_sampled: int = 256) -> Tuple[keras.Model, List[float]]:
    """The encoder after `hparams.pretrain_lm_epochs` epochs over right-padded `token_ids`,
    and its mean loss per epoch."""
    start = time.perf_counter()
    classes = features.vocabulary_input_dim(vocabulary_size)
    encoder = build_encoder(hparams, vocabulary_size)
    if initial_embeddings is not None:
        encoder.get_layer("embedding").set_weights([initial_embeddings])
    units = hparams.lstm_units
    forward_head = _SoftmaxHead(classes, units, "forward_softmax")
    backward_head = _SoftmaxHead(classes, units, "backward_softmax")
    variables = (encoder.trainable_variables + list(forward_head.trainable_variables)
                 + list(backward_head.trainable_variables))
    optimizer = keras.optimizers.Adam(hparams.pretrain_lm_learning_rate, clipnorm=hparams.clipnorm)

    @tf.function(reduce_retracing=True)
    def step(ids: tf.Tensor) -> tf.Tensor:
        ids = ids[:, :trimmed_length(ids)]
        real = tf.not_equal(ids, features.PAD_ID)
        with tf.GradientTape() as tape:
            sequence = encoder(ids, training=True)
            forward, backward = sequence[..., :units], sequence[..., units:]
            # Right padding: a real target implies a real source on either side.
            loss = 0.5 * (
                _direction_loss(forward_head, forward[:, :-1], ids[:, 1:], real[:, 1:],
                                num_sampled, classes)
                + _direction_loss(backward_head, backward[:, 1:], ids[:, :-1], real[:, 1:],
                                  num_sampled, classes))
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return loss

    order = np.argsort(np.count_nonzero(token_ids, axis=1), kind="stable")
    batch = hparams.batch_size
    # Batches of reviews of similar length (as in classifier training), in random order.
    batches = [order[i:i + batch] for i in range(0, len(order), batch)]
    rng = np.random.default_rng(hparams.seed)
    epoch_losses: List[float] = []
    for epoch in range(hparams.pretrain_lm_epochs):
        losses = [float(step(tf.constant(token_ids[batches[index]])))
                  for index in rng.permutation(len(batches))]
        epoch_losses.append(float(np.mean(losses)))
        logging.info("Language-model pre-training epoch %d: loss %.3f, %.0fs", epoch + 1,
                     epoch_losses[-1], time.perf_counter() - start)
    return encoder, epoch_losses


def copy_pretrained_layers(encoder: keras.Model, classifier: keras.Model) -> None:
    """Puts the pre-trained embedding and BiLSTM weights into the classifier."""
    for name in ("embedding", LSTM_LAYER):
        classifier.get_layer(name).set_weights(encoder.get_layer(name).get_weights())
