"""Attention layer, model shapes, cuDNN eligibility and device configuration."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from imdb_sentiment.pipeline.config import profile_config
from imdb_sentiment.trainer.hparams import TrainerConfig
from imdb_sentiment.trainer import train
from imdb_sentiment.trainer.attention import BahdanauAttention
from imdb_sentiment.trainer.model import (LSTM_LAYER, PERTURBATION_LAYER, AdversarialClassifier,
                                          TrimPadding, build_model, cudnn_ineligibility, explainer_model)

HPARAMS = TrainerConfig(vocab_size=50, embedding_dim=8, lstm_units=4, attention_units=4,
                        max_sequence_length=10)


def test_attention_weights_sum_to_one_and_ignore_padding():
    layer = BahdanauAttention(6)
    values = tf.random.normal([3, 7, 5])
    query = tf.random.normal([3, 5])
    mask = tf.constant([[1] * 7, [1] * 4 + [0] * 3, [1] + [0] * 6]) > 0
    context, weights = layer(values, query, mask=mask)
    assert context.shape == (3, 5) and weights.shape == (3, 7)
    np.testing.assert_allclose(tf.reduce_sum(weights, axis=1).numpy(), 1.0, atol=1e-5)
    assert np.all(weights.numpy()[~mask.numpy()] == 0.0)
    np.testing.assert_allclose(context[2].numpy(), values[2, 0].numpy(), atol=1e-5)


def test_attention_score_is_the_additive_formula():
    layer = BahdanauAttention(3)
    values, query = tf.random.normal([2, 4, 5]), tf.random.normal([2, 5])
    _, weights = layer(values, query)
    w1 = layer.key_projection.kernel
    w2, b2 = layer.query_projection.kernel, layer.query_projection.bias
    v = layer.score.kernel
    scores = tf.squeeze(tf.tanh(values @ w1 + (query @ w2 + b2)[:, None, :]) @ v, -1)
    np.testing.assert_allclose(weights.numpy(), tf.nn.softmax(scores, axis=1).numpy(), atol=1e-5)


def test_trim_padding_cuts_to_the_longest_row_but_never_to_zero():
    ids = tf.constant([[5, 6, 0, 0, 0], [7, 0, 0, 0, 0]], tf.int64)
    assert TrimPadding()(ids).shape == (2, 2)
    assert TrimPadding()(tf.zeros([2, 5], tf.int64)).shape == (2, 1)


@pytest.mark.slow
def test_model_shapes_and_explainer_share_weights():
    model = build_model(HPARAMS, vocabulary_size=50)
    ids = tf.constant([[3, 4, 5, 0, 0, 0], [9, 0, 0, 0, 0, 0]], tf.int64)
    probability = model(ids)
    assert probability.shape == (2, 1)
    assert np.all((probability.numpy() >= 0) & (probability.numpy() <= 1))
    explainer = explainer_model(model)
    same, attention = explainer(ids)
    np.testing.assert_allclose(same.numpy(), probability.numpy(), atol=1e-6)
    assert attention.shape == (2, 3)  # trimmed to the longest review
    np.testing.assert_allclose(attention.numpy().sum(axis=1), 1.0, atol=1e-5)
    assert attention.numpy()[1, 1:].max() == 0.0


@pytest.mark.slow
def test_padding_does_not_change_the_prediction():
    model = build_model(HPARAMS, vocabulary_size=50)
    short = model(tf.constant([[3, 4, 5]], tf.int64))
    padded = model(tf.constant([[3, 4, 5, 0, 0, 0, 0, 0]], tf.int64))
    in_batch = model(tf.constant([[3, 4, 5, 0, 0], [1, 2, 3, 4, 5]], tf.int64))[:1]
    np.testing.assert_allclose(short.numpy(), padded.numpy(), atol=1e-6)
    np.testing.assert_allclose(short.numpy(), in_batch.numpy(), atol=1e-6)


def test_default_lstm_is_cudnn_eligible_and_relu_is_not():
    model = build_model(profile_config("full").trainer, vocabulary_size=100)
    bidirectional = model.get_layer(LSTM_LAYER)
    for lstm in (bidirectional.forward_layer, bidirectional.backward_layer):
        assert cudnn_ineligibility(lstm) == []
    notebook_lstm = keras.layers.LSTM(8, recurrent_activation="relu", recurrent_dropout=0.1)
    assert cudnn_ineligibility(notebook_lstm) == ["recurrent_activation=relu", "recurrent_dropout=0.1"]


def _visible_gpus(monkeypatch, count: int) -> None:
    """Makes the trainer see `count` GPUs, whatever this machine has."""
    gpus = [tf.config.PhysicalDevice(name=f"/physical_device:GPU:{i}", device_type="GPU")
            for i in range(count)]
    real = tf.config.list_physical_devices
    monkeypatch.setattr(train.tf.config, "list_physical_devices",
                        lambda kind=None: list(gpus) if kind == "GPU" else real(kind))


@pytest.mark.slow
def test_mixed_precision_policy_follows_the_devices(monkeypatch):
    _visible_gpus(monkeypatch, 0)
    try:
        assert train.configure_precision(TrainerConfig(mixed_precision="auto")) == "float32"
        assert train.configure_precision(TrainerConfig(mixed_precision="on")) == "mixed_float16"
        model = build_model(HPARAMS, vocabulary_size=50)
        assert model.get_layer("embedding").compute_dtype == "float16"
        assert model.output.dtype == tf.float32  # sigmoid output stays float32
        with pytest.raises(ValueError):
            train.configure_precision(TrainerConfig(mixed_precision="maybe"))
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_auto_precision_uses_float16_when_a_gpu_is_visible(monkeypatch):
    """The GPU branch, by configuration: TensorFlow is told a GPU is there."""
    _visible_gpus(monkeypatch, 1)
    try:
        assert train.configure_precision(TrainerConfig(mixed_precision="auto")) == "mixed_float16"
        assert train.configure_precision(TrainerConfig(mixed_precision="off")) == "float32"
    finally:
        keras.mixed_precision.set_global_policy("float32")


@pytest.mark.parametrize("gpus, mirrored", [(0, False), (1, False), (2, True), (4, True)])
def test_several_gpus_train_mirrored_and_one_device_trains_alone(monkeypatch, gpus, mirrored):
    _visible_gpus(monkeypatch, gpus)
    sentinel = object()
    monkeypatch.setattr(train.tf.distribute, "MirroredStrategy", lambda: sentinel)
    strategy = train.distribution_strategy()
    assert (strategy is sentinel) == mirrored
    if not mirrored:
        assert strategy is tf.distribute.get_strategy()


def test_bucket_boundaries_cover_the_sequence_length():
    assert train.bucket_boundaries(400, 8) == [50, 100, 150, 200, 250, 300, 350]
    assert train.bucket_boundaries(64, 1) == [64]


@pytest.mark.slow
def test_model_learns_a_separable_toy_task():
    """A real (tiny) fit: token 3 means positive, token 4 negative. Without the
    adversarial step, whose graph-mode fit has its own test (under mixed precision)."""
    rng = np.random.default_rng(0)
    rows, labels = [], []
    for _ in range(256):
        label = int(rng.integers(0, 2))
        length = int(rng.integers(2, 9))
        row = list(rng.integers(5, 40, size=length))
        row[int(rng.integers(0, length))] = 3 if label else 4
        rows.append(row + [0] * (10 - length))
        labels.append(label)
    dataset = tf.data.Dataset.from_tensor_slices(
        (np.array(rows, np.int64), np.array(labels, np.float32))).batch(32)
    hparams = TrainerConfig(vocab_size=50, embedding_dim=16, lstm_units=8, attention_units=8,
                            max_sequence_length=10, epochs=8, learning_rate=1e-2, head_dropout=0.0,
                            embedding_dropout=0.0, early_stopping_patience=8,
                            adversarial_epsilon=0.0)
    model, history = train.train(hparams, dataset, dataset, 256, vocabulary_size=50)
    assert history["best_epoch"]["val_accuracy"] > 0.9
    assert [e["epoch"] for e in history["epochs"]][0] == 1


@pytest.mark.slow
def test_predict_by_length_matches_the_plain_model_in_request_order():
    from imdb_sentiment.trainer.signatures import predict_by_length

    model = build_model(HPARAMS, vocabulary_size=50)
    ids = tf.constant([[3, 4, 5, 6, 7, 8], [9, 0, 0, 0, 0, 0], [3, 4, 0, 0, 0, 0],
                       [5, 5, 5, 5, 5, 0], [7, 0, 0, 0, 0, 0]], tf.int64)
    chunked = tf.function(lambda x: predict_by_length(lambda c: model(c)[:, 0], x, chunk_size=2))
    expected = tf.reshape(model(ids), [-1]).numpy()
    np.testing.assert_allclose(chunked(ids).numpy(), expected, atol=1e-6)
    assert chunked(tf.zeros([0, 6], tf.int64)).shape == (0,)


def _randomised(model: keras.Model, seed: int = 0) -> keras.Model:
    """Weights moved off their initial values, so every gate and bias matters."""
    rng = np.random.default_rng(seed)
    model.set_weights([w + rng.normal(0, 0.3, w.shape).astype(w.dtype) for w in model.get_weights()])
    return model


@pytest.mark.parametrize("max_pool,fused_max_batch", [(True, 0), (False, 0), (True, 64), (False, 8)])
@pytest.mark.slow
def test_folded_network_gives_the_keras_networks_probability_and_attention(max_pool,
                                                                          fused_max_batch):
    """Both CPU paths: the folded loop (fused_max_batch 0) and the fused kernel (batch ≤ it)."""
    from imdb_sentiment.trainer.folded_bilstm import FoldedNetwork

    model = _randomised(build_model(TrainerConfig(**{**HPARAMS.__dict__, "max_pool": max_pool}),
                                    vocabulary_size=50))

    def FoldedNetwork(model, _class=FoldedNetwork):  # noqa: N802 - the class under test
        return _class(model, fused_max_batch)
    # Lengths 1 to full, in no order; ids include the last word (50) and the OOV id (51).
    ids = tf.constant([[3, 4, 5, 6, 7, 8, 9, 10], [9, 0, 0, 0, 0, 0, 0, 0],
                       [51, 4, 0, 0, 0, 0, 0, 0], [5, 50, 5, 12, 5, 0, 0, 0],
                       [7, 7, 7, 7, 7, 7, 7, 0]], tf.int64)
    expected_probability, expected_attention = explainer_model(model)(ids)
    probability, attention = FoldedNetwork(model)(ids)
    np.testing.assert_allclose(probability.numpy(), expected_probability.numpy()[:, 0], atol=1e-5)
    np.testing.assert_allclose(attention.numpy(), expected_attention.numpy(), atol=1e-5)
    # Trailing padding beyond the batch's longest row changes nothing.
    padded = tf.pad(ids, [[0, 0], [0, 5]])
    np.testing.assert_allclose(FoldedNetwork(model)(padded)[0].numpy(), probability.numpy(),
                               atol=1e-6)


@pytest.mark.slow
def test_both_inference_networks_the_export_can_choose_agree():
    from imdb_sentiment.trainer.signatures import inference_network

    model = _randomised(build_model(HPARAMS, vocabulary_size=50), seed=1)
    ids = tf.constant([[3, 4, 5, 6, 0, 0], [9, 0, 0, 0, 0, 0], [51, 50, 7, 7, 7, 7]], tf.int64)
    keras_probability, keras_attention = inference_network(model, folded=False)(ids)
    folded_probability, folded_attention = inference_network(model, folded=True)(ids)
    assert keras_probability.shape == folded_probability.shape == (3,)
    np.testing.assert_allclose(folded_probability.numpy(), keras_probability.numpy(), atol=1e-5)
    np.testing.assert_allclose(folded_attention.numpy(), keras_attention.numpy(), atol=1e-5)


@pytest.mark.slow
def test_the_fused_kernel_serves_small_batches_and_the_folded_loop_large_ones(monkeypatch):
    from imdb_sentiment.trainer import folded_bilstm

    model = _randomised(build_model(HPARAMS, vocabulary_size=50), seed=2)
    calls = []
    for name in ("_FusedDirection", "_FoldedDirection"):
        cls = getattr(folded_bilstm, name)
        original = cls.__call__

        def traced(self, *args, _original=original, _name=name, **kwargs):
            calls.append(_name)  # runs when the branch is traced, with its batch size
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(cls, "__call__", traced)
    network = folded_bilstm.FoldedNetwork(model, fused_max_batch=2)
    one, three = tf.constant([[3, 4, 0]], tf.int64), tf.constant([[3, 4, 0]] * 3, tf.int64)
    expected = explainer_model(model)(three)[0].numpy()[:, 0]
    np.testing.assert_allclose(network(one)[0].numpy(), expected[:1], atol=1e-5)
    np.testing.assert_allclose(network(three)[0].numpy(), expected, atol=1e-5)
    assert set(calls) == {"_FusedDirection", "_FoldedDirection"}  # tf.cond traced both
    # The choice is made at run time by the batch's size, inside one graph.
    graph = network.__call__.get_concrete_function().graph.as_graph_def()
    ops = {node.op for node in graph.node} | {node.op for f in graph.library.function
                                               for node in f.node_def}
    assert "BlockLSTMV2" in ops and ("While" in ops or "StatelessWhile" in ops)
    assert "If" in ops or "StatelessIf" in ops


def test_folded_network_tables_hold_each_words_input_projection():
    from imdb_sentiment.trainer.folded_bilstm import FoldedNetwork

    model = _randomised(build_model(HPARAMS, vocabulary_size=50))
    folded = FoldedNetwork(model)
    embeddings = model.get_layer("embedding").embeddings
    cell = model.get_layer(LSTM_LAYER).forward_layer.cell
    units = HPARAMS.lstm_units
    assert folded.forward.input_table.shape == (embeddings.shape[0], 4 * units)
    projection = (embeddings @ cell.kernel + cell.bias).numpy()
    table = folded.forward.input_table.numpy()
    # Keras gate blocks (i, f, g, o) are stored as (i, f, o, g).
    for keras_block, table_block in ((0, 0), (1, 1), (2, 3), (3, 2)):
        np.testing.assert_allclose(table[:, table_block * units:(table_block + 1) * units],
                                   projection[:, keras_block * units:(keras_block + 1) * units],
                                   atol=1e-6)


def test_ppmi_svd_embeddings_put_words_used_alike_close_together():
    from imdb_sentiment.trainer.embeddings import ppmi_svd_embeddings

    rng = np.random.default_rng(0)
    # ids 3/4 appear next to 10-14, ids 5/6 next to 20-24; 1, 2 are filler.
    rows = []
    for _ in range(400):
        a, b = (3, 10) if rng.random() < 0.5 else (4, 10)
        c, d = (5, 20) if rng.random() < 0.5 else (6, 20)
        rows.append([a, b + rng.integers(0, 5), 1, 2, c, d + rng.integers(0, 5), 0, 0])
    vectors = ppmi_svd_embeddings(np.array(rows, np.int64), input_dim=30, dim=4, window=1)
    assert vectors.shape == (30, 4) and np.all(vectors[0] == 0)
    cosine = lambda i, j: vectors[i] @ vectors[j] / np.linalg.norm(vectors[i]) / np.linalg.norm(vectors[j])  # noqa: E731
    assert cosine(3, 4) > 0.9 and cosine(5, 6) > 0.9
    assert cosine(3, 5) < cosine(3, 4) - 0.3


def _toy_dataset(count: int = 128) -> tf.data.Dataset:
    rng = np.random.default_rng(1)
    rows = rng.integers(1, 40, size=(count, 10)).astype(np.int64)
    labels = (rows[:, 0] > 20).astype(np.float32)
    return tf.data.Dataset.from_tensor_slices((rows, labels)).batch(32)


TOY = dict(vocab_size=50, embedding_dim=8, lstm_units=4, attention_units=4, max_sequence_length=10,
           epochs=3, early_stopping_patience=5, pretrain_embeddings=False)


def _one_step_weights(epsilon: float, start_iteration: int = 0, **overrides) -> list:
    """Weights after one training step from a fixed start, dropout off.

    The step runs eagerly: the same `train_step` code, without the half-minute trace
    of the BiLSTM's training graph per model. Graph mode trains in
    `test_adversarial_model_trains_under_mixed_precision...` and in every pipeline run.
    """
    hparams = TrainerConfig(**{**TOY, "word_dropout": 0.0, "embedding_dropout": 0.0,
                               "head_dropout": 0.0, "adversarial_epsilon": epsilon, **overrides})
    keras.utils.set_random_seed(0)
    model = build_model(hparams, 50)
    # A tiny epsilon keeps Adam's first step a pure function of the gradient signs.
    model.compile(optimizer=keras.optimizers.Adam(0.01, epsilon=1e-15), loss="binary_crossentropy",
                  run_eagerly=True)
    model.optimizer.iterations.assign(start_iteration)
    model.fit(_toy_dataset().take(1), epochs=1, verbose=0)
    assert model.get_layer(PERTURBATION_LAYER).offset is None  # reset after the step
    return [w.copy() for w in model.get_weights()]


@pytest.mark.slow
def test_adversarial_step_uses_the_perturbed_batch():
    # Adam's first step depends only on the gradient's sign pattern, so
    # clean + adversarial gradients move the weights exactly as the clean
    # gradients alone do when the perturbation is negligible; a real
    # perturbation changes the adversarial gradients and so the step.
    plain = _one_step_weights(0.0)
    negligible = _one_step_weights(1e-9)
    perturbed = _one_step_weights(0.5)
    def largest_difference(weights):
        return max(float(np.abs(a - b).max()) for a, b in zip(plain, weights))

    # A sign flip moves a weight by 2 × the learning rate (0.02); float noise
    # in gradients near zero moves a few by far less.
    assert largest_difference(negligible) < 1e-3
    assert largest_difference(perturbed) > 1e-2


@pytest.mark.slow
def test_adversarial_every_other_step_perturbs_even_steps_only():
    def largest_difference(first, second):
        return max(float(np.abs(a - b).max()) for a, b in zip(first, second))

    # Step 0 (even) is adversarial: the same step as with every step perturbed.
    assert largest_difference(_one_step_weights(0.5, adversarial_every=2),
                              _one_step_weights(0.5, adversarial_every=1)) < 1e-6
    # Step 1 (odd) is a plain step: the perturbation does not enter it.
    odd = _one_step_weights(0.5, start_iteration=1, adversarial_every=2)
    assert largest_difference(odd, _one_step_weights(0.0, start_iteration=1)) < 1e-3
    assert largest_difference(odd, _one_step_weights(0.5, start_iteration=1,
                                                     adversarial_every=1)) > 1e-2


@pytest.mark.slow
def test_adversarial_model_trains_under_mixed_precision_and_exports_a_plain_twin():
    from imdb_sentiment.trainer.signatures import float32_twin

    hparams = TrainerConfig(**TOY, adversarial_epsilon=0.05, mixed_precision="on")
    try:
        model, history = train.train(hparams, _toy_dataset(), _toy_dataset(), 128,
                                     vocabulary_size=50)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert isinstance(model, AdversarialClassifier)
    assert all(np.isfinite(epoch["loss"]) for epoch in history["epochs"])
    twin = float32_twin(model, hparams, 50)
    assert not isinstance(twin, AdversarialClassifier)  # exported: the stock train_step
    rows = tf.constant([[3, 4, 5, 0], [6, 7, 8, 9]], tf.int64)
    np.testing.assert_allclose(twin(rows).numpy(), model(rows).numpy(), atol=2e-3)


def _gaps_at_validation(hparams: TrainerConfig, callbacks: list) -> list:
    """Per epoch: how far the weights fit validates are from the optimizer's average."""
    keras.utils.set_random_seed(0)
    model = train.build_classifier(hparams, 50, 128)
    model.run_eagerly = True  # the callbacks' logic, without tracing the BiLSTM's graph
    gaps = []

    class Record(keras.callbacks.Callback):
        def on_test_begin(self, logs=None):
            averages = model.optimizer._model_variables_moving_average
            gaps.append(max(float(np.abs(a.numpy() - v.numpy()).max())
                            for a, v in zip(averages, model.trainable_variables)))

    model.fit(_toy_dataset(), validation_data=_toy_dataset(), epochs=hparams.epochs, verbose=0,
              callbacks=[*callbacks, Record()])
    return gaps


