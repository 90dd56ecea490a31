"""The BiLSTM + Bahdanau attention classifier.

Embedding (0 = padding, masked) → spatial dropout → Bidirectional LSTM
returning sequences and final states → query = [forward h; backward h] →
additive attention over the LSTM outputs → [context; masked max-pool of the
outputs] → dropout → sigmoid probability.

Training adds adversarial perturbations of the embedded reviews
(`AdversarialClassifier`); the exported model is the plain network.

The LSTM is kept cuDNN-eligible (tanh/sigmoid, no recurrent dropout, no
unroll, bias on, right-padded masks), and the batch is trimmed to its longest
review so no step is spent on padding beyond it.
"""

from __future__ import annotations

from typing import List, Optional

import tensorflow as tf
import tf_keras as keras

from .hparams import TrainerConfig
from . import features
from .attention import BahdanauAttention

ATTENTION_LAYER = "attention"
LSTM_LAYER = "bilstm"
PERTURBATION_LAYER = "embedding_perturbation"


def review_lengths(token_ids: tf.Tensor) -> tf.Tensor:
    """Real (non-padding) tokens per review: [batch] → int32, or a scalar for one review."""
    return tf.reduce_sum(tf.cast(tf.not_equal(token_ids, features.PAD_ID), tf.int32), axis=-1)


def trimmed_length(token_ids: tf.Tensor) -> tf.Tensor:
    """Steps a batch keeps after trimming: its longest review (at least 1)."""
    return tf.maximum(tf.reduce_max(review_lengths(token_ids)), 1)


@keras.utils.register_keras_serializable(package="imdb_sentiment")
class TrimPadding(keras.layers.Layer):
    """Cuts right padding beyond the longest row of the batch (at least 1 step)."""

    def call(self, token_ids: tf.Tensor) -> tf.Tensor:
        return token_ids[:, :trimmed_length(token_ids)]


@keras.utils.register_keras_serializable(package="imdb_sentiment")
class WordDropout(keras.layers.Layer):
    """In training, replaces a random share of real tokens with the OOV id."""

    def __init__(self, rate: float, oov_id: int, **kwargs):
        super().__init__(**kwargs)
        self.rate, self.oov_id = rate, oov_id

    def call(self, token_ids: tf.Tensor, training=None) -> tf.Tensor:
        if not training or self.rate <= 0:
            return token_ids
        drop = tf.random.uniform(tf.shape(token_ids)) < self.rate
        drop = tf.logical_and(drop, tf.not_equal(token_ids, features.PAD_ID))
        return tf.where(drop, tf.constant(self.oov_id, token_ids.dtype), token_ids)

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "oov_id": self.oov_id}


