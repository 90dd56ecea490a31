"""TFX's Trainer with one more input: the teacher's soft-labelled reviews.

TFX 1.16's `TrainerSpec` has no slot for a second set of examples, so this
component extends the spec by one optional channel, `soft_labels`
(TeacherLabels' output), and its executor, TFX's own `GenericExecutor`,
hands the channel's files to `run_fn` in `custom_config` under
`train.SOFT_LABEL_FILES`. Everything else is TFX's Trainer unchanged: the
same `run_fn` contract, outputs, caching and orchestration on every runner.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional

from tfx import types
from tfx.components.trainer import executor as trainer_executor
from tfx.components.trainer.component import Trainer
from tfx.dsl.components.base import base_component, executor_spec
from tfx.proto import trainer_pb2
from tfx.types import artifact_utils, standard_artifacts, standard_component_specs
from tfx.types.component_spec import ChannelParameter
from tfx.utils import io_utils, json_utils

from imdb_sentiment.trainer.train import SOFT_LABEL_FILES
from . import imdb_data

SOFT_LABELS_KEY = "soft_labels"


class DistillingTrainerSpec(standard_component_specs.TrainerSpec):
    INPUTS = {**standard_component_specs.TrainerSpec.INPUTS,
              SOFT_LABELS_KEY: ChannelParameter(type=standard_artifacts.Examples, optional=True)}


class DistillingExecutor(trainer_executor.GenericExecutor):
    """TFX's GenericExecutor; `custom_config` also names the soft-labelled files."""

    def _GetFnArgs(self, input_dict: Dict[str, List[types.Artifact]],
                   output_dict: Dict[str, List[types.Artifact]], exec_properties: Dict[str, Any]):
        fn_args = super()._GetFnArgs(input_dict, output_dict, exec_properties)
        soft_labels = input_dict.get(SOFT_LABELS_KEY) or []
        if soft_labels:
            uri = artifact_utils.get_split_uri(soft_labels, imdb_data.UNSUP_SPLIT)
            fn_args.custom_config = {**(fn_args.custom_config or {}),
                                     SOFT_LABEL_FILES: io_utils.all_files_pattern(uri)}
        return fn_args


class DistillingTrainer(Trainer):
    """A Trainer on Transform's output that may first learn from `soft_labels`."""

    SPEC_CLASS = DistillingTrainerSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(DistillingExecutor)

    def __init__(self, examples: types.BaseChannel, transform_graph: types.BaseChannel,
                 schema: types.BaseChannel, run_fn: str, train_args: trainer_pb2.TrainArgs,
                 eval_args: trainer_pb2.EvalArgs, custom_config: Dict[str, Any],
                 soft_labels: Optional[types.BaseChannel] = None):
        spec = DistillingTrainerSpec(
            examples=examples, transform_graph=transform_graph, schema=schema,
            train_args=train_args, eval_args=eval_args, run_fn=run_fn,
            custom_config=json_utils.dumps(custom_config), soft_labels=soft_labels,
            model=types.Channel(type=standard_artifacts.Model),
            model_run=types.Channel(type=standard_artifacts.ModelRun))
        base_component.BaseComponent.__init__(self, spec=spec)
