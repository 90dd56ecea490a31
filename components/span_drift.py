"""Drift between spans: the newest span against the one before it.

ImdbExampleGen summarises the labelled reviews of both spans (`SpanSummary`,
written as `span_summaries.json` beside the splits; the previous span is read
for this even when the run does not train on it). DataGate compares them:

- label and rating: TFDV's own drift comparator (L-infinity distance between
  the two spans' value shares, `tfdv.validate_statistics` with
  `previous_statistics`);
- review lengths and vocabulary: the text profiles' Jensen-Shannon divergence.

Every threshold is aware of the sample size: a distance counts as drift only
above both its limit and what chance gives at the two spans' sizes (for
L-infinity, `z` binomial standard errors of a share; for Jensen-Shannon,
`text_profile.resampled_divergence`). Small spans are therefore judged on
large changes only, and no span is refused for sampling noise.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import math
import os
from typing import Any, Dict, Iterable, List, Optional, Tuple

from . import text_profile

SUMMARY_FILE = "span_summaries.json"
#: Standard errors of a share that chance may move it by (L-infinity noise floor):
#: about a 1-in-2,000 false alarm per value, so about 1 in 200 over ten ratings.
NOISE_Z = 3.5


@dataclasses.dataclass(frozen=True)
class SpanSummary:
    span: int
    reviews: int
    #: Reviews per value, keys as strings (JSON).
    labels: Dict[str, int]
    ratings: Dict[str, int]
    profile: text_profile.TextProfile

    @classmethod
    def of(cls, span: int, reviews: Iterable[Any]) -> "SpanSummary":
        """The labelled reviews of a span (`imdb_data.Review`s)."""
        labelled = [r for r in reviews if r.labelled]
        return cls(span=span, reviews=len(labelled),
                   labels=dict(sorted(collections.Counter(str(r.label) for r in labelled).items())),
                   ratings=dict(sorted(collections.Counter(str(r.rating) for r in labelled).items())),
                   profile=text_profile.TextProfile.from_texts(r.text for r in labelled))

    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, record: Dict[str, Any]) -> "SpanSummary":
        return cls(**{**record, "profile": text_profile.TextProfile(**record["profile"])})


def write_summaries(directory: str, current: SpanSummary, previous: Optional[SpanSummary]) -> None:
    import tensorflow as tf

    with tf.io.gfile.GFile(os.path.join(directory, SUMMARY_FILE), "w") as handle:
        handle.write(json.dumps({"current": current.to_dict(),
                                 "previous": previous.to_dict() if previous else None}))


def read_summaries(directory: str) -> Tuple[Optional[SpanSummary], Optional[SpanSummary]]:
    """(current, previous); (None, None) for data without spans."""
    import tensorflow as tf

    path = os.path.join(directory, SUMMARY_FILE)
    if not tf.io.gfile.exists(path):
        return None, None
    with tf.io.gfile.GFile(path) as handle:
        record = json.loads(handle.read())
    previous = record.get("previous")
    return (SpanSummary.from_dict(record["current"]),
            SpanSummary.from_dict(previous) if previous else None)


def share_noise(first: int, second: int, z: float = NOISE_Z) -> float:
    """How far chance moves a share between two samples of these sizes (at
    most: the binomial standard error is largest at a share of one half)."""
    if first <= 0 or second <= 0:
        return 1.0
    return z * math.sqrt(0.25 * (1 / first + 1 / second))


def tfdv_linf_distance(previous: Dict[str, int], current: Dict[str, int], feature: str) -> float:
    """TFDV's L-infinity drift distance of an integer categorical feature,
    from each span's value counts, as `tfdv.validate_statistics` measures it."""
    import pandas as pd
    import tensorflow_data_validation as tfdv
    from tensorflow_metadata.proto.v0 import schema_pb2

    def statistics(counts: Dict[str, int]):
        values = [int(value) for value, count in counts.items() for _ in range(count)]
        return tfdv.generate_statistics_from_dataframe(pd.DataFrame({feature: values}))

    schema = schema_pb2.Schema()
    field = schema.feature.add(name=feature, type=schema_pb2.INT)
    field.int_domain.is_categorical = True
    field.drift_comparator.infinity_norm.threshold = 1.0  # report, never flag: we decide below
    anomalies = tfdv.validate_statistics(statistics(current), schema,
                                         previous_statistics=statistics(previous))
    for info in anomalies.drift_skew_info:
        if info.path.step == [feature]:
            for measurement in info.drift_measurements:
                return float(measurement.value)
    raise RuntimeError(f"TFDV reported no drift measurement for {feature}")


def compare(previous: SpanSummary, current: SpanSummary, limits: Any) -> Tuple[List[str], Dict[str, Any]]:
    """(problems, report) of the newest span against the one before it.

    `limits`: `TextLimits` (max_length_drift, max_vocabulary_drift,
    max_label_drift, max_rating_drift).
    """
    from .data_gate import drift_problems

    what = f"span {current.span}"
    against = f"span {previous.span}"
    problems: List[str] = []
    noise = share_noise(previous.reviews, current.reviews)
    report: Dict[str, Any] = {"previous_span": previous.span, "current_span": current.span,
                              "reviews": [previous.reviews, current.reviews],
                              "share_noise": round(noise, 4)}
    for feature, limit, old, new in (("label", limits.max_label_drift, previous.labels, current.labels),
                                     ("rating", limits.max_rating_drift, previous.ratings,
                                      current.ratings)):
        distance = tfdv_linf_distance(old, new, feature)
        report[f"{feature}_linf"] = round(distance, 4)
        if distance > max(limit, noise):
            floor = f"; chance alone reads up to {noise:.3f} at these sizes" if noise > limit else ""
            problems.append(f"{what}: {feature} drifted from {against} (TFDV L-infinity "
                            f"{distance:.3f} > {max(limit, noise):.3f} at {current.reviews} vs "
                            f"{previous.reviews} reviews{floor})")
    measured = text_profile.drift(previous.profile, current.profile)
    report.update(measured.as_dict())
    problems += drift_problems(what, against, previous.profile, current.profile, measured, limits)
    return problems, report