@pytest.mark.slow
def test_each_epoch_is_evaluated_and_continued_with_the_averaged_weights():
    hparams = TrainerConfig(**{**TOY, "weight_average_momentum": 0.9, "epochs": 2})
    assert _gaps_at_validation(hparams, train.epoch_callbacks(hparams)) == [0.0, 0.0]
    # Without the callback the validation pass sees the raw weights, which differ.
    assert min(_gaps_at_validation(hparams, [])) > 1e-4
    assert train.epoch_callbacks(TrainerConfig(**TOY)) == []
    with pytest.raises(ValueError, match="weight_average_momentum"):
        TrainerConfig(weight_average_momentum=1.0)


def test_the_trainers_input_pipelines_run_without_tf_data_autotuning(tmp_path):
    """Autotuning makes destroying a long-lived iterator wait up to a minute (datasets.py)."""
    from imdb_sentiment.trainer import features, linear_baseline
    from imdb_sentiment.trainer.datasets import with_autotuning

    path = str(tmp_path / "part-0.gz")
    with tf.io.TFRecordWriter(path, options="GZIP") as writer:
        for label in (0, 1, 1):
            example = tf.train.Example(features=tf.train.Features(feature={
                features.TOKEN_IDS: tf.train.Feature(int64_list=tf.train.Int64List(value=[5, 6, 0, 0])),
                features.LABEL: tf.train.Feature(int64_list=tf.train.Int64List(value=[label])),
                features.NGRAM_IDS: tf.train.Feature(int64_list=tf.train.Int64List(value=[1, 2])),
                features.NGRAM_WEIGHTS: tf.train.Feature(float_list=tf.train.FloatList(value=[.5, .5])),
            }))
            writer.write(example.SerializeToString())
    spec = {features.TOKEN_IDS: tf.io.FixedLenFeature([4], tf.int64),
            features.LABEL: tf.io.FixedLenFeature([1], tf.int64)}
    sequences, count = train.make_dataset(path, spec, TrainerConfig(**TOY), training=True)
    bags, bag_count = linear_baseline.make_dataset(path, batch_size=2, training=True)
    assert count == bag_count == 3
    for dataset in (sequences, bags):
        assert dataset.options().autotune.enabled is False
        assert sum(int(tf.size(labels)) for _, labels in dataset) == 3

    def two_epochs(autotune: bool) -> list:
        keras.utils.set_random_seed(0)
        dataset, _ = train.make_dataset(path, spec, TrainerConfig(**{**TOY, "batch_size": 1}), True)
        if autotune:
            dataset = with_autotuning(dataset, enabled=True)
        return [(ids.numpy().tolist(), labels.numpy().tolist())
                for _ in range(2) for ids, labels in dataset]

    # The setting changes no batch and no order: training sees the same data.
    assert two_epochs(autotune=False) == two_epochs(autotune=True)


