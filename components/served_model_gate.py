"""ServedModelGate: a new model must not fall behind the model being served.

TFMA's change thresholds compare the candidate with one baseline model, and
in this pipeline that slot holds the in-pipeline linear baseline (the bar a
sequence model must clear). The "no regression" rule needs a second
comparison, against the last good model. TFX's usual source for it, a
`Resolver` with `LatestBlessedModelStrategy`, is not executed by open-source
Kubeflow Pipelines (its Argo compiler has no resolver executors), so this
gate takes the baseline from where it really lives: the newest version in the
serving directory, the model that TF Serving is serving now. It works the
same locally, on open-source KFP and on Vertex AI.

The gate scores the candidate and the served model on the same split's raw
tf.Examples through their `serving_default` signatures, and blesses the
candidate when the Evaluator blessed it and its accuracy is at most
`max_accuracy_drop` below the served model's. With no served model (the
first run), or one that cannot be loaded or scored, it logs why and relies
on the Evaluator's thresholds alone.
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import tensorflow as tf
from tfx import types
from tfx.components.util import model_utils
from tfx.dsl.components.base import base_component, base_executor, executor_spec
from tfx.types import artifact_utils, standard_artifacts
from tfx.types.component_spec import ChannelParameter, ExecutionParameter
from tfx.utils import io_utils, path_utils

from imdb_sentiment.trainer import features
from . import example_files, model_card, serving_layout
from .evaluation_results import evaluation_metrics
from .imdb_example_gen import REPORT_FILE
from .model_card import CARD_DIR

BATCH = 256


def read_split(examples: types.Artifact, split: str) -> Tuple[List[bytes], np.ndarray]:
    """Serialized tf.Examples of a split and their labels."""
    records = example_files.split_records(examples.uri, split)
    labels = np.array([tf.train.Example.FromString(r).features.feature[features.LABEL]
                       .int64_list.value[0] for r in records])
    return records, labels


def accuracy(model_dir: str, records: List[bytes], labels: np.ndarray) -> float:
    """Binary accuracy at 0.5 of a SavedModel's `serving_default` on the records."""
    serve = tf.saved_model.load(model_dir).signatures["serving_default"]
    probabilities = np.concatenate([
        serve(examples=tf.constant(records[i:i + BATCH]))["probability"].numpy()
        for i in range(0, len(records), BATCH)])
    return float(np.mean((probabilities >= 0.5) == (labels == 1)))


def decide(evaluator_blessed: bool, candidate: Optional[float], served: Optional[float],
           max_drop: float) -> Tuple[bool, str]:
    """(blessed, reason) from the Evaluator's verdict and the two accuracies."""
    if not evaluator_blessed:
        return False, "the Evaluator did not bless the model"
    if served is None:
        return True, "no served model to compare with (floor and baseline thresholds only)"
    change = candidate - served
    if change < -max_drop:
        return False, (f"accuracy {candidate:.4f} is {-change:.4f} below the served model's "
                       f"{served:.4f} (allowed drop {max_drop:.4f})")
    return True, (f"accuracy {candidate:.4f} against the served model's {served:.4f} "
                  f"(change {change:+.4f}, allowed drop {max_drop:.4f})")


