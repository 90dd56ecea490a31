"""One typed configuration for the whole pipeline.

Every tunable number lives here. A `PipelineConfig` is built once (from a
profile plus CLI flags / environment) and passed down: `create_pipeline` reads
it to wire components, and the trainer/transform receive `TrainerConfig` as a
JSON `custom_config`, so no module below holds its own constants.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Tuple

PACKAGE_ROOT = Path(__file__).resolve().parent
#: The curated schema shipped with the package (see pipeline/schema/).
DEFAULT_SCHEMA_DIR = PACKAGE_ROOT / "schema"

PROFILES = ("smoke", "quick", "full")


@dataclass(frozen=True)
class IngestionConfig:
    """How raw reviews become tf.Examples."""

    #: Share of `train/` (by hash of review id) that becomes the `eval` split.
    eval_percent: int = 10
    #: Share of all reviews kept (by an independent hash): 100 keeps all.
    sample_percent: int = 100
    #: Salt for both hashes; changing it gives a different but still stable split.
    split_salt: str = "imdb-v1"


@dataclass(frozen=True)
class ValidationConfig:
    """What DataGate tolerates in the text before it stops a run (see components/text_profile.py)."""

    #: Largest share of empty reviews in any split.
    max_empty_fraction: float = 0.01
    #: Largest Jensen-Shannon divergence (0-1) of the review-length distribution:
    #: train split vs the reference profile, eval vs train. Measured on the IMDB
    #: training data: 0.0005 (eval vs train), 0.002 (a 4% sample vs reference);
    #: cutting every review in half gives 0.21.
    max_length_drift: float = 0.1
    #: Same for the distribution of the 500 most frequent words (rest pooled):
    #: 0.002 and 0.004 on IMDB as above; reviews reversed character by character 0.44.
    max_vocabulary_drift: float = 0.1
    #: Reference profile the train split is compared with ("" skips that
    #: comparison). Read when the pipeline is built; its content, not the
    #: path, goes into the pipeline (and the compiled Kubeflow spec).
    reference_profile: str = str(DEFAULT_SCHEMA_DIR / "text_profile.json")


@dataclass(frozen=True)
class TrainerConfig:
    """Hyperparameters of preprocessing and model; reaches code via custom_config."""

    # --- Transform ---
    vocab_size: int = 30000
    min_frequency: int = 3
    max_sequence_length: int = 400
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
    #: False keeps the Embedding fixed (only sensible with pre-trained vectors).
    train_embeddings: bool = True
    # --- Optimisation ---
    batch_size: int = 64
    epochs: int = 5
    learning_rate: float = 2e-3
    weight_decay: float = 0.05
    warmup_fraction: float = 0.1
    clipnorm: float = 1.0
    #: Epochs without a better eval accuracy before stopping (best weights are
    #: restored either way). 3 lets a 5-epoch cosine schedule reach its
    #: low-learning-rate tail after a dip at epochs 3-4 instead of stopping.
    early_stopping_patience: int = 3
    #: Evaluate and export an exponential moving average of the weights with
    #: this momentum (0 turns averaging off). The average is what validation
    #: sees, so early stopping keeps the best *averaged* weights.
    weight_averaging_momentum: float = 0.0
    #: Adversarial training: each step also fits the batch with its embedded
    #: reviews moved by this fraction of their norm in the loss-increasing
    #: direction (0 turns it off). Worth about +0.8 points of eval accuracy
    #: for about twice the training time (README, Benchmarks).
    adversarial_epsilon: float = 0.05
    #: Weight of the perturbed batch's loss beside the clean loss.
    adversarial_weight: float = 1.0
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
    # --- Devices ---
    #: "auto" uses float16 compute only when a GPU is present.
    mixed_precision: str = "auto"

    #: The hyperparameters TF Transform reads; the rest only concern the Trainer.
    TRANSFORM_FIELDS = ("vocab_size", "min_frequency", "max_sequence_length")

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
class EvaluationConfig:
    """What a model must achieve to be blessed and pushed."""

    #: Absolute lower bound on binary accuracy (eval split, overall slice).
    accuracy_lower_bound: float = 0.88
    #: How much accuracy may drop against the last blessed model (absolute).
    max_accuracy_drop: float = 0.01
    #: Feature the metrics are also sliced by.
    slice_feature: str = "rating"


@dataclass(frozen=True)
class PipelineConfig:
    """Everything a runner needs to build and run the pipeline."""

    pipeline_name: str = "imdb-sentiment"
    model_name: str = "imdb_sentiment"
    profile: str = "full"
    #: Archive (.tar.gz), extracted directory, URL, or "" for the official download.
    data: str = ""
    #: Root of TFX artifacts (local dir or object-store URI).
    pipeline_root: str = "pipeline_home/tfx"
    #: Where pushed models land, as <serving_dir>/<model_name>/<version>/.
    serving_dir: str = "pipeline_home/serving"
    #: Where downloads are cached (used only when data is a URL or empty).
    download_cache_dir: str = "pipeline_home/cache"
    schema_dir: str = str(DEFAULT_SCHEMA_DIR)
    enable_cache: bool = True
    beam_pipeline_args: Tuple[str, ...] = ()
    #: TensorFlow's thread pools in a local run's main process, where the
    #: Trainer runs. "auto": on machines with at most 2 cores, one thread per
    #: op and two ops at once (the BiLSTM's two directions side by side; about
    #: 2x faster training on 2 cores: README, Benchmarks); TF's defaults on
    #: bigger machines, where it was not measured. "default": TF's defaults.
    local_cpu_threads: str = "auto"
    ingestion: IngestionConfig = field(default_factory=IngestionConfig)
    validation: ValidationConfig = field(default_factory=ValidationConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)

    @property
    def model_serving_dir(self) -> str:
        return f"{self.serving_dir.rstrip('/')}/{self.model_name}"

    def replace(self, **changes: Any) -> "PipelineConfig":
        return dataclasses.replace(self, **changes)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True)


def profile_config(profile: str, **changes: Any) -> PipelineConfig:
    """The configuration of a named profile, with top-level fields overridden.

    - `full`: all 25k training reviews, the model that must beat TF-IDF.
    - `quick`: a ~15% sample and a smaller model; a few minutes on 2 cores.
    - `smoke`: a ~4% sample and a tiny model; for tests of the plumbing.
    """
    if profile == "full":
        config = PipelineConfig(profile="full")
    elif profile == "quick":
        config = PipelineConfig(
            profile="quick",
            ingestion=IngestionConfig(sample_percent=15),
            trainer=TrainerConfig(vocab_size=10000, max_sequence_length=250, embedding_dim=64,
                                  lstm_units=32, attention_units=32, epochs=2, batch_size=64),
            evaluation=EvaluationConfig(accuracy_lower_bound=0.6),
        )
    elif profile == "smoke":
        config = PipelineConfig(
            profile="smoke",
            ingestion=IngestionConfig(sample_percent=4, eval_percent=20),
            trainer=TrainerConfig(vocab_size=2000, min_frequency=2, max_sequence_length=64,
                                  embedding_dim=16, lstm_units=8, attention_units=8, epochs=1,
                                  batch_size=32, bucket_count=2),
            evaluation=EvaluationConfig(accuracy_lower_bound=0.0, max_accuracy_drop=1.0),
        )
    else:
        raise ValueError(f"Unknown profile {profile!r}; choose one of {', '.join(PROFILES)}")
    return dataclasses.replace(config, **changes)


def source_fingerprint(*paths: Path) -> str:
    """A short hash of the given .py files (directories: every .py below).

    Used as an execution property so that editing trainer code reruns
    Transform/Trainer instead of serving a cached, stale model. Paths are
    hashed relative to their parent, so the hash is machine-independent.
    """
    digest = hashlib.sha256()
    for path in paths:
        files = sorted(path.rglob("*.py")) if path.is_dir() else [path]
        for file in files:
            digest.update(file.relative_to(path.parent).as_posix().encode())
            digest.update(file.read_bytes())
    return digest.hexdigest()[:16]
