"""Text profiles: what a schema cannot say about review text, and drift checks on it.

TFDV's schema constrains the label and rating, but to it a review is one
opaque string. A *text profile* summarises a set of reviews the way a model
sees them: the share of empty reviews, the distribution of review lengths (in
words, over fixed bins) and the distribution of the most frequent words (plus
one bucket for every other word). Two profiles are compared with the
Jensen-Shannon divergence (base 2: 0 = identical, 1 = disjoint).

DataGate compares the train split with a curated reference profile shipped
next to the schema (`pipeline/schema/text_profile.json`, made from the IMDB
training split with `python -m imdb_sentiment.components.text_profile`) and
the eval split with the train split. Regenerate the reference deliberately,
as you would edit the schema, when your data is meant to change.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import json
import math
import re
import sys
import tempfile
from pathlib import Path
from typing import Dict, Iterable, List, Mapping, Optional, Sequence

#: Upper edges (exclusive) of the review-length bins, in words; a last bin takes the rest.
LENGTH_EDGES = (1, 10, 25, 50, 100, 150, 200, 300, 400, 600, 800, 1200)
#: How many of the most frequent words a profile keeps (the rest share one bucket).
TOP_WORDS = 500
OTHER = "<other>"

_BREAK_RE = re.compile(r"<br\s*/?>", re.IGNORECASE)
_WORD_RE = re.compile(r"[^\W_]+(?:'[^\W_]+)?")


def words(text: str) -> List[str]:
    """Lower-cased words of a review, HTML line breaks removed.

    The one definition of a word as a reader counts it, used by the drift
    checks and the length slices. The model's tokens
    (`trainer/preprocessing.tokenize`) differ on purpose: punctuation is a
    token there, and the text is cut to the model's length.
    """
    return _WORD_RE.findall(_BREAK_RE.sub(" ", text).lower())


def word_count(text: str) -> int:
    """len(words(text)), without lower-casing."""
    return len(_WORD_RE.findall(_BREAK_RE.sub(" ", text)))


def length_bin(count: int) -> int:
    for index, edge in enumerate(LENGTH_EDGES):
        if count < edge:
            return index
    return len(LENGTH_EDGES)


@dataclasses.dataclass(frozen=True)
class TextProfile:
    reviews: int
    empty: int
    #: Share of reviews per length bin (len(LENGTH_EDGES) + 1 entries).
    lengths: List[float]
    #: Share of all words for the top words, plus OTHER for the rest.
    vocabulary: Dict[str, float]
    median_words: float

    @classmethod
    def from_texts(cls, texts: Iterable[str], top_words: int = TOP_WORDS) -> "TextProfile":
        counts: collections.Counter = collections.Counter()
        bins = [0] * (len(LENGTH_EDGES) + 1)
        lengths: List[int] = []
        for text in texts:
            review_words = words(text)
            counts.update(review_words)
            bins[length_bin(len(review_words))] += 1
            lengths.append(len(review_words))
        reviews = len(lengths)
        total_words = sum(counts.values())
        vocabulary: Dict[str, float] = {}
        if total_words:
            top = counts.most_common(top_words)
            vocabulary = {word: round(count / total_words, 7) for word, count in top}
            vocabulary[OTHER] = round(1.0 - sum(count for _, count in top) / total_words, 7)
        lengths.sort()
        median = float(lengths[len(lengths) // 2]) if lengths else 0.0
        return cls(reviews=reviews, empty=sum(1 for n in lengths if n == 0),
                   lengths=[round(b / reviews, 7) if reviews else 0.0 for b in bins],
                   vocabulary=vocabulary, median_words=median)

    def to_json(self, indent: Optional[int] = None) -> str:
        return json.dumps(dataclasses.asdict(self), ensure_ascii=False, sort_keys=True,
                          indent=indent)

    @classmethod
    def from_json(cls, text: str) -> "TextProfile":
        return cls(**json.loads(text))

    @property
    def empty_fraction(self) -> float:
        return self.empty / self.reviews if self.reviews else 0.0


def jensen_shannon(p: Sequence[float], q: Sequence[float]) -> float:
    """JS divergence (base 2) of two discrete distributions over the same support."""
    p_total, q_total = sum(p), sum(q)
    if not p_total or not q_total:
        return 1.0 if p_total != q_total else 0.0
    divergence = 0.0
    for a, b in zip(p, q):
        a, b = a / p_total, b / q_total
        m = (a + b) / 2
        if a:
            divergence += a * math.log2(a / m) / 2
        if b:
            divergence += b * math.log2(b / m) / 2
    return max(0.0, min(1.0, divergence))


def vocabulary_divergence(reference: Mapping[str, float], current: Mapping[str, float]) -> float:
    """JS divergence over the reference's top words (the rest pooled in OTHER).

    A word in `current`'s top list but not in the reference's counts towards
    OTHER, so a new vocabulary shows up as mass moving into that bucket.
    """
    support = [word for word in reference if word != OTHER]
    p = [reference.get(word, 0.0) for word in support] + [reference.get(OTHER, 0.0)]
    q = [current.get(word, 0.0) for word in support]
    q.append(max(0.0, 1.0 - sum(q)))
    return jensen_shannon(p, q)


def resampled_divergence(distribution: Sequence[float], reviews: int, quantile: float = 0.99,
                         draws: int = 400, seed: int = 0) -> float:
    """The divergence that chance alone gives at this sample size: the
    `quantile` of the JS divergence between `distribution` and the shares of
    `reviews` draws from it (multinomial, `draws` times, seeded).

    A divergence below it is no evidence of drift: about 5 reviews drawn from
    the very same data read a length JSD of 0.4 and more. For lengths a draw
    is a review; for the vocabulary a draw is a word (`profile_words`), and
    since a review's words are not independent that floor errs low.
    """
    import numpy as np

    if reviews <= 0:
        return 1.0
    shares = np.asarray(distribution, dtype=float)
    if shares.sum() <= 0:
        return 0.0
    shares = shares / shares.sum()
    rng = np.random.default_rng(seed)
    samples = rng.multinomial(reviews, shares, size=draws) / reviews
    # jensen_shannon over every draw at once (same formula, base 2).
    middle = (samples + shares) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        p_terms = np.where(shares > 0, shares * np.log2(shares / middle), 0.0)
        q_terms = np.where(samples > 0, samples * np.log2(samples / middle), 0.0)
    divergences = np.sort(np.clip((p_terms.sum(axis=1) + q_terms.sum(axis=1)) / 2, 0.0, 1.0))
    return float(divergences[min(draws - 1, int(quantile * draws))])


def effective_reviews(first: int, second: int) -> int:
    """The sample size of a two-sample comparison, for the noise floor (harmonic):
    a 25,000-review reference against 300 reviews counts as about 300."""
    if first <= 0 or second <= 0:
        return 0
    return max(1, round(1 / (1 / first + 1 / second)))


def _vocabulary_shares(profile: "TextProfile") -> List[float]:
    return list(profile.vocabulary.values())


def profile_words(profile: "TextProfile") -> int:
    """About how many words a profile counted (its reviews times their median length)."""
    return int(profile.reviews * max(profile.median_words, 1.0))


@dataclasses.dataclass(frozen=True)
class Drift:
    length: float
    vocabulary: float
    #: What chance gives at this sample size (`resampled_divergence`).
    length_noise: float = 0.0
    vocabulary_noise: float = 0.0

    def as_dict(self) -> Dict[str, float]:
        return {"length_jsd": round(self.length, 4), "vocabulary_jsd": round(self.vocabulary, 4),
                "length_noise_jsd": round(self.length_noise, 4),
                "vocabulary_noise_jsd": round(self.vocabulary_noise, 4)}


def drift(reference: TextProfile, current: TextProfile) -> Drift:
    reviews = effective_reviews(reference.reviews, current.reviews)
    words = effective_reviews(profile_words(reference), profile_words(current))
    return Drift(length=jensen_shannon(reference.lengths, current.lengths),
                 vocabulary=vocabulary_divergence(reference.vocabulary, current.vocabulary),
                 length_noise=resampled_divergence(reference.lengths, reviews),
                 vocabulary_noise=resampled_divergence(_vocabulary_shares(reference), words))


def main(argv: Optional[List[str]] = None) -> int:
    """Writes the reference profile of an archive's train split (eval and report excluded)."""
    from .imdb_data import DataError, ReadReport, SplitRule, read_reviews, resolve_source

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--data", required=True, help="aclImdb archive or directory")
    parser.add_argument("--out", required=True, type=Path)
    args = parser.parse_args(argv)
    rule = SplitRule()  # the default split, as IngestionConfig's defaults make it
    try:
        source = resolve_source(args.data, Path(tempfile.gettempdir()) / "imdb-download-cache")
        texts = [review.text for review in read_reviews(source, ReadReport())
                 if rule.split_of(review) == "train"]
    except DataError as error:
        print(f"text_profile: {error}", file=sys.stderr)
        return 2
    profile = TextProfile.from_texts(texts)
    args.out.write_text(profile.to_json(indent=0) + "\n")
    print(f"wrote {args.out}: {profile.reviews} reviews, median {profile.median_words:.0f} words")
    return 0


