"""DataGate: stops the run when ExampleValidator found anomalies or the text drifted.

ExampleValidator (TFX 1.16) records anomalies but never fails, so a run
would go on to train and push a model on data that broke the curated
schema. This gate sits between validation and Transform: it fails with a
message naming each problem (split, feature, what was wrong), and also
checks what a schema cannot say about the text (see `text_profile`):

- the train split holds both classes;
- at most `max_empty_fraction` of a split's reviews are empty;
- the train split's review lengths and word distribution are close to the
  curated reference profile, and the eval split's close to the train split's
  (Jensen-Shannon divergence at most `max_length_drift` / `max_vocabulary_drift`,
  or what chance gives at the sample's size if that is more);
- with data given as spans, the newest span is close to the one before it in
  label, rating, lengths and vocabulary (`span_drift`).

The measured profiles and divergences are logged, pass or fail. On a pass
the gate outputs the schema the data was checked against (a copy of its
input schema, with the checks as a `text_checks` custom property), and
Transform and the Trainers read that: what trains on the data depends on
the gate through an artifact, which MLMD's lineage shows, not through an
ordering edge.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from typing import Any, Dict, List, Optional, Sequence

from tensorflow_metadata.proto.v0 import anomalies_pb2, statistics_pb2
from tfx import types
from tfx.dsl.components.base import base_component, base_executor, executor_spec
from tfx.types import artifact_utils, standard_artifacts
from tfx.types.component_spec import ChannelParameter, ExecutionParameter
from tfx.utils import io_utils

from . import example_files, span_drift, text_profile
from .text_profile import TextLimits
from .imdb_data import DataError

ANOMALIES_FILE = "SchemaDiff.pb"
STATISTICS_FILE = "FeatureStats.pb"


class DataValidationError(DataError):
    """The data broke the schema or a training-set invariant."""


def split_anomalies(anomalies_uri: str, split: str) -> List[str]:
    """One line per anomaly of a split, as ExampleValidator wrote them."""
    path = os.path.join(anomalies_uri, f"Split-{split}", ANOMALIES_FILE)
    anomalies = anomalies_pb2.Anomalies()
    anomalies.ParseFromString(io_utils.read_bytes_file(path))
    lines = [f"{split}: feature '{name}': {info.short_description or info.description}"
             for name, info in sorted(anomalies.anomaly_info.items())]
    if anomalies.HasField("dataset_anomaly_info"):
        info = anomalies.dataset_anomaly_info
        lines.append(f"{split}: dataset: {info.short_description or info.description}")
    return lines


def label_range(statistics_uri: str, split: str, label: str) -> tuple:
    """(min, max) of the label in a split's statistics."""
    path = os.path.join(statistics_uri, f"Split-{split}", STATISTICS_FILE)
    statistics = statistics_pb2.DatasetFeatureStatisticsList()
    statistics.ParseFromString(io_utils.read_bytes_file(path))
    for feature in statistics.datasets[0].features:
        if feature.path.step == [label] or feature.name == label:
            return feature.num_stats.min, feature.num_stats.max
    return None, None


def split_texts(examples_uri: str, split: str, feature: str) -> List[str]:
    """Every review text of a split of an Examples artifact."""
    return [example_files.text_of(example, feature)
            for example in example_files.split_examples(examples_uri, split)]


def drift_problems(what: str, against: str, base: text_profile.TextProfile,
                   current: text_profile.TextProfile, measured: text_profile.Drift,
                   limits: TextLimits) -> List[str]:
    """A divergence is drift when it is above its limit *and* above what chance
    gives at this sample size (`text_profile.resampled_divergence`)."""
    problems = []
    for name, value, noise, limit in (
            ("review lengths", measured.length, measured.length_noise, limits.max_length_drift),
            ("vocabulary", measured.vocabulary, measured.vocabulary_noise,
             limits.max_vocabulary_drift)):
        if value > max(limit, noise):
            floor = (f"; chance alone reads up to {noise:.3f} at {current.reviews} reviews"
                     if noise > limit else "")
            median = (f"; median {current.median_words:.0f} words, was {base.median_words:.0f}"
                      if name == "review lengths" else "")
            problems.append(f"{what}: {name} drifted from {against} (Jensen-Shannon "
                            f"{value:.3f} > {max(limit, noise):.3f}{floor}{median})")
    return problems


def text_problems(profiles: Dict[str, text_profile.TextProfile],
                  reference: Optional[text_profile.TextProfile],
                  limits: TextLimits) -> tuple:
    """(problems, report) of the text checks on per-split profiles."""
    problems: List[str] = []
    report: Dict[str, Any] = {}
    for split, profile in profiles.items():
        report[split] = {"reviews": profile.reviews, "empty": profile.empty,
                         "median_words": profile.median_words}
        if profile.empty_fraction > limits.max_empty_fraction:
            problems.append(f"{split}: {profile.empty} of {profile.reviews} reviews are empty "
                            f"(more than {limits.max_empty_fraction:.1%})")
    # (split, report key, what it is compared with, baseline profile)
    comparisons = []
    if reference is not None and "train" in profiles:
        comparisons.append(("train", "drift_from_reference", "the reference profile", reference))
    if "train" in profiles:
        comparisons += [(split, "drift_from_train", "the train split", profiles["train"])
                        for split in profiles if split != "train"]
    for split, key, against, base in comparisons:
        current = profiles[split]
        measured = text_profile.drift(base, current)
        report[split][key] = measured.as_dict()
        problems += drift_problems(split, against, base, current, measured, limits)
    return problems, report


