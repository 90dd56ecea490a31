"""Loading an exported or pushed model and calling its signatures in-process.

The same requests a TF Serving client sends: serialized tf.Examples to
`serving_default`, raw strings to `explain`.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import List, Sequence, Tuple

import tensorflow as tf

from imdb_sentiment.components import serving_layout
from imdb_sentiment.trainer import features


@dataclasses.dataclass(frozen=True)
class Explanation:
    review: str
    probability: float
    tokens: Tuple[str, ...]
    weights: Tuple[float, ...]

    @property
    def label(self) -> str:
        return features.CLASS_NAMES[int(self.probability >= 0.5)]

    def top_tokens(self, count: int) -> List[Tuple[str, float]]:
        return sorted(zip(self.tokens, self.weights), key=lambda tw: -tw[1])[:count]


def resolve_model_dir(path: str) -> Path:
    """A SavedModel dir, or the version TF Serving would serve from a base dir."""
    root = Path(path).expanduser()
    if (root / "saved_model.pb").exists():
        return root
    newest = serving_layout.newest_version(str(root)) if root.is_dir() else None
    if newest and (Path(newest) / "saved_model.pb").exists():
        return Path(newest)
    where = f"; its newest version {newest} has none" if newest else ""
    raise FileNotFoundError(f"{path}: no saved_model.pb there or in a numbered version "
                            f"below it{where}")


def load(path: str):
    return tf.saved_model.load(str(resolve_model_dir(path)))


def serialize_reviews(reviews: Sequence[str]) -> tf.Tensor:
    examples = [tf.train.Example(features=tf.train.Features(feature={
        features.TEXT: tf.train.Feature(bytes_list=tf.train.BytesList(value=[r.encode("utf-8")]))
    })).SerializeToString() for r in reviews]
    return tf.constant(examples)


def predict(model, reviews: Sequence[str], batch_size: int = 256) -> List[float]:
    """P(positive) for each review, through `serving_default`."""
    signature = model.signatures["serving_default"]
    probabilities: List[float] = []
    for start in range(0, len(reviews), batch_size):
        batch = serialize_reviews(reviews[start:start + batch_size])
        probabilities.extend(float(p) for p in signature(examples=batch)["probability"].numpy())
    return probabilities


def explain(model, reviews: Sequence[str]) -> List[Explanation]:
    """Probability, tokens and attention weights, through the `explain` signature."""
    outputs = model.signatures["explain"](text=tf.constant(list(reviews)))
    explanations = []
    for review, probability, tokens, weights in zip(
            reviews, outputs["probability"].numpy(), outputs["tokens"].numpy(),
            outputs["attention"].numpy()):
        kept = [(t.decode("utf-8", "replace"), float(w)) for t, w in zip(tokens, weights) if t]
        explanations.append(Explanation(review, float(probability),
                                        tuple(t for t, _ in kept), tuple(w for _, w in kept)))
    return explanations
