"""TF Transform preprocessing: raw review text to fixed-length token ids.

Choices (stated once, here):
- Normalisation: Unicode lower case; HTML line breaks and other tags become
  spaces; ASCII punctuation is split off as its own token (apostrophes stay
  inside words: "don't"); whitespace is collapsed.
- Vocabulary: the `vocab_size` most frequent tokens seen at least
  `min_frequency` times in the train split; ids are shifted by one so that
  0 is padding, 1..V are words and V+1 is the out-of-vocabulary bucket.
- Before anything else, a review longer than `CHARS_PER_TOKEN` characters per
  token the model keeps is cut to them (from the end, and from the start when
  `head_tokens` keeps the start): no IMDB review is that long, so what the
  model sees is unchanged, and a hostile multi-megabyte request costs bounded
  time and memory in the served graph.
- Truncation keeps the *end* of a long review (the verdict is usually
  there), or its first `head_tokens` and the rest from the end; padding goes
  on the *right*, which keeps a masked LSTM eligible for the cuDNN kernel. A
  review with no tokens becomes one `<empty>` token, so no row is all padding.
- For the linear baseline, every word n-gram (1..`ngram_order`) of the whole
  review, as TF-IDF weights: sublinear term frequency (1 + log count) times
  smoothed inverse document frequency of the train split, L2-normalised per
  review, over the `ngram_vocab_size` most frequent n-grams.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence

import tensorflow as tf
import tensorflow_transform as tft

from .hparams import TrainerConfig
from . import features

_PUNCTUATION = r"""([!"#$%&()*+,\-./:;<=>?@\[\\\]^_`{|}~])"""
#: Characters allowed per kept token before a review is cut (see the module doc).
CHARS_PER_TOKEN = 64


def bound_text(text: tf.Tensor, max_length: int, head: int = 0) -> tf.Tensor:
    """Each review cut to at most `CHARS_PER_TOKEN` × `max_length` characters:
    its last ones, or its first `head` × 64 and last (`max_length` − `head`) × 64.
    Counted in UTF-8 characters, so no character is split."""
    tail_chars = CHARS_PER_TOKEN * (max_length - head)
    head_chars = CHARS_PER_TOKEN * head
    length = tf.strings.length(text, unit="UTF8_CHAR")
    tail_start = tf.maximum(length - tail_chars, 0)
    tail = tf.strings.substr(text, tail_start, tf.fill(tf.shape(text), tail_chars), unit="UTF8_CHAR")
    if not head:
        return tail
    start = tf.strings.substr(text, tf.zeros_like(length), tf.fill(tf.shape(text), head_chars),
                              unit="UTF8_CHAR")
    cut = tf.strings.join([start, tail], separator=" ")
    return tf.where(length > head_chars + tail_chars, cut, text)


def normalize(text: tf.Tensor) -> tf.Tensor:
    """Lower-cased, tag-free text with punctuation split off; never empty."""
    text = tf.strings.lower(text, encoding="utf-8")
    text = tf.strings.regex_replace(text, r"<br\s*/?>", " ")
    text = tf.strings.regex_replace(text, r"<[^>]*>", " ")
    text = tf.strings.regex_replace(text, _PUNCTUATION, r" \1 ")
    text = tf.strings.strip(tf.strings.regex_replace(text, r"\s+", " "))
    return tf.where(tf.strings.length(text) > 0, text, features.EMPTY_TOKEN)


def truncate(tokens: tf.RaggedTensor, max_length: int, head: int = 0) -> tf.RaggedTensor:
    """At most `max_length` tokens a row: its first `head` and the rest from its end."""
    if head <= 0:
        return tokens[:, -max_length:]
    lengths = tokens.row_lengths()
    tail = tokens[:, -(max_length - head):]
    # A row no longer than max_length is kept whole; a longer one is head + tail.
    long_rows = lengths > max_length
    head_part = tf.ragged.boolean_mask(tokens[:, :head], long_rows)
    tail_part = tf.ragged.boolean_mask(tail, long_rows)
    truncated = tf.concat([head_part, tail_part], axis=1)
    whole = tf.ragged.boolean_mask(tokens, tf.logical_not(long_rows))
    # Reassemble in the original row order.
    positions = tf.concat([tf.where(long_rows)[:, 0], tf.where(tf.logical_not(long_rows))[:, 0]], 0)
    rows = tf.concat([truncated, whole], axis=0)
    return tf.gather(rows, tf.argsort(positions))


def tokenize(text: tf.Tensor, max_length: int, head: int = 0) -> tf.RaggedTensor:
    """The tokens of each normalised review that the model sees."""
    return truncate(tf.strings.split(normalize(bound_text(text, max_length, head))),
                    max_length, head)


def word_lists(texts: Sequence[str], batch: int = 2048) -> List[List[str]]:
    """Every word of each review, as the Transform graph normalises it, untruncated
    (for models fitted outside the graph: the distillation teacher, the benchmarks)."""
    words: List[List[str]] = []
    for start in range(0, len(texts), batch):
        normalized = normalize(tf.constant(list(texts[start:start + batch]))).numpy()
        words.extend(line.decode("utf-8", errors="replace").split(" ") for line in normalized)
    return words


def word_ngrams(tokens: tf.RaggedTensor, order: int) -> tf.RaggedTensor:
    """Every n-gram of 1..`order` consecutive tokens, joined by spaces."""
    grams = [tokens]
    for n in range(2, order + 1):
        grams.append(tf.strings.ngrams(tokens, n, separator=" "))
    return tf.concat(grams, axis=1) if len(grams) > 1 else tokens


def sublinear_tfidf(ngram_ids: tf.RaggedTensor, tfidf_ids: tf.RaggedTensor,
                    tfidf: tf.RaggedTensor, id_bound: int) -> tf.RaggedTensor:
    """L2-normalised (1 + log count) × idf, from TF Transform's plain TF-IDF.

    `tft.tfidf` gives, per review and distinct id in ascending order, (count /
    review length) × idf. The same distinct ids, counted here in the same
    order, turn that into sublinear term frequency, which suits text of very
    different lengths better (as sklearn's `sublinear_tf`).
    """
    keys = ngram_ids.value_rowids() * id_bound + ngram_ids.flat_values
    unique, _, counts = tf.unique_with_counts(keys)
    counts = tf.cast(tf.gather(counts, tf.argsort(unique)), tf.float32)
    lengths = tf.cast(tf.gather(ngram_ids.row_lengths(), tfidf_ids.value_rowids()), tf.float32)
    idf = tfidf.flat_values * lengths / counts
    weights = (1.0 + tf.math.log(counts)) * idf
    norms = tf.sqrt(tf.math.segment_sum(tf.square(weights), tfidf_ids.value_rowids()))
    weights = weights / tf.maximum(tf.gather(norms, tfidf_ids.value_rowids()), 1e-12)
    return tfidf_ids.with_flat_values(weights)


def preprocessing_fn(inputs: Dict[str, Any],
                     custom_config: Optional[Dict[str, Any]] = None) -> Dict[str, tf.Tensor]:
    """TF Transform entry point (referenced by dotted path)."""
    hparams = TrainerConfig.from_custom_config(custom_config)
    text = inputs[features.TEXT]
    if isinstance(text, tf.SparseTensor):
        text = tf.sparse.to_dense(text, default_value="")
    if text.shape.rank == 2:
        text = tf.squeeze(text, axis=1)
    text = bound_text(text, hparams.max_sequence_length, hparams.head_tokens)
    all_tokens = tf.strings.split(normalize(text))
    kept_tokens = truncate(all_tokens, hparams.max_sequence_length, hparams.head_tokens)
    vocabulary = tft.vocabulary(
        all_tokens,
        top_k=hparams.vocab_size,
        frequency_threshold=hparams.min_frequency,
        vocab_filename=features.VOCABULARY,
    )
    ids = tft.apply_vocabulary(kept_tokens, vocabulary, num_oov_buckets=1)
    # Shift so that 0 is free for padding: words 1..V, OOV V+1.
    ids = tf.ragged.map_flat_values(tf.add, ids, tf.constant(1, tf.int64))
    outputs = {features.TOKEN_IDS: ids.to_tensor(
        default_value=features.PAD_ID, shape=[None, hparams.max_sequence_length])}
    ngrams = word_ngrams(all_tokens, hparams.ngram_order)
    ngram_ids = tft.compute_and_apply_vocabulary(
        ngrams.to_sparse(), top_k=hparams.ngram_vocab_size,
        frequency_threshold=hparams.ngram_min_frequency, num_oov_buckets=1,
        vocab_filename=features.NGRAM_VOCABULARY)
    id_bound = hparams.ngram_vocab_size + 1
    tfidf_ids, tfidf = tft.tfidf(ngram_ids, id_bound)
    tfidf_ids = tf.RaggedTensor.from_sparse(tfidf_ids)
    weights = sublinear_tfidf(tf.RaggedTensor.from_sparse(ngram_ids), tfidf_ids,
                              tf.RaggedTensor.from_sparse(tfidf), id_bound)
    for name, values in ((features.NGRAM_IDS, tfidf_ids), (features.NGRAM_WEIGHTS, weights)):
        outputs[name] = values.to_sparse()
        outputs[name].set_shape([None, None])
    if features.LABEL in inputs:
        label = inputs[features.LABEL]
        if isinstance(label, tf.SparseTensor):
            label = tf.sparse.to_dense(label, default_value=-1)
        outputs[features.LABEL] = tf.reshape(label, [-1])
    return outputs