class Executor(base_executor.BaseExecutor):

    def Do(self, input_dict: Dict[str, List[types.Artifact]],
           output_dict: Dict[str, List[types.Artifact]], exec_properties: Dict[str, Any]) -> None:
        upstream = artifact_utils.get_single_instance(input_dict["evaluator_blessing"])
        model = artifact_utils.get_single_instance(input_dict["model"])
        examples = artifact_utils.get_single_instance(input_dict["examples"])
        blessing = artifact_utils.get_single_instance(output_dict["blessing"])
        serving_dir, split = exec_properties["serving_dir"], exec_properties["split"]
        evaluator_blessed = model_utils.is_model_blessed(upstream)
        served_dir = serving_layout.newest_version(serving_dir)
        candidate_accuracy = served_accuracy = None
        if evaluator_blessed and served_dir is not None:
            records, labels = read_split(examples, split)
            try:
                served_accuracy = accuracy(served_dir, records, labels)
            except Exception as error:  # noqa: BLE001 - a broken served model must not block
                logging.warning("ServedModelGate: the served model %s could not be scored (%s: "
                                "%s); gating on the floor and baseline only", served_dir,
                                type(error).__name__, error)
                served_dir = None
            else:
                candidate_accuracy = accuracy(path_utils.serving_model_path(model.uri),
                                              records, labels)
        elif evaluator_blessed:
            logging.info("ServedModelGate: nothing served under %s yet", serving_dir)
        blessed, reason = decide(evaluator_blessed, candidate_accuracy, served_accuracy,
                                 exec_properties["max_accuracy_drop"])
        logging.info("ServedModelGate: %s: %s", "blessed" if blessed else "not blessed", reason)
        io_utils.write_string_file(os.path.join(blessing.uri, "BLESSED" if blessed else
                                                "NOT_BLESSED"), "")
        blessing.set_int_custom_property("blessed", int(blessed))
        blessing.set_string_custom_property("reason", reason)
        blessing.set_string_custom_property("current_model", model.uri)
        blessing.set_int_custom_property("current_model_id", model.id)
        blessing.set_string_custom_property("served_model", served_dir or "")
        blessing.set_string_custom_property("accuracies", json.dumps(
            {"split": split, "candidate": candidate_accuracy, "served": served_accuracy}))
        self._write_model_card(input_dict, blessing, exec_properties, {
            "blessed": blessed, "reason": reason, "served_model": served_dir,
            "candidate_accuracy": candidate_accuracy, "served_accuracy": served_accuracy})

    def _write_model_card(self, input_dict: Dict[str, List[types.Artifact]], blessing: types.Artifact,
                          exec_properties: Dict[str, Any], gate: Dict[str, Any]) -> None:
        """The card and lineage of this candidate, for the Pusher to put inside the version."""
        model = artifact_utils.get_single_instance(input_dict["model"])
        examples = artifact_utils.get_single_instance(input_dict["examples"])
        evaluations = input_dict.get("evaluation") or []
        serving_path = path_utils.serving_model_path(model.uri)
        lineage = model_card.build_lineage(
            ingestion=model_card.read_json(os.path.join(examples.uri, REPORT_FILE)),
            training=model_card.read_json(os.path.join(serving_path, model_card.ASSETS_EXTRA,
                                                       model_card.TRAINING_FILE)),
            evaluation=evaluation_metrics(evaluations[0].uri) if evaluations else {},
            config=json.loads(exec_properties.get("pipeline_config") or "{}"),
            run={"pipeline_run_id": (exec_properties.get("run_id")
                                     or (self._context.pipeline_run_id if self._context else None)),
                 # TFX's id of this execution in MLMD (BaseExecutor.Context's unique_id).
                 "gate_execution_id": getattr(self._context, "_unique_id", None),
                 "mlmd_artifact_ids": {name: artifacts[0].id for name, artifacts in input_dict.items()
                                       if artifacts}},
            gate=gate)
        model_card.write_card_files(os.path.join(blessing.uri, CARD_DIR), lineage,
                                    exec_properties.get("model_name") or "imdb_sentiment")


class ServedModelGateSpec(types.ComponentSpec):
    PARAMETERS = {
        "serving_dir": ExecutionParameter(type=str),
        "split": ExecutionParameter(type=str),
        "max_accuracy_drop": ExecutionParameter(type=float),
        # The newest served version when the pipeline was built (local runs):
        # part of the cache key, so a changed serving directory reruns the gate.
        "served_version": ExecutionParameter(type=str),
        # The resolved PipelineConfig as JSON, recorded in the model card.
        "pipeline_config": ExecutionParameter(type=str),
        "model_name": ExecutionParameter(type=str),
        # The orchestrator's run id for the lineage; on Kubeflow the placeholder
        # "{{$.pipeline_job_uuid}}", which KFP's driver resolves (driver/resolve.go).
        "run_id": ExecutionParameter(type=str, optional=True),
    }
    INPUTS = {
        "model": ChannelParameter(type=standard_artifacts.Model),
        "evaluator_blessing": ChannelParameter(type=standard_artifacts.ModelBlessing),
        "examples": ChannelParameter(type=standard_artifacts.Examples),
        "evaluation": ChannelParameter(type=standard_artifacts.ModelEvaluation),
    }
    OUTPUTS = {"blessing": ChannelParameter(type=standard_artifacts.ModelBlessing)}


class ServedModelGate(base_component.BaseComponent):
    """Blesses what the Evaluator blessed unless it falls behind the served model."""

    SPEC_CLASS = ServedModelGateSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(Executor)

    def __init__(self, model: types.BaseChannel, evaluator_blessing: types.BaseChannel,
                 examples: types.BaseChannel, evaluation: types.BaseChannel, serving_dir: str,
                 split: str = "eval", max_accuracy_drop: float = 0.01, served_version: str = "",
                 pipeline_config: str = "{}", model_name: str = "imdb_sentiment",
                 run_id: str = ""):
        super().__init__(spec=ServedModelGateSpec(
            model=model, evaluator_blessing=evaluator_blessing, examples=examples,
            evaluation=evaluation, serving_dir=serving_dir, split=split,
            max_accuracy_drop=max_accuracy_drop, served_version=served_version,
            pipeline_config=pipeline_config, model_name=model_name, run_id=run_id or None,
            blessing=types.Channel(type=standard_artifacts.ModelBlessing)))
