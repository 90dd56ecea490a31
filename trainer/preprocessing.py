"""TF Transform preprocessing: raw review text to fixed-length token ids.

Choices (stated once, here):
- Normalisation: Unicode lower case; HTML line breaks and other tags become
  spaces; ASCII punctuation is split off as its own token (apostrophes stay
  inside words: "don't"); whitespace is collapsed.
- Vocabulary: the `vocab_size` most frequent tokens seen at least
  `min_frequency` times in the train split; ids are shifted by one so that
  0 is padding, 1..V are words and V+1 is the out-of-vocabulary bucket.
- Truncation keeps the *end* of a long review (the verdict is usually
  there); padding goes on the *right*, which keeps a masked LSTM eligible for
  the cuDNN kernel. A review with no tokens becomes one `<empty>` token, so
  no row is all padding.
"""

from __future__ import annotations

from typing import Any, Dict, Optional

import tensorflow as tf
import tensorflow_transform as tft

from imdb_sentiment.pipeline.config import TrainerConfig
from . import features

_PUNCTUATION = r"""([!"#$%&()*+,\-./:;<=>?@\[\\\]^_`{|}~])"""


def normalize(text: tf.Tensor) -> tf.Tensor:
    """Lower-cased, tag-free text with punctuation split off; never empty."""
    text = tf.strings.lower(text, encoding="utf-8")
    text = tf.strings.regex_replace(text, r"<br\s*/?>", " ")
    text = tf.strings.regex_replace(text, r"<[^>]*>", " ")
    text = tf.strings.regex_replace(text, _PUNCTUATION, r" \1 ")
    text = tf.strings.strip(tf.strings.regex_replace(text, r"\s+", " "))
    return tf.where(tf.strings.length(text) > 0, text, features.EMPTY_TOKEN)


def tokenize(text: tf.Tensor, max_length: int) -> tf.RaggedTensor:
    """The last `max_length` tokens of each normalised review."""
    return tf.strings.split(normalize(text))[:, -max_length:]


def preprocessing_fn(inputs: Dict[str, Any],
                     custom_config: Optional[Dict[str, Any]] = None) -> Dict[str, tf.Tensor]:
    """TF Transform entry point (referenced by dotted path)."""
    hparams = TrainerConfig.from_custom_config(custom_config)
    text = inputs[features.TEXT]
    if isinstance(text, tf.SparseTensor):
        text = tf.sparse.to_dense(text, default_value="")
    if text.shape.rank == 2:
        text = tf.squeeze(text, axis=1)
    all_tokens = tf.strings.split(normalize(text))
    kept_tokens = all_tokens[:, -hparams.max_sequence_length:]
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
    if features.LABEL in inputs:
        label = inputs[features.LABEL]
        if isinstance(label, tf.SparseTensor):
            label = tf.sparse.to_dense(label, default_value=-1)
        outputs[features.LABEL] = tf.reshape(label, [-1])
    return outputs
