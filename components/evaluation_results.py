"""TFMA's results for both models, read back as plain dicts.

Shared by the run summary (`reporting/run_summary.py`), ServedModelGate (the
candidate's accuracy) and the model card (`components/model_card.py`).
"""

from __future__ import annotations

import math
from typing import Any, Dict, List, Optional

from . import paired_accuracy

#: What each split is for (docs/evaluation-protocol.md): the one table the CLI, the run
#: report and the model card all print.
SPLIT_ROLES = {"eval": "chose the epoch and gates the push", "report": "decides nothing",
               "test": "the archive's official test split; decides nothing"}

#: The paired difference's values, as the Evaluator stores them (diff keys).
PAIRED_VALUES = (paired_accuracy.NAME, paired_accuracy.LOWER, paired_accuracy.UPPER,
                 paired_accuracy.ONLY_CANDIDATE, paired_accuracy.ONLY_BASELINE)


def _finite(value: float) -> Optional[float]:
    return round(value, 4) if value is not None and math.isfinite(value) else None


def slice_name(slice_key) -> str:
    """`overall` for a split's own slice, `rating=3` below it (the split is a level above)."""
    keys = [k for k in slice_key.single_slice_keys if k.column != "data_split"]
    return "overall" if not keys else ",".join(
        f"{k.column}={k.int64_value or k.bytes_value.decode() or k.float_value}" for k in keys)


def split_of(slice_key) -> Optional[str]:
    for key in slice_key.single_slice_keys:
        if key.column == "data_split":
            return key.bytes_value.decode()
    return None


def evaluation_metrics(evaluation_uri: str) -> Dict[str, Any]:
    """What TFMA computed, per split: both models' metrics by slice, and the
    two accuracies with 95% intervals and their difference.

    {"metrics": {split: {slice: {metric: value}}} (candidate),
     "baseline_metrics": same for the linear baseline,
     "accuracy": {split: {"candidate" | "linear_baseline" | "difference": {value, ci95}}}}
    """
    import tensorflow_model_analysis as tfma  # heavy; only when there is an evaluation

    metrics: Dict[str, Dict[str, Dict[str, float]]] = {}
    baseline: Dict[str, Dict[str, Dict[str, float]]] = {}
    intervals: Dict[str, Dict[str, Dict[str, Any]]] = {}
    for metrics_for_slice in tfma.load_metrics(evaluation_uri):
        split = split_of(metrics_for_slice.slice_key) or "all"
        name = slice_name(metrics_for_slice.slice_key)
        for item in metrics_for_slice.metric_keys_and_values:
            key = item.key
            role = "difference" if key.is_diff else (
                "linear_baseline" if key.model_name == "linear_baseline" else "candidate")
            kind = item.value.WhichOneof("type")
            if kind == "confusion_matrix_at_thresholds":
                value: Any = confusion_matrices(item.value.confusion_matrix_at_thresholds)
            elif kind == "double_value":
                value = _finite(item.value.double_value.value)
            else:
                continue
            if role != "difference":
                target = baseline if role == "linear_baseline" else metrics
                target.setdefault(split, {}).setdefault(name, {})[key.name] = value
            if name == "overall" and key.name in ("binary_accuracy", "example_count",
                                                  *PAIRED_VALUES):
                intervals.setdefault(split, {}).setdefault(role, {})[key.name] = value

    def ordered(by_split):
        return {split: dict(sorted(slices.items(), key=lambda kv: (kv[0] != "overall", kv[0])))
                for split, slices in sorted(by_split.items())}

    return {"metrics": ordered(metrics), "baseline_metrics": ordered(baseline),
            "accuracy": {split: accuracy_comparison(by_role) for split, by_role in intervals.items()}}


def one_class(metrics: Dict[str, Any]) -> bool:
    """Whether a slice holds reviews of one class only (every star-rating slice):
    there AUC is undefined, and TFMA's number for it means nothing."""
    return metrics.get("mean_label") in (0.0, 1.0)


def confusion_matrices(proto) -> List[Dict[str, float]]:
    """TFMA's ConfusionMatrixAtThresholds as plain rows, one per threshold."""
    fields = ("threshold", "true_positives", "false_positives", "true_negatives",
              "false_negatives", "precision", "recall")
    return [{name: _finite(getattr(matrix, name)) for name in fields} for matrix in proto.matrices]


def wilson_interval(accuracy: float, count: float, z: float = 1.96) -> List[float]:
    """95% Wilson score interval of a proportion measured on `count` examples."""
    if not count:
        return [0.0, 1.0]
    centre = (accuracy + z * z / (2 * count)) / (1 + z * z / count)
    half = z * math.sqrt(accuracy * (1 - accuracy) / count + z * z / (4 * count * count)) / (
        1 + z * z / count)
    return [round(centre - half, 4), round(centre + half, 4)]


def accuracy_comparison(by_role: Dict[str, Dict[str, float]]) -> Dict[str, Any]:
    """Both models' accuracy on one split, each with its 95% interval, and their
    difference (candidate − baseline) with its paired 95% interval
    (`components/paired_accuracy.py`; None when the evaluation did not compute it)."""
    result: Dict[str, Any] = {}
    for role in ("candidate", "linear_baseline"):
        values = by_role.get(role, {})
        if values.get("binary_accuracy") is not None:
            result[role] = {"value": values["binary_accuracy"], "ci95": wilson_interval(
                values["binary_accuracy"], values.get("example_count") or 0)}
    paired = by_role.get("difference", {})
    difference = paired.get(paired_accuracy.NAME, paired.get("binary_accuracy"))
    if difference is not None:
        lower, upper = paired.get(paired_accuracy.LOWER), paired.get(paired_accuracy.UPPER)
        result["difference"] = {
            "value": difference,
            "ci95": [lower, upper] if lower is not None and upper is not None else None,
            "only_candidate_right": paired.get(paired_accuracy.ONLY_CANDIDATE),
            "only_baseline_right": paired.get(paired_accuracy.ONLY_BASELINE)}
    result["reviews"] = by_role.get("candidate", {}).get("example_count")
    return result


def margin_sentence(comparison: Dict[str, Any], split: str) -> Optional[str]:
    """One plain sentence on the BiLSTM against the linear baseline on `split`."""
    difference = (comparison or {}).get("difference")
    if not difference or difference.get("value") is None:
        return None
    value, ci95 = difference["value"], difference.get("ci95")
    interval = f" (paired 95% interval {ci95[0]:+.4f} to {ci95[1]:+.4f})" if ci95 else ""
    if ci95 and ci95[1] < 0:
        verdict = "the BiLSTM trails the linear baseline"
    elif ci95 and ci95[0] > 0:
        verdict = "the BiLSTM beats the linear baseline"
    elif ci95:
        verdict = "the BiLSTM and the linear baseline cannot be told apart"
    else:
        verdict = "the BiLSTM " + ("trails" if value < 0 else "leads") + " the linear baseline"
    return f"{verdict} on {split}: {value:+.4f} accuracy{interval}"
