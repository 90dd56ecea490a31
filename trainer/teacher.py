"""The n-gram teacher whose probabilities label the unlabelled reviews.

NB-LR (Wang & Manning, 2012, "Baselines and bigrams"): binary word n-gram
features scaled by their naive-Bayes log-count ratio, then an L2 logistic
regression. It is the strongest cheap model of IMDB sentiment, and its
probabilities on the 50,000 unlabelled reviews are what the BiLSTM first
learns from (knowledge distillation), before it is fitted to the labels.

Plain Python over token lists: the caller tokenises with the Transform
graph's own `preprocessing.normalize`, so teacher and student read the
same words.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np


@dataclass(frozen=True)
class TeacherConfig:
    """The teacher's hyperparameters: the literature's setting (Wang & Manning's
    1-3-grams, C = 0.1), but for `min_document_frequency` (docs/benchmarks.md)."""

    #: Word n-grams 1..ngram_order.
    ngram_order: int = 3
    #: Inverse L2 strength of the logistic regression.
    inverse_regularization: float = 0.1
    #: Laplace smoothing of the naive-Bayes counts.
    smoothing: float = 1.0
    #: Drop n-grams seen in fewer training reviews than this. 2 keeps a fifth
    #: of the 1-3-grams (an n-gram seen once carries no evidence of a class)
    #: and halves the teacher's time; its soft labels barely move (benchmarks.md).
    min_document_frequency: int = 2

    def __post_init__(self) -> None:
        if self.ngram_order < 1:
            raise ValueError(f"ngram_order must be at least 1, got {self.ngram_order}")
        if self.inverse_regularization <= 0 or self.smoothing <= 0:
            raise ValueError("inverse_regularization and smoothing must be positive")
        if self.min_document_frequency < 1:
            raise ValueError("min_document_frequency must be at least 1")


def _identity(tokens):
    return tokens


class NbLrTeacher:
    """NB-LR on pre-tokenised reviews: `fit` on labelled ones, `probabilities` on any."""

    def __init__(self, config: TeacherConfig = TeacherConfig()):
        self.config = config

    def fit(self, token_lists: Sequence[Sequence[str]], labels: np.ndarray) -> "NbLrTeacher":
        from sklearn.feature_extraction.text import CountVectorizer
        from sklearn.linear_model import LogisticRegression

        labels = np.asarray(labels).astype(np.int64).ravel()
        if set(np.unique(labels)) != {0, 1}:
            raise ValueError("the teacher needs labelled reviews of both classes")
        self._vectorizer = CountVectorizer(
            tokenizer=_identity, preprocessor=_identity, token_pattern=None, lowercase=False, binary=True,
            ngram_range=(1, self.config.ngram_order),
            min_df=self.config.min_document_frequency, dtype=np.float32)
        features = self._vectorizer.fit_transform(token_lists)
        alpha = self.config.smoothing
        positive = alpha + np.asarray(features[labels == 1].sum(axis=0)).ravel()
        negative = alpha + np.asarray(features[labels == 0].sum(axis=0)).ravel()
        self._ratio = (np.log(positive / positive.sum())
                       - np.log(negative / negative.sum())).astype(np.float32)
        self._model = LogisticRegression(C=self.config.inverse_regularization, max_iter=1000,
                                         solver="liblinear")
        self._model.fit(features.multiply(self._ratio).tocsr(), labels)
        return self

    def probabilities(self, token_lists: Sequence[Sequence[str]]) -> np.ndarray:
        """P(positive) for each review, float32."""
        features = self._vectorizer.transform(token_lists).multiply(self._ratio).tocsr()
        return self._model.predict_proba(features)[:, 1].astype(np.float32)

    @property
    def ngram_count(self) -> int:
        return len(self._ratio)
