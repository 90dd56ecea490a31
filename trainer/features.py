"""Feature names and reserved token ids shared by ingestion, transform and model."""

TEXT = "text"
LABEL = "label"
RATING = "rating"
REVIEW_ID = "review_id"
#: The split a review was written to (train, eval, report, test, unsup): TFMA slices by it.
DATA_SPLIT = "data_split"
#: The review's length class, e.g. "q2: 126-210 words": quartiles of the train
#: split's word counts, fixed at ingestion. TFMA slices by it.
LENGTH_BUCKET = "length_bucket"

#: Transformed feature: right-padded token ids, 0 = padding.
TOKEN_IDS = "token_ids"
#: The distillation teacher's P(positive) for an unlabelled review: the soft
#: label the BiLSTM first learns from (components/teacher_labels.py).
TEACHER_PROBABILITY = "teacher_probability"
#: Name of the vocabulary file TF Transform writes.
VOCABULARY = "tokens"
#: Transformed features of the linear baseline: distinct n-gram ids of a
#: review and their TF-IDF weights (same length), and their vocabulary.
NGRAM_IDS = "ngram_ids"
NGRAM_WEIGHTS = "ngram_weights"
NGRAM_VOCABULARY = "ngrams"

#: Folder of a SavedModel that TF Serving ignores: warm-up requests, the
#: training record and the model card travel there.
ASSETS_EXTRA = "assets.extra"
#: Both trainers' record of their epochs (beside the run's logs, and in the model).
TRAINING_HISTORY_FILE = "training_history.json"

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
