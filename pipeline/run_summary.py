"""What a run did, read back from ML Metadata and the artifacts it wrote.

Used by the local runner to print the end-of-run summary and write
`last_run.json`: each component's status and seconds, evaluation metrics per
split and slice, whether the model was blessed (and why), and where it was
pushed.
"""

from __future__ import annotations

import json
import math
import os
from typing import Any, Dict, List, Optional

from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2

_STATES = {
    metadata_store_pb2.Execution.NEW: "new",
    metadata_store_pb2.Execution.RUNNING: "running",
    metadata_store_pb2.Execution.COMPLETE: "complete",
    metadata_store_pb2.Execution.FAILED: "failed",
    metadata_store_pb2.Execution.CACHED: "cached",
    metadata_store_pb2.Execution.CANCELED: "canceled",
}


class MetadataReader:
    """Latest executions and their outputs, per pipeline node."""

    def __init__(self, connection_config: metadata_store_pb2.ConnectionConfig, pipeline_name: str):
        self.store = metadata_store.MetadataStore(connection_config)
        self.pipeline_name = pipeline_name

    def latest_execution(self, node_id: str, since_ms: int = 0) -> Optional[metadata_store_pb2.Execution]:
        context = self.store.get_context_by_type_and_name("node", f"{self.pipeline_name}.{node_id}")
        if context is None:
            return None
        executions = [e for e in self.store.get_executions_by_context(context.id)
                      if e.create_time_since_epoch >= since_ms]
        return max(executions, key=lambda e: e.id) if executions else None

    def outputs(self, execution: metadata_store_pb2.Execution) -> Dict[str, List[metadata_store_pb2.Artifact]]:
        events = self.store.get_events_by_execution_ids([execution.id])
        by_key: Dict[str, List[int]] = {}
        for event in events:
            if event.type in (metadata_store_pb2.Event.OUTPUT, metadata_store_pb2.Event.DECLARED_OUTPUT):
                key = event.path.steps[0].key if event.path.steps else ""
                by_key.setdefault(key, []).append(event.artifact_id)
        return {key: list(self.store.get_artifacts_by_id(ids)) for key, ids in by_key.items()}

    def output(self, node_id: str, key: str, since_ms: int = 0) -> Optional[metadata_store_pb2.Artifact]:
        execution = self.latest_execution(node_id, since_ms)
        if execution is None:
            return None
        artifacts = self.outputs(execution).get(key, [])
        return artifacts[-1] if artifacts else None


def _property(artifact: metadata_store_pb2.Artifact, name: str) -> Any:
    if name not in artifact.custom_properties:
        return None
    value = artifact.custom_properties[name]
    kind = value.WhichOneof("value")
    return getattr(value, kind) if kind else None


def _finite(value: float) -> Optional[float]:
    return round(value, 4) if value is not None and math.isfinite(value) else None


def evaluation_metrics(evaluation_uri: str) -> Dict[str, Dict[str, Dict[str, float]]]:
    """{split: {slice: {metric: value}}} for the candidate model."""
    import tensorflow_model_analysis as tfma  # heavy; only when there is an evaluation

    results: Dict[str, Dict[str, Dict[str, float]]] = {}
    split_dirs = [d for d in os.listdir(evaluation_uri) if d.startswith("Split-")] if os.path.isdir(
        evaluation_uri) else []
    sources = [(d[len("Split-"):], os.path.join(evaluation_uri, d)) for d in sorted(split_dirs)] or [
        ("eval", evaluation_uri)]
    for split, path in sources:
        per_slice: Dict[str, Dict[str, float]] = {}
        for metrics_for_slice in tfma.load_metrics(path):
            keys = metrics_for_slice.slice_key.single_slice_keys
            slice_name = "overall" if not keys else ",".join(
                f"{k.column}={k.int64_value or k.bytes_value.decode() or k.float_value}" for k in keys)
            values = per_slice.setdefault(slice_name, {})
            for item in metrics_for_slice.metric_keys_and_values:
                if item.key.is_diff or item.key.model_name == "baseline":
                    continue
                kind = item.value.WhichOneof("type")
                if kind == "double_value":
                    values[item.key.name] = _finite(item.value.double_value.value)
                elif kind == "bounded_value":
                    values[item.key.name] = _finite(item.value.bounded_value.value.value)
        results[split] = dict(sorted(per_slice.items(), key=lambda kv: (kv[0] != "overall", kv[0])))
    return results


def blessing_reason(evaluation_uri: str, blessed: bool) -> str:
    """A sentence saying why the Evaluator did or did not bless the model."""
    import tensorflow_model_analysis as tfma

    try:
        validation = tfma.load_validation_result(evaluation_uri)
    except Exception as error:  # noqa: BLE001 - the summary must still be written
        return f"validation result unreadable ({error})"
    if validation.validation_ok:
        return "passed every threshold (accuracy floor and no regression against the last blessed model)"
    failures = []
    for slice_result in validation.metric_validations_per_slice:
        keys = slice_result.slice_key.single_slice_keys
        where = "overall" if not keys else ",".join(
            f"{k.column}={k.int64_value or k.bytes_value.decode() or k.float_value}" for k in keys)
        for failure in slice_result.failures:
            value = failure.metric_value.double_value.value
            threshold = failure.metric_threshold
            if failure.metric_key.is_diff:
                bound = threshold.change_threshold.absolute.value
                failures.append(f"{failure.metric_key.name} changed by {value:+.4f} against the "
                                f"last blessed model on {where} (allowed: {bound:+.4f})")
            else:
                bound = threshold.value_threshold.lower_bound.value
                failures.append(f"{failure.metric_key.name} {value:.4f} on {where} is below "
                                f"the lower bound {bound:.4f}")
    return "failed: " + "; ".join(failures) if failures else "failed validation"


def model_summary(reader: MetadataReader, since_ms: int) -> Dict[str, Any]:
    """Evaluation, blessing and push facts of the latest run."""
    summary: Dict[str, Any] = {"metrics": {}, "blessed": None, "blessing_reason": None,
                               "pushed_model": None, "training": None, "ingestion": None,
                               "data_checks": None}
    examples = reader.output("ImdbExampleGen", "examples", since_ms)
    if examples is not None and _property(examples, "ingestion_report"):
        summary["ingestion"] = json.loads(_property(examples, "ingestion_report"))
    gate = reader.output("DataGate", "result", since_ms)
    if gate is not None and _property(gate, "text_checks"):
        summary["data_checks"] = json.loads(_property(gate, "text_checks"))
    model_run = reader.output("Trainer", "model_run", since_ms)
    if model_run is not None:
        history_path = os.path.join(model_run.uri, "training_history.json")
        if os.path.exists(history_path):
            with open(history_path) as handle:
                summary["training"] = json.load(handle)
    evaluation = reader.output("Evaluator", "evaluation", since_ms)
    if evaluation is not None:
        summary["metrics"] = evaluation_metrics(evaluation.uri)
    blessing = reader.output("Evaluator", "blessing", since_ms)
    if blessing is not None:
        summary["blessed"] = bool(_property(blessing, "blessed"))
        if evaluation is not None:
            summary["blessing_reason"] = blessing_reason(evaluation.uri, summary["blessed"])
    pushed = reader.output("Pusher", "pushed_model", since_ms)
    if pushed is not None and _property(pushed, "pushed"):
        summary["pushed_model"] = _property(pushed, "pushed_destination")
    return summary


def execution_state(reader: MetadataReader, node_id: str, since_ms: int) -> Optional[str]:
    execution = reader.latest_execution(node_id, since_ms)
    return _STATES.get(execution.last_known_state) if execution is not None else None
