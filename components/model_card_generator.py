"""ModelCardGenerator: the card and lineage of a candidate, as a step of its own.

It reads what the run left (the ingestion report, the Trainer's record inside
the model, the Evaluator's results and ServedModelGate's verdict) and writes
the three card files (`components/model_card.py`) into one artifact, as
Model Card Toolkit's TFX component of the same name does. The Pusher stages
them into the pushed version's `assets.extra/`.
"""

from __future__ import annotations

import json
import os
from typing import Any, Dict, List

from tfx import types
from tfx.dsl.components.base import base_component, base_executor, executor_spec
from tfx.types import artifact_utils, standard_artifacts
from tfx.types.experimental import simple_artifacts
from tfx.types.component_spec import ChannelParameter, ExecutionParameter
from tfx.utils import path_utils

from . import model_card
from .evaluation_results import evaluation_metrics
from .imdb_example_gen import REPORT_FILE
from .served_model_gate import read_verdict


#: The card's artifact type: TFX's generic `File` (a directory of files). A custom
#: `ModelCard` type, as Model Card Toolkit's component outputs, cannot run on Kubeflow
#: here: TFX 1.16's KFP v2 entrypoint imports a custom type by its schema title
#: (`tfx/orchestration/kubeflow/v2/container/kubeflow_v2_entrypoint_utils.py`), which
#: must be `module.Class` with one dot (`compiler_utils._SCHEMA_TITLE_RE`), and this
#: package's classes live two modules deep.
ModelCard = simple_artifacts.File


class Executor(base_executor.BaseExecutor):

    def Do(self, input_dict: Dict[str, List[types.Artifact]],
           output_dict: Dict[str, List[types.Artifact]], exec_properties: Dict[str, Any]) -> None:
        model = artifact_utils.get_single_instance(input_dict["model"])
        examples = artifact_utils.get_single_instance(input_dict["examples"])
        evaluation = artifact_utils.get_single_instance(input_dict["evaluation"])
        blessing = artifact_utils.get_single_instance(input_dict["blessing"])
        card = artifact_utils.get_single_instance(output_dict["model_card"])
        serving_path = path_utils.serving_model_path(model.uri)
        lineage = model_card.build_lineage(
            ingestion=model_card.read_json(os.path.join(examples.uri, REPORT_FILE)),
            training=model_card.read_json(os.path.join(serving_path, model_card.ASSETS_EXTRA,
                                                       model_card.TRAINING_FILE)),
            evaluation=evaluation_metrics(evaluation.uri),
            config=json.loads(exec_properties.get("pipeline_config") or "{}"),
            run={"pipeline_run_id": (exec_properties.get("run_id")
                                     or (self._context.pipeline_run_id if self._context else None)),
                 # TFX's id of this execution in MLMD (BaseExecutor.Context's unique_id).
                 "card_execution_id": getattr(self._context, "_unique_id", None),
                 "mlmd_artifact_ids": {name: artifacts[0].id for name, artifacts in input_dict.items()
                                       if artifacts}},
            gate=read_verdict(blessing))
        model_card.write_card_files(card.uri, lineage,
                                    exec_properties.get("model_name") or "imdb_sentiment")


class ModelCardGeneratorSpec(types.ComponentSpec):
    PARAMETERS = {
        # The resolved PipelineConfig as JSON, recorded in the card.
        "pipeline_config": ExecutionParameter(type=str),
        "model_name": ExecutionParameter(type=str),
        # The orchestrator's run id for the lineage; on Kubeflow the placeholder
        # "{{$.pipeline_job_uuid}}", which KFP's driver resolves (driver/resolve.go).
        "run_id": ExecutionParameter(type=str, optional=True),
    }
    INPUTS = {
        "model": ChannelParameter(type=standard_artifacts.Model),
        "examples": ChannelParameter(type=standard_artifacts.Examples),
        "evaluation": ChannelParameter(type=standard_artifacts.ModelEvaluation),
        "blessing": ChannelParameter(type=standard_artifacts.ModelBlessing),
    }
    OUTPUTS = {"model_card": ChannelParameter(type=ModelCard)}


class ModelCardGenerator(base_component.BaseComponent):
    """Writes the card of the candidate that ServedModelGate judged."""

    SPEC_CLASS = ModelCardGeneratorSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(Executor)

    def __init__(self, model: types.BaseChannel, examples: types.BaseChannel,
                 evaluation: types.BaseChannel, blessing: types.BaseChannel,
                 pipeline_config: str = "{}", model_name: str = "imdb_sentiment",
                 run_id: str = ""):
        super().__init__(spec=ModelCardGeneratorSpec(
            model=model, examples=examples, evaluation=evaluation, blessing=blessing,
            pipeline_config=pipeline_config, model_name=model_name, run_id=run_id or None,
            model_card=types.Channel(type=ModelCard)))
