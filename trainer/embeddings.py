"""Word vectors pre-trained on the training split's own text (PPMI + SVD).

Counts how often two token ids occur within `window` positions of each other
in the training reviews (weighted 1/distance), turns the counts into positive
pointwise mutual information with context-distribution smoothing, and keeps
the top singular directions as word vectors (Levy, Goldberg & Dagan, 2015).
The Embedding layer starts from them and is fine-tuned. Only training
reviews are read; it takes well under a minute on 2 cores.
"""

from __future__ import annotations

import logging
import time

import numpy as np
from scipy import sparse
from scipy.sparse import linalg as sparse_linalg

from . import features


def cooccurrence(token_ids: np.ndarray, input_dim: int, window: int) -> sparse.csr_matrix:
    """Symmetric, distance-weighted co-occurrence counts of right-padded id rows."""
    rows, cols, weights = [], [], []
    for offset in range(1, window + 1):
        left, right = token_ids[:, :-offset], token_ids[:, offset:]
        keep = (left != features.PAD_ID) & (right != features.PAD_ID)
        rows.append(left[keep])
        cols.append(right[keep])
        weights.append(np.full(int(keep.sum()), 1.0 / offset, np.float32))
    row, col, weight = (np.concatenate(parts) for parts in (rows, cols, weights))
    counts = sparse.coo_matrix((weight, (row, col)), shape=(input_dim, input_dim)).tocsr()
    return (counts + counts.T).tocsr()


def ppmi(counts: sparse.csr_matrix, context_smoothing: float = 0.75) -> sparse.csr_matrix:
    """Positive PMI of a co-occurrence matrix, contexts smoothed by ^0.75."""
    counts = counts.tocoo()
    word_totals = np.asarray(counts.sum(axis=1)).ravel()
    context_totals = np.asarray(counts.sum(axis=0)).ravel() ** context_smoothing
    context_total = context_totals.sum()
    with np.errstate(divide="ignore", invalid="ignore"):
        pmi = np.log((counts.data * context_total) /
                     (word_totals[counts.row] * context_totals[counts.col]))
    keep = pmi > 0
    return sparse.csr_matrix((pmi[keep], (counts.row[keep], counts.col[keep])), shape=counts.shape)


def ppmi_svd_embeddings(token_ids: np.ndarray, input_dim: int, dim: int, window: int = 5,
                        seed: int = 0, scale: float = 0.05) -> np.ndarray:
    """An [input_dim, dim] matrix for the Embedding layer (row 0 = padding = 0).

    Rows are L2-normalised and scaled to `scale`, the magnitude of Keras'
    default uniform initialisation, so training starts on the usual footing.
    """
    start = time.perf_counter()
    matrix = ppmi(cooccurrence(token_ids, input_dim, window))
    k = min(dim, input_dim - 2)
    u, s, _ = sparse_linalg.svds(matrix.astype(np.float64), k=k,
                                 v0=np.random.default_rng(seed).uniform(-1, 1, input_dim))
    vectors = u * np.sqrt(s)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    vectors = np.where(norms > 0, vectors / np.maximum(norms, 1e-12), 0.0) * scale
    if k < dim:
        vectors = np.pad(vectors, [(0, 0), (0, dim - k)])
    rng = np.random.default_rng(seed)
    unseen = np.linalg.norm(vectors, axis=1) == 0  # ids never seen in training (e.g. OOV)
    vectors[unseen] = rng.uniform(-scale, scale, (int(unseen.sum()), dim))
    vectors[features.PAD_ID] = 0.0
    logging.info("Pre-trained %dx%d PPMI-SVD embeddings in %.1fs (%d non-zeros)",
                 input_dim, dim, time.perf_counter() - start, matrix.nnz)
    return vectors.astype(np.float32)