def check(anomalies_uri: str, statistics_uri: str, splits: List[str], label: str,
          profiles: Optional[Dict[str, text_profile.TextProfile]] = None,
          reference: Optional[text_profile.TextProfile] = None,
          limits: Optional[TextLimits] = None,
          more_problems: Sequence[str] = ()) -> Dict[str, Any]:
    """Raises DataValidationError naming every problem (`more_problems`
    included: the span drift check's); returns the text report."""
    problems = [*more_problems,
                *(line for split in splits for line in split_anomalies(anomalies_uri, split))]
    if "train" in splits:
        low, high = label_range(statistics_uri, "train", label)
        if low is None:
            problems.append(f"train: feature '{label}' is missing")
        elif low == high:
            problems.append(f"train: feature '{label}' has one class only ({int(low)})")
    report: Dict[str, Any] = {}
    if profiles is not None and limits is not None:
        text_issues, report = text_problems(profiles, reference, limits)
        problems += text_issues
    if problems:
        raise DataValidationError("data validation failed: " + "; ".join(problems))
    return report


class Executor(base_executor.BaseExecutor):
    def Do(self, input_dict: Dict[str, List[types.Artifact]],
           output_dict: Dict[str, List[types.Artifact]], exec_properties: Dict[str, Any]) -> None:
        anomalies = artifact_utils.get_single_instance(input_dict["anomalies"])
        statistics = artifact_utils.get_single_instance(input_dict["statistics"])
        examples = artifact_utils.get_single_instance(input_dict["examples"])
        splits = artifact_utils.decode_split_names(anomalies.split_names)
        schema = artifact_utils.get_single_instance(input_dict["schema"])
        result = artifact_utils.get_single_instance(output_dict["checked_schema"])
        profiles = {split: text_profile.TextProfile.from_texts(
            split_texts(examples.uri, split, exec_properties["text_feature"])) for split in splits}
        reference_json = exec_properties.get("reference_profile") or ""
        reference = text_profile.TextProfile.from_json(reference_json) if reference_json else None
        limits = TextLimits(**json.loads(exec_properties["limits"]))
        report: Dict[str, Any] = {"passed": False, "splits": {
            split: {"reviews": p.reviews, "empty": p.empty, "median_words": p.median_words,
                    "lengths": p.lengths} for split, p in profiles.items()}}
        ingestion = json.loads(examples.get_string_custom_property("ingestion_report") or "{}")
        # What ingestion skipped for its size never reached these profiles: say so here too.
        report["oversized_skipped"] = (ingestion.get("oversized") or {}).get("by_split", {})
        current_span, previous_span = span_drift.read_summaries(examples.uri)
        try:
            span_problems: List[str] = []
            if current_span is not None and previous_span is not None:
                span_problems, report["span_drift"] = span_drift.compare(
                    previous_span, current_span, limits)
            report["checks"] = check(anomalies.uri, statistics.uri, splits, exec_properties["label"],
                                     profiles, reference, limits, span_problems)
            if "span_drift" in report:
                report["checks"]["span_drift"] = report["span_drift"]
            report["passed"] = True
        except DataValidationError as error:
            report["error"] = str(error)
            raise
        finally:  # pass or fail, the log keeps the whole report
            logging.info("DataGate text report: %s", json.dumps(report, ensure_ascii=False))
        schema_file = io_utils.get_only_uri_in_dir(schema.uri)
        io_utils.copy_file(schema_file, os.path.join(result.uri, os.path.basename(schema_file)))
        result.set_string_custom_property("text_checks", json.dumps(
            {**report["checks"], "oversized_skipped": report["oversized_skipped"]}))
        result.set_int_custom_property("passed", 1)


class DataGateSpec(types.ComponentSpec):
    PARAMETERS = {
        "label": ExecutionParameter(type=str),
        "text_feature": ExecutionParameter(type=str),
        #: JSON of a TextProfile; "" skips the comparison with a reference.
        "reference_profile": ExecutionParameter(type=str),
        #: JSON of TextLimits.
        "limits": ExecutionParameter(type=str),
    }
    INPUTS = {
        "examples": ChannelParameter(type=standard_artifacts.Examples),
        "anomalies": ChannelParameter(type=standard_artifacts.ExampleAnomalies),
        "statistics": ChannelParameter(type=standard_artifacts.ExampleStatistics),
        "schema": ChannelParameter(type=standard_artifacts.Schema),
    }
    #: The input schema, output only when the data passed.
    OUTPUTS = {"checked_schema": ChannelParameter(type=standard_artifacts.Schema)}


class DataGate(base_component.BaseComponent):
    """Fails when the validated data must not be trained on."""

    SPEC_CLASS = DataGateSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(Executor)

    def __init__(self, examples: types.BaseChannel, anomalies: types.BaseChannel,
                 statistics: types.BaseChannel, schema: types.BaseChannel, label: str,
                 text_feature: str, limits: TextLimits, reference_profile: str = ""):
        super().__init__(spec=DataGateSpec(
            examples=examples, anomalies=anomalies, statistics=statistics, schema=schema,
            label=label,
            text_feature=text_feature, reference_profile=reference_profile,
            limits=json.dumps(dataclasses.asdict(limits), sort_keys=True),
            checked_schema=types.Channel(type=standard_artifacts.Schema)))