def test_warmup_records_are_tf_serving_prediction_logs_for_the_public_signatures(tmp_path):
    from tensorflow_serving.apis import prediction_log_pb2

    from imdb_sentiment.trainer import warmup

    path = warmup.write_warmup_requests(str(tmp_path))
    assert path.endswith("assets.extra/tf_serving_warmup_requests")
    raw = list(tf.data.TFRecordDataset(path).as_numpy_iterator())
    logs = [prediction_log_pb2.PredictionLog.FromString(r) for r in raw]
    signatures = sorted((log.WhichOneof("log_type"), getattr(log, log.WhichOneof("log_type"))
                         .request.model_spec.signature_name) for log in logs)
    assert signatures == sorted([("predict_log", "serving_default"), ("predict_log", "explain"),
                                 ("classify_log", "classify")] * 2)
    batch = [log.predict_log.request.inputs["text"] for log in logs if log.HasField("predict_log")
             and log.predict_log.request.model_spec.signature_name == "explain"]
    assert sorted(len(tf.make_ndarray(t)) for t in batch) == [1, len(warmup.SAMPLE_REVIEWS)]


@pytest.mark.slow
def test_language_model_pretraining_learns_to_predict_neighbours_and_seeds_the_classifier():
    from imdb_sentiment.trainer.language_model import copy_pretrained_layers, pretrain_language_model

    # Each review counts up by one from a random start: the next and the
    # previous word are fully predictable, which a random encoder cannot do.
    rng = np.random.default_rng(0)
    starts = rng.integers(1, 30, size=256)
    lengths = rng.integers(4, 11, size=256)
    rows = np.zeros((256, 10), np.int64)
    for row, (start, length) in enumerate(zip(starts, lengths)):
        rows[row, :length] = np.arange(start, start + length)
    hparams = TrainerConfig(**{**TOY, "lstm_units": 16, "batch_size": 32,
                               "pretrain_lm_learning_rate": 0.02})

    keras.utils.set_random_seed(0)
    encoder, losses = pretrain_language_model(
        dataclasses.replace(hparams, pretrain_lm_epochs=8), 50, rows, num_sampled=8)
    assert len(losses) == 8 and losses[-1] < 0.5 * losses[0]
    classifier = build_model(hparams, 50)
    copy_pretrained_layers(encoder, classifier)
    for name in ("embedding", LSTM_LAYER):
        for mine, theirs in zip(classifier.get_layer(name).get_weights(),
                                encoder.get_layer(name).get_weights()):
            np.testing.assert_array_equal(mine, theirs)


