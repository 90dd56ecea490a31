"""Feature names and reserved token ids shared by ingestion, transform and model."""

TEXT = "text"
LABEL = "label"
RATING = "rating"
REVIEW_ID = "review_id"

#: Transformed feature: right-padded token ids, 0 = padding.
TOKEN_IDS = "token_ids"
#: Name of the vocabulary file TF Transform writes.
VOCABULARY = "tokens"

PAD_ID = 0
#: Token substituted for a review with no tokens, so no row is all padding.
EMPTY_TOKEN = "<empty>"
#: Class names, index = label, used by the Classify signature.
CLASS_NAMES = ("negative", "positive")


def vocabulary_input_dim(vocabulary_size: int) -> int:
    """Embedding rows: padding + vocabulary + one out-of-vocabulary bucket."""
    return vocabulary_size + 2


def oov_id(vocabulary_size: int) -> int:
    return vocabulary_size + 1
