"""What a run did, read back from ML Metadata and the artifacts it wrote.

Used by the local runner to print the end-of-run summary and write
`last_run.json`: each component's status and seconds, evaluation metrics per
split and slice, whether the model was blessed (and why), and where it was
pushed.
"""

from __future__ import annotations

import json
import os
from typing import Any, Dict, List, Optional

from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2

from imdb_sentiment.components.evaluation_results import (  # noqa: F401  (re-exported)
    accuracy_comparison, evaluation_metrics, margin_sentence, split_of, wilson_interval)

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

    def outputs(self, execution: metadata_store_pb2.Execution,
                ) -> Dict[str, List[metadata_store_pb2.Artifact]]:
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


#: What the Evaluator's thresholds check (the wording every record uses).
PASSED_EVALUATOR = ("passed the accuracy floor and the tolerance against the linear baseline "
                    "(evaluation.min_margin_over_baseline)")


def blessing_reason(evaluation_uri: str) -> str:
    """A sentence saying why the Evaluator did or did not bless the model."""
    import tensorflow_model_analysis as tfma

    try:
        validation = tfma.load_validation_result(evaluation_uri)
    except Exception as error:  # noqa: BLE001 - the summary must still be written
        return f"validation result unreadable ({error})"
    if validation.validation_ok:
        return PASSED_EVALUATOR
    failures = []
    for slice_result in validation.metric_validations_per_slice:
        where = f"the {split_of(slice_result.slice_key) or 'whole'} split"
        for failure in slice_result.failures:
            value = failure.metric_value.double_value.value
            threshold = failure.metric_threshold
            if failure.metric_key.is_diff:
                bound = threshold.change_threshold.absolute.value
                failures.append(f"{failure.metric_key.name} is {value:+.4f} against the linear "
                                f"baseline on {where} (required: at least {bound:+.4f})")
            else:
                bound = threshold.value_threshold.lower_bound.value
                failures.append(f"{failure.metric_key.name} {value:.4f} on {where} is below "
                                f"the lower bound {bound:.4f}")
    return "failed: " + "; ".join(failures) if failures else "failed validation"


def spans_read(record: Dict[str, Any]) -> str:
    """'span 3 (imdb-3.tar.gz)' / 'spans 2-3 (imdb-2.tar.gz, imdb-3.tar.gz)', or '' for data without spans."""
    read = (record.get("ingestion") or {}).get("spans") or []
    if not read or read == [{"number": 0, "uri": read[0]["uri"], "version": None}]:
        return ""
    from imdb_sentiment.components.spans import describe_numbers

    names = ", ".join(span["uri"].rstrip("/").rsplit("/", 1)[-1] for span in read)
    return f"{describe_numbers([span['number'] for span in read])} ({names})"


def data_notes(record: Dict[str, Any]) -> List[str]:
    """Plain sentences on what ingestion skipped and what the teacher did."""
    notes = []
    read = spans_read(record)
    if read:
        notes.append(f"data: {read}")
    oversized = (record.get("ingestion") or {}).get("oversized") or {}
    if oversized.get("skipped"):
        by_split = ", ".join(f"{split} {count}" for split, count in sorted(oversized["by_split"].items()))
        notes.append(f"skipped {oversized['skipped']} review(s) over {oversized['limit_bytes']:,} "
                     f"bytes unread ({by_split}; ingestion.max_review_bytes), e.g. "
                     f"{', '.join(oversized['examples'][:3])}")
    teacher = record.get("teacher") or {}
    if teacher.get("skipped"):
        notes.append(f"distillation skipped: {teacher['skipped']}")
    elif teacher.get("unlabelled_reviews"):
        notes.append(f"distillation: the {teacher['teacher']} teacher (eval accuracy "
                     f"{teacher['eval_accuracy']:.4f}, fitted on {teacher['train_reviews']} train "
                     f"reviews) labelled {teacher['unlabelled_reviews']} unlabelled reviews")
    return notes


def model_summary(reader: MetadataReader, since_ms: int) -> Dict[str, Any]:
    """Evaluation, blessing and push facts of the latest run."""
    summary: Dict[str, Any] = {"metrics": {}, "baseline_metrics": {}, "accuracy": {},
                               "blessed": None, "blessing_reason": None,
                               "pushed_model": None, "training": None, "ingestion": None,
                               "data_checks": None, "teacher": None}
    examples = reader.output("ImdbExampleGen", "examples", since_ms)
    if examples is not None and _property(examples, "ingestion_report"):
        summary["ingestion"] = json.loads(_property(examples, "ingestion_report"))
    gate = reader.output("DataGate", "checked_schema", since_ms)
    if gate is not None and _property(gate, "text_checks"):
        summary["data_checks"] = json.loads(_property(gate, "text_checks"))
    for node_id, key in (("Trainer", "training"), ("BaselineTrainer", "baseline_training")):
        model_run = reader.output(node_id, "model_run", since_ms)
        history_path = os.path.join(model_run.uri, "training_history.json") if model_run else ""
        if history_path and os.path.exists(history_path):
            with open(history_path) as handle:
                summary[key] = json.load(handle)
    teacher = reader.output("TeacherLabels", "soft_labels", since_ms)
    if teacher is not None and _property(teacher, "teacher_report"):
        summary["teacher"] = json.loads(_property(teacher, "teacher_report"))
    evaluation = reader.output("Evaluator", "evaluation", since_ms)
    if evaluation is not None:
        summary.update(evaluation_metrics(evaluation.uri))
        summary["baseline_margin"] = {
            split: sentence for split in ("eval", "report")
            if (sentence := margin_sentence(summary["accuracy"].get(split), split))}
    evaluator_blessing = reader.output("Evaluator", "blessing", since_ms)
    gate = reader.output("ServedModelGate", "blessing", since_ms)
    if evaluator_blessing is not None and not _property(evaluator_blessing, "blessed"):
        summary["blessed"] = False
        summary["blessing_reason"] = blessing_reason(evaluation.uri) if evaluation else None
    elif gate is not None:
        summary["blessed"] = bool(_property(gate, "blessed"))
        summary["blessing_reason"] = (
            (f"{PASSED_EVALUATOR}; " if summary["blessed"] else "") + str(_property(gate, "reason")))
    pushed = reader.output("Pusher", "pushed_model", since_ms)
    if pushed is not None and _property(pushed, "pushed"):
        summary["pushed_model"] = _property(pushed, "pushed_destination")
    return summary


def execution_state(reader: MetadataReader, node_id: str, since_ms: int) -> Optional[str]:
    execution = reader.latest_execution(node_id, since_ms)
    return _STATES.get(execution.last_known_state) if execution is not None else None