@keras.utils.register_keras_serializable(package="imdb_sentiment")
class EmbeddingPerturbation(keras.layers.Layer):
    """Identity, except during an adversarial training step.

    `AdversarialClassifier.train_step` sets `offset` (a tensor shaped like
    the embedded batch) for one forward pass and resets it to None. The
    layer has no weights, so serving and exported models never see it act.
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True
        self.offset: Optional[tf.Tensor] = None
        self.last_input: Optional[tf.Tensor] = None

    def call(self, embedded: tf.Tensor) -> tf.Tensor:
        if self.offset is None:
            return embedded
        self.last_input = embedded
        return embedded + tf.cast(self.offset, embedded.dtype)


def _add_gradients(clean, adversarial, weight: float):
    """clean + weight × adversarial, for dense or sparse (IndexedSlices) gradients."""
    if adversarial is None:
        return clean
    if isinstance(adversarial, tf.IndexedSlices):
        adversarial = tf.IndexedSlices(adversarial.values * weight, adversarial.indices,
                                       adversarial.dense_shape)
    else:
        adversarial = adversarial * weight
    if clean is None:
        return adversarial
    if isinstance(clean, tf.IndexedSlices) and isinstance(adversarial, tf.IndexedSlices):
        return tf.IndexedSlices(tf.concat([clean.values, adversarial.values], 0),
                                tf.concat([clean.indices, adversarial.indices], 0),
                                clean.dense_shape)
    return tf.convert_to_tensor(clean) + tf.convert_to_tensor(adversarial)


class AdversarialClassifier(keras.Model):
    """The classifier trained with adversarial perturbations of its embeddings.

    Each step (Miyato et al., 2017, "Adversarial training methods for
    semi-supervised text classification") takes the gradient of the loss
    with respect to the embedded reviews, moves every review's embeddings by
    `epsilon` × its own embedding norm in that direction, and adds the loss
    on the perturbed batch (× `weight`) to the clean loss. It regularises
    the word vectors and the LSTM against small shifts in meaning, at the
    cost of a second forward and backward pass per perturbed step; with
    `every` > 1 the steps between are plain ones.
    """

    def configure_adversary(self, epsilon: float, weight: float, every: int = 1) -> None:
        """`every` > 1 perturbs only every `every`-th step; the others are clean steps."""
        self.adversarial_epsilon, self.adversarial_weight = epsilon, weight
        self.adversarial_every = every

    def _scaled(self, loss: tf.Tensor) -> tf.Tensor:
        """The loss to differentiate (scaled under mixed precision); call under the tape."""
        if isinstance(self.optimizer, keras.mixed_precision.LossScaleOptimizer):
            return self.optimizer.get_scaled_loss(loss)
        return loss

    def _gradients(self, tape: tf.GradientTape, scaled_loss: tf.Tensor, sources: list) -> list:
        gradients = tape.gradient(scaled_loss, sources)
        if isinstance(self.optimizer, keras.mixed_precision.LossScaleOptimizer):
            return self.optimizer.get_unscaled_gradients(gradients)
        return gradients

    def train_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        every = getattr(self, "adversarial_every", 1)
        if every <= 1:
            prediction = self._fit_batch(x, y, sample_weight, adversarial=True)
        else:
            # Slots must exist before the branches: no variable may be created inside a cond.
            if not getattr(self.optimizer, "built", True):
                self.optimizer.build(self.trainable_variables)
            prediction = tf.cond(
                tf.equal(self.optimizer.iterations % every, 0),
                lambda: self._fit_batch(x, y, sample_weight, adversarial=True),
                lambda: self._fit_batch(x, y, sample_weight, adversarial=False))
        return self.compute_metrics(x, y, prediction, sample_weight)

    def _fit_batch(self, x, y, sample_weight, adversarial: bool) -> tf.Tensor:
        """One optimiser step on the batch, with or without its perturbed twin."""
        variables = self.trainable_variables
        if not adversarial:
            with tf.GradientTape() as tape:
                prediction = self(x, training=True)
                scaled_loss = self._scaled(self.compute_loss(x, y, prediction, sample_weight))
            gradients = self._gradients(tape, scaled_loss, variables)
            self.optimizer.apply_gradients(zip(gradients, variables))
            return prediction
        token_ids = x[features.TOKEN_IDS] if isinstance(x, dict) else x
        perturbation = self.get_layer(PERTURBATION_LAYER)
        embedding = self.get_layer("embedding")
        origin = tf.zeros([tf.shape(token_ids)[0], trimmed_length(token_ids), embedding.output_dim],
                          dtype=embedding.compute_dtype)
        try:
            with tf.GradientTape() as tape:
                tape.watch(origin)
                perturbation.offset = origin
                prediction = self(x, training=True)
                loss = self.compute_loss(x, y, prediction, sample_weight)
                scaled_loss = self._scaled(loss)
            *gradients, direction = self._gradients(tape, scaled_loss, variables + [origin])
            direction = tf.cast(tf.stop_gradient(direction), tf.float32)
            # The norm of each review's embedded sequence sets the step size,
            # so epsilon is relative and survives the embeddings growing.
            embedded_norm = tf.norm(tf.cast(tf.stop_gradient(perturbation.last_input), tf.float32),
                                    axis=[1, 2], keepdims=True)
            step = direction / (tf.norm(direction, axis=[1, 2], keepdims=True) + 1e-12)
            with tf.GradientTape() as adversarial_tape:
                perturbation.offset = self.adversarial_epsilon * embedded_norm * step
                adversarial_prediction = self(x, training=True)
                adversarial_loss = self._scaled(
                    self.compute_loss(x, y, adversarial_prediction, sample_weight))
            adversarial_gradients = self._gradients(adversarial_tape, adversarial_loss, variables)
        finally:
            perturbation.offset = perturbation.last_input = None
        combined = [_add_gradients(g, a, self.adversarial_weight)
                    for g, a in zip(gradients, adversarial_gradients)]
        self.optimizer.apply_gradients(zip(combined, variables))
        return prediction


@keras.utils.register_keras_serializable(package="imdb_sentiment")
class MaskedMaxPool(keras.layers.Layer):
    """Max over the unmasked time steps."""

    def call(self, values: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
        lowest = tf.cast(values.dtype.min, values.dtype)
        return tf.reduce_max(tf.where(mask[:, :, tf.newaxis], values, lowest), axis=1)

    def compute_mask(self, inputs, mask=None):
        return None


def build_lstm(hparams: TrainerConfig) -> keras.layers.LSTM:
    """The recurrent layer; its configuration decides cuDNN eligibility."""
    return keras.layers.LSTM(
        hparams.lstm_units,
        activation="tanh",
        recurrent_activation="sigmoid",
        recurrent_dropout=0.0,
        unroll=False,
        use_bias=True,
        return_sequences=True,
        return_state=True,
    )


def cudnn_ineligibility(lstm: keras.layers.LSTM) -> List[str]:
    """Why Keras would not use the cuDNN kernel for this layer ([] = eligible)."""
    config = lstm.get_config()
    reasons = []
    if config["activation"] != "tanh":
        reasons.append(f"activation={config['activation']}")
    if config["recurrent_activation"] != "sigmoid":
        reasons.append(f"recurrent_activation={config['recurrent_activation']}")
    if config["recurrent_dropout"]:
        reasons.append(f"recurrent_dropout={config['recurrent_dropout']}")
    if config["unroll"]:
        reasons.append("unroll=True")
    if not config["use_bias"]:
        reasons.append("use_bias=False")
    return reasons


def build_model(hparams: TrainerConfig, vocabulary_size: int) -> keras.Model:
    """The classifier: token ids [batch, time] → P(positive) [batch, 1].

    `vocabulary_size` is the number of words TF Transform kept (≤ vocab_size).
    The attention weights are reachable through `explainer_model`.
    """
    token_ids = keras.Input(shape=(None,), dtype=tf.int64, name=features.TOKEN_IDS)
    trimmed = TrimPadding(name="trim_padding")(token_ids)
    mask = tf.not_equal(trimmed, features.PAD_ID)
    dropped = WordDropout(hparams.word_dropout, features.oov_id(vocabulary_size),
                          name="word_dropout")(trimmed)
    embedded = keras.layers.Embedding(
        features.vocabulary_input_dim(vocabulary_size), hparams.embedding_dim,
        mask_zero=True, name="embedding")(dropped)
    embedded = EmbeddingPerturbation(name=PERTURBATION_LAYER)(embedded)
    embedded = keras.layers.SpatialDropout1D(hparams.embedding_dropout)(embedded)
    sequence, forward_h, _, backward_h, _ = keras.layers.Bidirectional(
        build_lstm(hparams), name=LSTM_LAYER)(embedded)
    query = keras.layers.Concatenate(name="query")([forward_h, backward_h])
    context, _ = BahdanauAttention(hparams.attention_units, name=ATTENTION_LAYER)(
        sequence, query, mask=mask)
    summary: List[tf.Tensor] = [context]
    if hparams.max_pool:
        summary.append(MaskedMaxPool(name="max_pool")(sequence, mask=mask))
    hidden = keras.layers.Concatenate(name="summary")(summary) if len(summary) > 1 else context
    hidden = keras.layers.Dropout(hparams.head_dropout)(hidden)
    probability = keras.layers.Dense(1, activation="sigmoid", dtype="float32",
                                     name="probability")(hidden)
    if hparams.adversarial_epsilon > 0:
        model = AdversarialClassifier(token_ids, probability, name="bilstm_attention")
        model.configure_adversary(hparams.adversarial_epsilon, hparams.adversarial_weight,
                                  hparams.adversarial_every)
        return model
    return keras.Model(token_ids, probability, name="bilstm_attention")


def explainer_model(classifier: keras.Model) -> keras.Model:
    """Same layers and weights; outputs (probability, attention weights)."""
    weights = classifier.get_layer(ATTENTION_LAYER).output[1]
    return keras.Model(classifier.input, [classifier.output, weights], name="explainer")


def compile_model(model: keras.Model, hparams: TrainerConfig, total_steps: int) -> None:
    """AdamW with linear warm-up then cosine decay, and gradient-norm clipping.

    With `weight_average_momentum` the optimizer also keeps a moving average
    of the weights, which `AverageWeightsEachEpoch` swaps in.
    """
    warmup = max(1, int(hparams.warmup_fraction * total_steps))
    schedule = keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=0.0, decay_steps=max(1, total_steps - warmup),
        warmup_target=hparams.learning_rate, warmup_steps=warmup)
    averaging = hparams.weight_average_momentum > 0
    optimizer = keras.optimizers.AdamW(learning_rate=schedule, weight_decay=hparams.weight_decay,
                                       clipnorm=hparams.clipnorm, use_ema=averaging,
                                       ema_momentum=hparams.weight_average_momentum or 0.99)
    model.compile(optimizer=optimizer, loss=keras.losses.BinaryCrossentropy(),
                  metrics=[keras.metrics.BinaryAccuracy(name="accuracy"),
                           keras.metrics.AUC(name="auc")])