@pytest.mark.slow
def test_the_saved_model_serves_where_this_package_was_never_imported(tmp_path):
    """TFMA's `tf_generic` loader (tensorflow_model_analysis 0.47, utils/model_util.py:
    `tf.compat.v1.saved_model.load_v2`) and TF Serving run the signatures in a
    process that never imported our layers; Keras' own loader revives the
    classifier here, where the package registered them."""
    import subprocess
    import sys

    from imdb_sentiment.trainer.signatures import float32_twin, save_keras_model

    hparams = TrainerConfig(**TOY)
    twin = float32_twin(build_model(hparams, 50), hparams, 50)
    serve = tf.function(lambda ids: {"probability": twin(ids, training=False)},
                        input_signature=[tf.TensorSpec([None, None], tf.int64, name="ids")])
    export_dir = str(tmp_path / "1")
    save_keras_model(twin, export_dir, {"serving_default": serve.get_concrete_function()})
    rows = [[3, 4, 5, 6], [6, 7, 8, 9]]
    expected = twin(tf.constant(rows, tf.int64)).numpy().ravel().tolist()
    revived = keras.models.load_model(export_dir, compile=False)
    np.testing.assert_allclose(revived(tf.constant(rows, tf.int64)).numpy().ravel(), expected,
                               atol=1e-6)
    script = (
        "import json, sys; import tensorflow as tf\n"
        f"model = tf.compat.v1.saved_model.load_v2({export_dir!r}, tags=['serve'])\n"
        f"out = model.signatures['serving_default'](ids=tf.constant({rows}, tf.int64))\n"
        "assert not any(name.startswith('imdb_sentiment') for name in sys.modules)\n"
        "print(json.dumps(out['probability'].numpy().ravel().tolist()))\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=600, cwd=str(tmp_path))
    assert result.returncode == 0, result.stderr[-3000:]
    np.testing.assert_allclose(json.loads(result.stdout.strip().splitlines()[-1]), expected,
                               atol=1e-6)