if __name__ == "__main__":
    sys.exit(main())


@dataclasses.dataclass(frozen=True)
class TextLimits:
    """Thresholds of the text checks; `pipeline.config.ValidationConfig` extends them."""

    #: Largest share of empty reviews in any split.
    max_empty_fraction: float = 0.01
    #: Largest Jensen-Shannon divergence (0-1) of the review-length distribution:
    #: train split vs the reference profile, eval vs train. The values measured
    #: on IMDB, and on broken data, are in docs/data-policy.md.
    max_length_drift: float = 0.1
    #: Same for the distribution of the 500 most frequent words (rest pooled).
    max_vocabulary_drift: float = 0.1
    #: Between spans (data given as `{SPAN}`): largest L-infinity distance
    #: (TFDV's drift comparator) of the label's and the rating's value shares,
    #: newest span against the one before it (components/span_drift.py).
    max_label_drift: float = 0.1
    max_rating_drift: float = 0.1

    def __post_init__(self) -> None:
        for field in dataclasses.fields(TextLimits):
            value = getattr(self, field.name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{field.name} must be in [0, 1], got {value}")

    @classmethod
    def of(cls, limits: "TextLimits") -> "TextLimits":
        """Just the limits of `limits` (which may be a subclass with more fields)."""
        return cls(**{f.name: getattr(limits, f.name) for f in dataclasses.fields(cls)})
