"""DataGate: stops the run when ExampleValidator found anomalies.

ExampleValidator (TFX 1.16) records anomalies but never fails, so a run
would go on to train and push a model on data that broke the curated
schema. This gate sits between validation and Transform: it fails with a
message naming each anomaly (split, feature, what was wrong), and also
checks what a schema cannot say: that the train split holds both classes.
"""

from __future__ import annotations

import os
from typing import Any, Dict, List

from tensorflow_metadata.proto.v0 import anomalies_pb2, statistics_pb2
from tfx import types
from tfx.dsl.components.base import base_component, base_executor, executor_spec
from tfx.types import artifact_utils, standard_artifacts
from tfx.types.component_spec import ChannelParameter, ExecutionParameter
from tfx.utils import io_utils

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


def check(anomalies_uri: str, statistics_uri: str, splits: List[str], label: str) -> None:
    problems = [line for split in splits for line in split_anomalies(anomalies_uri, split)]
    if "train" in splits:
        low, high = label_range(statistics_uri, "train", label)
        if low is None:
            problems.append(f"train: feature '{label}' is missing")
        elif low == high:
            problems.append(f"train: feature '{label}' has one class only ({int(low)})")
    if problems:
        raise DataValidationError("data validation failed: " + "; ".join(problems))


class Executor(base_executor.BaseExecutor):
    def Do(self, input_dict: Dict[str, List[types.Artifact]],
           output_dict: Dict[str, List[types.Artifact]], exec_properties: Dict[str, Any]) -> None:
        anomalies = artifact_utils.get_single_instance(input_dict["anomalies"])
        statistics = artifact_utils.get_single_instance(input_dict["statistics"])
        splits = artifact_utils.decode_split_names(anomalies.split_names)
        check(anomalies.uri, statistics.uri, splits, exec_properties["label"])
        result = artifact_utils.get_single_instance(output_dict["result"])
        result.set_int_custom_property("passed", 1)


class DataGateSpec(types.ComponentSpec):
    PARAMETERS = {"label": ExecutionParameter(type=str)}
    INPUTS = {
        "anomalies": ChannelParameter(type=standard_artifacts.ExampleAnomalies),
        "statistics": ChannelParameter(type=standard_artifacts.ExampleStatistics),
    }
    OUTPUTS = {"result": ChannelParameter(type=standard_artifacts.InfraBlessing)}


class DataGate(base_component.BaseComponent):
    """Fails when the validated data must not be trained on."""

    SPEC_CLASS = DataGateSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(Executor)

    def __init__(self, anomalies: types.BaseChannel, statistics: types.BaseChannel, label: str):
        super().__init__(spec=DataGateSpec(
            anomalies=anomalies, statistics=statistics, label=label,
            result=types.Channel(type=standard_artifacts.InfraBlessing)))
