"""A TFMA metric: the candidate's accuracy minus the baseline's, paired, with its interval.

Both models score the same reviews, so their difference is measured review
by review: `b` reviews only the candidate gets right, `c` only the baseline.
The difference is (b - c) / n and its 95% interval is the Wald interval of a
paired difference of proportions, se = sqrt(b + c - (b - c)^2 / n) / n
(Newcombe 1998, method 10's normal form). It is much narrower than two
independent intervals would suggest, because the models agree on most reviews.

TFMA computes it beside the other metrics in the Evaluator's one pass (like
TFMA's own `ModelCosineSimilarity`, it reads both models' predictions), so the
run summary, the report and the model card read one number from one place.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Dict, Iterable, List, Optional

import apache_beam as beam
import numpy as np
from tensorflow_model_analysis.metrics import metric_types, metric_util
from tensorflow_model_analysis.proto import config_pb2
from tensorflow_model_analysis.utils import model_util

#: The metric's name, and the names of the values it emits (each a diff key).
NAME = "paired_accuracy_difference"
LOWER, UPPER = f"{NAME}_ci95_lower", f"{NAME}_ci95_upper"
ONLY_CANDIDATE, ONLY_BASELINE = "only_candidate_right", "only_baseline_right"
#: The decision threshold of a probability (the served decision).
THRESHOLD = 0.5
Z95 = 1.959964


def paired_difference(only_candidate: int, only_baseline: int, count: int) -> Dict[str, float]:
    """Difference of accuracies and its 95% interval from the discordant counts."""
    if count <= 0:
        return {"value": math.nan, "ci95": [math.nan, math.nan]}
    difference = (only_candidate - only_baseline) / count
    variance = max(0.0, only_candidate + only_baseline - (only_candidate - only_baseline) ** 2 / count)
    half = Z95 * math.sqrt(variance) / count
    return {"value": difference, "ci95": [difference - half, difference + half]}


@dataclasses.dataclass
class _Counts:
    count: float = 0.0
    only_candidate: float = 0.0
    only_baseline: float = 0.0

    def merge(self, other: "_Counts") -> None:
        self.count += other.count
        self.only_candidate += other.only_candidate
        self.only_baseline += other.only_baseline


class PairedAccuracyDifference(metric_types.Metric):
    """Candidate minus baseline accuracy at 0.5, with a paired 95% interval."""

    def __init__(self, name: str = NAME):
        super().__init__(_computations, name=name)


def _computations(name: str = NAME, eval_config: Optional[config_pb2.EvalConfig] = None,
                  model_names: Iterable[str] = ("",), output_names: Iterable[str] = ("",),
                  sub_keys=None) -> metric_types.MetricComputations:
    baseline_spec = model_util.get_baseline_model_spec(eval_config)
    baseline = baseline_spec.name if baseline_spec else None
    computations: List[metric_types.MetricComputation] = []
    if baseline is None:
        return computations
    for model_name in model_names or ("",):
        if model_name == baseline:
            continue
        for output_name in output_names or ("",):
            keys = {value: metric_types.MetricKey(name=value, model_name=model_name,
                                                  output_name=output_name, is_diff=True)
                    for value in (NAME, LOWER, UPPER, ONLY_CANDIDATE, ONLY_BASELINE)}
            computations.append(metric_types.MetricComputation(
                keys=list(keys.values()), preprocessors=None,
                combiner=_PairedCombiner(keys, eval_config, baseline, model_name, output_name)))
    return computations


class _PairedCombiner(beam.CombineFn):
    def __init__(self, keys: Dict[str, metric_types.MetricKey], eval_config, baseline: str,
                 model_name: str, output_name: str):
        self._keys, self._eval_config = keys, eval_config
        self._baseline, self._model_name, self._output_name = baseline, model_name, output_name

    def _right(self, element, model_name: str) -> np.ndarray:
        label, prediction, _ = next(metric_util.to_label_prediction_example_weight(
            inputs=element, eval_config=self._eval_config, model_name=model_name,
            output_name=self._output_name, flatten=False, allow_none=True))
        label = np.asarray(label, dtype=np.float64).reshape(-1)
        prediction = np.asarray(prediction, dtype=np.float64).reshape(-1)
        return (prediction >= THRESHOLD) == (label >= THRESHOLD)

    def create_accumulator(self) -> _Counts:
        return _Counts()

    def add_input(self, accumulator: _Counts, element) -> _Counts:
        candidate = self._right(element, self._model_name)
        baseline = self._right(element, self._baseline)
        accumulator.count += candidate.size
        accumulator.only_candidate += float(np.sum(candidate & ~baseline))
        accumulator.only_baseline += float(np.sum(baseline & ~candidate))
        return accumulator

    def merge_accumulators(self, accumulators: Iterable[_Counts]) -> _Counts:
        accumulators = iter(accumulators)
        result = next(accumulators)
        for accumulator in accumulators:
            result.merge(accumulator)
        return result

    def extract_output(self, accumulator: _Counts) -> Dict[metric_types.MetricKey, float]:
        paired = paired_difference(int(accumulator.only_candidate), int(accumulator.only_baseline),
                                   int(accumulator.count))
        return {self._keys[NAME]: paired["value"], self._keys[LOWER]: paired["ci95"][0],
                self._keys[UPPER]: paired["ci95"][1],
                self._keys[ONLY_CANDIDATE]: accumulator.only_candidate,
                self._keys[ONLY_BASELINE]: accumulator.only_baseline}


metric_types.register_metric(PairedAccuracyDifference)
