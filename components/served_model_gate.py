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

The candidate's accuracy on the gated split is the Evaluator's (TFMA's
`binary_accuracy` at 0.5, read from its results); the served model is scored
here on the same split's raw tf.Examples through its `serving_default`
signature, the one TF Serving answers with, at the same threshold. The gate
blesses the candidate when the Evaluator blessed it and its accuracy is at
most `max_accuracy_drop` below the served model's. With no served model (the
first run), or one that cannot be loaded or scored, it logs why and relies
on the Evaluator's thresholds alone. The gate does nothing else: the model
card is ModelCardGenerator's (`components/model_card_generator.py`).
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
from tfx.utils import io_utils

from imdb_sentiment.trainer import features
from . import example_files, serving_layout
from .evaluation_results import evaluation_metrics

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


def evaluated_accuracy(evaluation_uri: str, split: str) -> float:
    """The candidate's overall `binary_accuracy` on `split`, as the Evaluator computed it."""
    overall = evaluation_metrics(evaluation_uri)["metrics"].get(split, {}).get("overall", {})
    if overall.get("binary_accuracy") is None:
        raise ValueError(f"the Evaluator's results under {evaluation_uri} have no "
                         f"binary_accuracy for the {split} split")
    return overall["binary_accuracy"]


def read_verdict(blessing: types.Artifact) -> Dict[str, Any]:
    """The verdict this gate recorded on its blessing, as plain JSON."""
    accuracies = json.loads(blessing.get_string_custom_property("accuracies") or "{}")
    return {"blessed": bool(blessing.get_int_custom_property("blessed")),
            "reason": blessing.get_string_custom_property("reason"),
            "served_model": blessing.get_string_custom_property("served_model") or None,
            "candidate_accuracy": accuracies.get("candidate"),
            "served_accuracy": accuracies.get("served")}


class Executor(base_executor.BaseExecutor):

    def Do(self, input_dict: Dict[str, List[types.Artifact]],
           output_dict: Dict[str, List[types.Artifact]], exec_properties: Dict[str, Any]) -> None:
        upstream = artifact_utils.get_single_instance(input_dict["evaluator_blessing"])
        model = artifact_utils.get_single_instance(input_dict["model"])
        examples = artifact_utils.get_single_instance(input_dict["examples"])
        evaluation = artifact_utils.get_single_instance(input_dict["evaluation"])
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
                candidate_accuracy = evaluated_accuracy(evaluation.uri, split)
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


class ServedModelGateSpec(types.ComponentSpec):
    PARAMETERS = {
        "serving_dir": ExecutionParameter(type=str),
        "split": ExecutionParameter(type=str),
        "max_accuracy_drop": ExecutionParameter(type=float),
        # The newest served version when the pipeline was built (local runs):
        # part of the cache key, so a changed serving directory reruns the gate.
        "served_version": ExecutionParameter(type=str),
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
                 split: str = "eval", max_accuracy_drop: float = 0.01, served_version: str = ""):
        super().__init__(spec=ServedModelGateSpec(
            model=model, evaluator_blessing=evaluator_blessing, examples=examples,
            evaluation=evaluation, serving_dir=serving_dir, split=split,
            max_accuracy_drop=max_accuracy_drop, served_version=served_version,
            blessing=types.Channel(type=standard_artifacts.ModelBlessing)))
