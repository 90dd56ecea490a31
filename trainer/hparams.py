"""Hyperparameters of preprocessing, model and export: the trainer's own config.

They live beside the code that reads them, so the trainer package depends on
nothing above it; `pipeline/config.py` nests a `TrainerConfig` in the
pipeline's configuration and hands it down through `custom_config`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Dict, Mapping, Optional

MIXED_PRECISION_MODES = ("auto", "on", "off")


@dataclass(frozen=True)
class TrainerConfig:
    """Hyperparameters of preprocessing and model; reaches code via custom_config."""

    # --- Transform ---
    vocab_size: int = 30000
    min_frequency: int = 3
    max_sequence_length: int = 400
    #: Of a review longer than `max_sequence_length`, keep its first
    #: `head_tokens` and its last `max_sequence_length - head_tokens` tokens
    #: (0: only the last ones, where the verdict usually is).
    head_tokens: int = 0
    #: Word n-grams (1..ngram_order) for the linear baseline's TF-IDF features:
    #: the most frequent `ngram_vocab_size` seen at least `ngram_min_frequency` times.
    ngram_order: int = 2
    ngram_vocab_size: int = 200000
    ngram_min_frequency: int = 2
    # --- Model ---
    embedding_dim: int = 128
    lstm_units: int = 64
    attention_units: int = 64
    embedding_dropout: float = 0.5
    word_dropout: float = 0.25
    head_dropout: float = 0.4
    max_pool: bool = True
    #: Start the Embedding from PPMI-SVD vectors of the train split's text.
    pretrain_embeddings: bool = True
    pretrain_window: int = 5
    #: Norm of each pre-trained word vector (0.05 matches Keras' uniform init).
    pretrain_scale: float = 0.05
    #: Epochs of language-model pre-training of the embedding and the BiLSTM
    #: on the train split's text before the classifier is fitted (0: none).
    pretrain_lm_epochs: int = 0
    pretrain_lm_learning_rate: float = 2e-3
    #: Knowledge distillation: how many of the `epochs` go over the unlabelled
    #: reviews, labelled by the n-gram teacher's probabilities, before the
    #: labelled ones. They replace labelled epochs: data without unlabelled
    #: reviews trains `epochs` labelled epochs (0: never distil). Kept by the
    #: protocol's rule on three seeds (docs/benchmarks.md).
    distill_epochs: int = 1
    #: At most this many unlabelled reviews per distillation epoch (0: all).
    distill_max_reviews: int = 0
    # --- Optimisation ---
    batch_size: int = 64
    #: Epochs in all (distillation's included): a full cosine schedule over 3
    #: epochs fits the 15-minute budget of a full run on 2 cores (docs/benchmarks.md).
    epochs: int = 3
    learning_rate: float = 2e-3
    weight_decay: float = 0.05
    warmup_fraction: float = 0.1
    clipnorm: float = 1.0
    #: Polyak averaging: at each epoch's end the weights become their
    #: exponential moving average over the epoch's steps, with this momentum
    #: (0: off), before the epoch is evaluated.
    weight_average_momentum: float = 0.0
    #: Epochs without a better eval accuracy before stopping (best weights are
    #: restored either way), so the schedule reaches its low-learning-rate tail.
    early_stopping_patience: int = 3
    #: Adversarial training: each step also fits the batch with its embedded
    #: reviews moved by this fraction of their norm in the loss-increasing
    #: direction (0 turns it off). It doubles the cost of a perturbed step; its
    #: gain is measured in docs/benchmarks.md.
    adversarial_epsilon: float = 0.05
    #: Weight of the perturbed batch's loss beside the clean loss.
    adversarial_weight: float = 1.0
    #: Perturb every this many steps (1: every step); the steps between are
    #: plain steps, which cost about half as much (docs/benchmarks.md).
    adversarial_every: int = 2
    bucket_count: int = 8
    shuffle_buffer: int = 25000
    seed: int = 42
    # --- Serving ---
    #: Request batches run in length-sorted chunks of this many reviews.
    serving_chunk_size: int = 64
    #: Export the network with the embedding folded into the LSTM's input
    #: projections (same outputs, about 1.4x faster on CPU; README). False
    #: exports the Keras layers, whose LSTM can use cuDNN on a GPU server.
    serving_folded_lstm: bool = True
    #: In that CPU path, batches (chunks) of at most this many reviews run the
    #: LSTM through TensorFlow's fused sequence kernel, which pays the per-step
    #: overhead once per sequence rather than once per step (0: never).
    serving_fused_max_batch: int = 16
    # --- Devices ---
    #: "auto" uses float16 compute only when a GPU is present.
    mixed_precision: str = "auto"

    #: The hyperparameters TF Transform reads; the rest only concern the Trainer.
    TRANSFORM_FIELDS = ("vocab_size", "min_frequency", "max_sequence_length", "head_tokens",
                        "ngram_order", "ngram_vocab_size", "ngram_min_frequency")

    def __post_init__(self) -> None:
        _check(self.mixed_precision in MIXED_PRECISION_MODES,
               f"mixed_precision must be one of {', '.join(MIXED_PRECISION_MODES)}, "
               f"not {self.mixed_precision!r}")
        for name in ("vocab_size", "max_sequence_length", "embedding_dim", "lstm_units",
                     "attention_units", "batch_size", "epochs", "ngram_order",
                     "ngram_vocab_size", "serving_chunk_size", "bucket_count", "adversarial_every"):
            _check(getattr(self, name) >= 1, f"{name} must be at least 1, got {getattr(self, name)}")
        _check(0 <= self.head_tokens < self.max_sequence_length,
               f"head_tokens must be in [0, max_sequence_length), got {self.head_tokens}")
        for name in ("embedding_dropout", "word_dropout", "head_dropout", "warmup_fraction"):
            _check(0.0 <= getattr(self, name) < 1.0, f"{name} must be in [0, 1), got {getattr(self, name)}")
        _check(0.0 <= self.weight_average_momentum < 1.0,
               f"weight_average_momentum must be in [0, 1), got {self.weight_average_momentum}")
        _check(self.learning_rate > 0, f"learning_rate must be positive, got {self.learning_rate}")
        _check(self.serving_fused_max_batch >= 0,
               f"serving_fused_max_batch must be >= 0, got {self.serving_fused_max_batch}")
        _check(self.distill_epochs >= 0 and self.distill_max_reviews >= 0,
               "distill_epochs and distill_max_reviews must be >= 0, got "
               f"{self.distill_epochs} and {self.distill_max_reviews}")
        _check(not self.distill_epochs or self.distill_epochs < self.epochs,
               f"distill_epochs ({self.distill_epochs}) must leave at least one labelled epoch "
               f"of the {self.epochs} epochs")
        _check(self.pretrain_lm_epochs >= 0,
               f"pretrain_lm_epochs must be >= 0, got {self.pretrain_lm_epochs}")
        _check(self.adversarial_epsilon >= 0,
               f"adversarial_epsilon must be >= 0, got {self.adversarial_epsilon}")

    def labelled_epochs(self, distilling: bool) -> int:
        """Epochs on the labels: those distillation leaves, or all of them."""
        return self.epochs - self.distill_epochs if distilling else self.epochs

    def to_custom_config(self, code_fingerprint: str = "") -> Dict[str, Any]:
        """The JSON-able dict handed to the Trainer.

        `code_fingerprint` changes whenever the code the component runs does,
        which changes its execution properties and so defeats TFX's cache
        (which otherwise ignores code referenced by dotted path).
        """
        return {"hparams": dataclasses.asdict(self), "code_fingerprint": code_fingerprint}

    def to_transform_custom_config(self, code_fingerprint: str = "") -> Dict[str, Any]:
        """Like `to_custom_config`, restricted to what Transform depends on."""
        hparams = {name: getattr(self, name) for name in self.TRANSFORM_FIELDS}
        return {"hparams": hparams, "code_fingerprint": code_fingerprint}

    @classmethod
    def from_custom_config(cls, custom_config: Optional[Mapping[str, Any]]) -> "TrainerConfig":
        if not custom_config:
            return cls()
        hparams = custom_config.get("hparams", custom_config)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(hparams) - known
        if unknown:
            raise ValueError(f"Unknown trainer hyperparameters: {sorted(unknown)}")
        return cls(**hparams)


@dataclass(frozen=True)
class BaselineConfig:
    """The linear baseline: one weight per TF-IDF n-gram (logistic regression).

    Trained by its own Trainer from the same Transform output as the BiLSTM,
    it is the bar the BiLSTM must clear to be blessed (docs/evaluation-protocol.md).
    """

    epochs: int = 8
    batch_size: int = 64
    learning_rate: float = 0.02
    #: L2 penalty on the n-gram weights, per training review.
    l2: float = 1e-5
    early_stopping_patience: int = 2
    seed: int = 42

    def __post_init__(self) -> None:
        _check(self.epochs >= 1 and self.batch_size >= 1, "epochs and batch_size must be >= 1")
        _check(self.learning_rate > 0 and self.l2 >= 0, "learning_rate must be > 0 and l2 >= 0")

    def to_custom_config(self, code_fingerprint: str = "") -> Dict[str, Any]:
        return {"hparams": dataclasses.asdict(self), "code_fingerprint": code_fingerprint}

    @classmethod
    def from_custom_config(cls, custom_config: Optional[Mapping[str, Any]]) -> "BaselineConfig":
        hparams = (custom_config or {}).get("hparams", {})
        return cls(**hparams)


TRUE_WORDS = ("1", "true", "yes", "on")
FALSE_WORDS = ("0", "false", "no", "off")


def parse_value(default: Any, raw: str) -> Any:
    """A command-line string typed like a config field's `default` value.

    Shared by `imdb-pipeline --set` and the benchmarks, so "true" means the same everywhere.
    """
    if isinstance(default, bool):
        if raw.lower() in TRUE_WORDS:
            return True
        if raw.lower() in FALSE_WORDS:
            return False
        raise ValueError(f"expected one of {'/'.join(TRUE_WORDS + FALSE_WORDS)}, got {raw!r}")
    if isinstance(default, int):
        return int(raw)
    if isinstance(default, float):
        return float(raw)
    return raw


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)
