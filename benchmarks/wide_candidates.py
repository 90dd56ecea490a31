"""Does the BiLSTM add anything to a strong bag of n-grams? Measured on `eval` only.

Three measurements, on the pipeline's own train/eval split (the report split
is never read, so these choices do not touch it):

1. NB-LR (Wang & Manning 2012's NBSVM with a logistic loss): binary word
   n-grams scaled by their naive-Bayes log-count ratio, then logistic
   regression; against the TF-IDF 1-2-gram baseline.
2. `--model DIR`: stacking. A two-input logistic regression on the exported
   BiLSTM's logit and the NB-LR logit, fitted and scored by 10-fold
   cross-validation within `eval`: what the best combination of the two gets.
3. `--joint`: wide & deep. The BiLSTM (the pipeline's full config) trained
   jointly with a wide part, one weight per n-gram times its NB ratio, their
   logits summed; and the wide part alone, trained the same way.

  python benchmarks/wide_candidates.py [--model pipeline_home/serving/imdb_sentiment] [--joint]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Dict, List, Optional

import common
import numpy as np
from scipy import sparse
from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_predict


def nb_ratio(x: sparse.csr_matrix, y: np.ndarray, alpha: float = 1.0) -> np.ndarray:
    """log((p / |p|₁) / (q / |q|₁)) per n-gram, p and q smoothed counts in positive and negative reviews."""
    p = alpha + np.asarray(x[y == 1].sum(0)).ravel()
    q = alpha + np.asarray(x[y == 0].sum(0)).ravel()
    return np.log((p / p.sum()) / (q / q.sum()))


def accuracy(logits: np.ndarray, y: np.ndarray) -> float:
    return round(float(((logits > 0) == (y == 1)).mean()), 4)


def joint_wide_and_deep(train_tokens, y_train, eval_tokens, y_eval, order: int, l2: float) -> List[Dict]:
    """Trains wide-only and wide & deep; returns one row per epoch."""
    import tensorflow as tf
    import tf_keras as keras

    from imdb_sentiment.pipeline.config import profile_config
    from imdb_sentiment.trainer import features, train
    from imdb_sentiment.trainer.model import AdversarialClassifier, compile_model

    vectorizer = CountVectorizer(ngram_range=(1, order), min_df=2, binary=True, token_pattern=r"\S+")
    x_train = vectorizer.fit_transform(" ".join(t) for t in train_tokens)
    x_eval = vectorizer.transform(" ".join(t) for t in eval_tokens)
    ratios = np.concatenate([[0.0], nb_ratio(x_train, y_train)]).astype(np.float32)  # id 0: padding
    hparams = profile_config("full").trainer
    vocabulary = common.build_vocabulary(train_tokens, hparams.vocab_size, hparams.min_frequency)
    ids_train = common.encode(train_tokens, vocabulary, hparams.max_sequence_length)
    ids_eval = common.encode(eval_tokens, vocabulary, hparams.max_sequence_length)

    class Wide(keras.layers.Layer):
        def build(self, _):
            self.weight = self.add_weight("weight", [len(ratios), 1], initializer="zeros",
                                          regularizer=keras.regularizers.L2(l2))
            self.ratios = tf.constant(ratios[:, None])

        def call(self, ngram_ids):
            return tf.reduce_sum(tf.gather(self.weight * self.ratios, ngram_ids)[..., 0], axis=1)

    def dataset(ids, x, y, training, batch):
        ngrams = tf.RaggedTensor.from_row_splits(x.indices.astype(np.int64) + 1, x.indptr.astype(np.int64))
        data = tf.data.Dataset.from_tensor_slices(({features.TOKEN_IDS: ids, "ngrams": ngrams}, y))
        data = data.map(lambda f, label: ({features.TOKEN_IDS: f[features.TOKEN_IDS],
                                           "ngrams": f["ngrams"] if isinstance(f["ngrams"], tf.Tensor)
                                           else f["ngrams"].flat_values}, label)).cache()
        if training:
            data = data.shuffle(len(ids), seed=hparams.seed, reshuffle_each_iteration=True)
        bounds = train.bucket_boundaries(hparams.max_sequence_length, hparams.bucket_count)
        return data.bucket_by_sequence_length(
            lambda f, _: train.review_lengths(f[features.TOKEN_IDS]), bounds,
            [batch] * (len(bounds) + 1)).prefetch(2)

    rows: List[Dict] = []
    for variant in ("wide", "wide & deep"):
        keras.utils.set_random_seed(hparams.seed)
        ngram_ids = keras.Input(shape=(None,), dtype=tf.int64, name="ngrams")
        wide_logit = Wide(name="wide")(ngram_ids)
        if variant == "wide":
            token_ids = keras.Input(shape=(None,), dtype=tf.int64, name=features.TOKEN_IDS)
            model = keras.Model({features.TOKEN_IDS: token_ids, "ngrams": ngram_ids},
                                keras.layers.Activation("sigmoid")(wide_logit))
            model.compile(keras.optimizers.Adam(0.01), "binary_crossentropy",
                          metrics=[keras.metrics.BinaryAccuracy(name="accuracy")])
            epochs = 6
        else:
            deep = train.build_classifier(hparams, len(vocabulary), len(ids_train), ids_train)
            hidden = deep.get_layer("probability").input  # the head's input: [context; max-pool]
            deep_logit = keras.layers.Dense(1, name="deep_logit")(hidden)
            logit = keras.layers.Lambda(lambda t: t[0][:, 0] + t[1])([deep_logit, wide_logit])
            model = AdversarialClassifier({features.TOKEN_IDS: deep.input, "ngrams": ngram_ids},
                                          keras.layers.Activation("sigmoid")(logit))
            model.configure_adversary(hparams.adversarial_epsilon, hparams.adversarial_weight)
            compile_model(model, hparams, -(-len(ids_train) // hparams.batch_size) * hparams.epochs)
            model.get_layer("embedding").set_weights(deep.get_layer("embedding").get_weights())
            epochs = hparams.epochs
        start = time.perf_counter()
        fitted = model.fit(dataset(ids_train, x_train, y_train, True, hparams.batch_size),
                           validation_data=dataset(ids_eval, x_eval, y_eval, False, 256),
                           epochs=epochs, verbose=0)
        for epoch, value in enumerate(fitted.history["val_accuracy"], 1):
            rows.append({"model": f"{variant}, {order}-grams, l2 {l2}", "epoch": epoch,
                         "eval_accuracy": round(float(value), 4)})
            print(rows[-1], flush=True)
        rows[-1]["seconds"] = round(time.perf_counter() - start, 1)
    return rows


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=common.DEFAULT_DATA)
    parser.add_argument("--model", type=Path, help="an exported BiLSTM (or its serving dir) to stack")
    parser.add_argument("--joint", action="store_true", help="also train wide and wide & deep (~15 min)")
    args = parser.parse_args(argv)

    (train_raw, y_train), (eval_raw, y_eval) = common.load_raw_splits(args.data)
    train_tokens, eval_tokens = common.tokenize(train_raw), common.tokenize(eval_raw)
    train_text = [" ".join(t) for t in train_tokens]
    eval_text = [" ".join(t) for t in eval_tokens]
    rows, logits = [], {}
    start = time.perf_counter()
    tfidf = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True, token_pattern=r"\S+")
    classifier = LogisticRegression(C=16.0, max_iter=2000).fit(tfidf.fit_transform(train_text), y_train)
    logits["tfidf"] = classifier.decision_function(tfidf.transform(eval_text))
    rows.append({"model": "TF-IDF 1-2-grams + LR (C=16)", "eval_accuracy": accuracy(logits["tfidf"], y_eval),
                 "seconds": round(time.perf_counter() - start, 1)})
    print(rows[-1], flush=True)
    for order in (2, 3):
        vectorizer = CountVectorizer(ngram_range=(1, order), min_df=2, binary=True, token_pattern=r"\S+")
        x_train = vectorizer.fit_transform(train_text)
        scale = sparse.diags(nb_ratio(x_train, y_train))
        for c in (0.1, 1.0):
            start = time.perf_counter()
            classifier = LogisticRegression(C=c, max_iter=2000).fit(x_train @ scale, y_train)
            name = f"NB-LR 1-{order}-grams (C={c})"
            logits[name] = classifier.decision_function(vectorizer.transform(eval_text) @ scale)
            rows.append({"model": name, "eval_accuracy": accuracy(logits[name], y_eval),
                         "seconds": round(time.perf_counter() - start, 1)})
            print(rows[-1], flush=True)
    if args.model:
        from tfidf_baseline import model_probabilities

        probability = np.clip(model_probabilities(args.model, eval_raw), 1e-6, 1 - 1e-6)
        bilstm = np.log(probability / (1 - probability))
        rows.append({"model": "exported BiLSTM", "eval_accuracy": accuracy(bilstm, y_eval)})
        for name in ("tfidf", "NB-LR 1-3-grams (C=0.1)"):
            stacked = cross_val_predict(LogisticRegression(), np.c_[bilstm, logits[name]], y_eval,
                                        cv=10, method="decision_function")
            rows.append({"model": f"stack: BiLSTM + {name} (10-fold CV on eval)",
                         "eval_accuracy": accuracy(stacked, y_eval)})
            print(rows[-1], flush=True)
    if args.joint:
        rows += joint_wide_and_deep(train_tokens, y_train, eval_tokens, y_eval, order=2, l2=2.5e-4)
    print(f"\n{len(y_eval)} eval / {len(y_train)} train reviews\n")
    print(common.table(rows, ["model", "epoch", "eval_accuracy", "seconds"]))
    print(f"wrote {common.write_result('wide-candidates', {'rows': rows})}")


if __name__ == "__main__":
    main()
