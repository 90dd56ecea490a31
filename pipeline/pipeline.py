"""The pipeline DAG, shared by the local and the Kubeflow runner.

`create_pipeline` only wires components from a `PipelineConfig`; where
metadata lives and how Beam runs are the runners' business.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional, Sequence

import tensorflow_model_analysis as tfma
from ml_metadata.proto import metadata_store_pb2
from tfx import v1 as tfx
from tfx.dsl.components.base import executor_spec

from imdb_sentiment.components.atomic_pusher import AtomicPusherExecutor
from imdb_sentiment.components.data_gate import DataGate, TextLimits
from imdb_sentiment.components.imdb_example_gen import ImdbExampleGen
from imdb_sentiment.trainer import features
from .config import PipelineConfig, source_fingerprint

PREPROCESSING_FN = "imdb_sentiment.trainer.preprocessing.preprocessing_fn"
RUN_FN = "imdb_sentiment.trainer.train.run_fn"
TRAINER_PACKAGE_DIR = Path(features.__file__).resolve().parent
#: The trainer-package files preprocessing_fn runs (its cache key).
TRANSFORM_SOURCES = ("__init__.py", "features.py", "preprocessing.py")
SCHEMA_FILE = "schema.pbtxt"

#: Component ids, in execution order (also the order of the run summary).
COMPONENT_IDS = ("ImdbExampleGen", "SchemaGen", "latest_blessed_model_resolver", "StatisticsGen",
                 "ExampleValidator", "DataGate", "Transform", "Trainer", "Evaluator", "Pusher")


def eval_config(config: PipelineConfig) -> tfma.EvalConfig:
    """Metrics overall and by star rating; accuracy floor and no-regression gate."""
    evaluation = config.evaluation
    accuracy_threshold = tfma.MetricThreshold(
        value_threshold=tfma.GenericValueThreshold(
            lower_bound={"value": evaluation.accuracy_lower_bound}),
        change_threshold=tfma.GenericChangeThreshold(
            direction=tfma.MetricDirection.HIGHER_IS_BETTER,
            absolute={"value": -evaluation.max_accuracy_drop}))
    return tfma.EvalConfig(
        model_specs=[tfma.ModelSpec(signature_name="serving_default", label_key=features.LABEL,
                                    prediction_key="probability")],
        slicing_specs=[tfma.SlicingSpec(),
                       tfma.SlicingSpec(feature_keys=[evaluation.slice_feature])],
        metrics_specs=[tfma.MetricsSpec(metrics=[
            tfma.MetricConfig(class_name="ExampleCount"),
            # Gate on the overall slice only: per-rating slices are small and
            # one-class, and a plain `threshold` would apply to every slice.
            tfma.MetricConfig(class_name="BinaryAccuracy", per_slice_thresholds=[
                tfma.PerSliceMetricThreshold(slicing_specs=[tfma.SlicingSpec()],
                                             threshold=accuracy_threshold)]),
            tfma.MetricConfig(class_name="AUC"),
            tfma.MetricConfig(class_name="Precision"),
            tfma.MetricConfig(class_name="Recall"),
        ])])


def create_pipeline(
    config: PipelineConfig,
    *,
    data_fingerprint: str = "",
    metadata_connection_config: Optional[metadata_store_pb2.ConnectionConfig] = None,
    beam_pipeline_args: Sequence[str] = (),
) -> tfx.dsl.Pipeline:
    """The IMDB sentiment pipeline: ingest → validate → transform → train → evaluate → push."""
    config_file = Path(__file__).with_name("config.py")
    transform_config = config.trainer.to_transform_custom_config(source_fingerprint(
        *(TRAINER_PACKAGE_DIR / name for name in TRANSFORM_SOURCES), config_file))
    trainer_config = config.trainer.to_custom_config(
        source_fingerprint(TRAINER_PACKAGE_DIR, config_file))

    example_gen = ImdbExampleGen(
        data=config.data, cache_dir=config.download_cache_dir,
        eval_percent=config.ingestion.eval_percent,
        sample_percent=config.ingestion.sample_percent,
        split_salt=config.ingestion.split_salt,
        data_fingerprint=data_fingerprint)
    examples = example_gen.outputs["examples"]

    statistics_gen = tfx.components.StatisticsGen(examples=examples)
    schema_gen = tfx.components.ImportSchemaGen(
        schema_file=os.path.join(config.schema_dir, SCHEMA_FILE)).with_id("SchemaGen")
    schema = schema_gen.outputs["schema"]
    example_validator = tfx.components.ExampleValidator(
        statistics=statistics_gen.outputs["statistics"], schema=schema)

    # ExampleValidator only reports; the gate fails the run on any anomaly, and
    # Transform (hence Trainer and Pusher) waits for it.
    validation = config.validation
    reference_profile = (Path(validation.reference_profile).read_text()
                         if validation.reference_profile else "")
    data_gate = DataGate(examples=examples, anomalies=example_validator.outputs["anomalies"],
                         statistics=statistics_gen.outputs["statistics"], label=features.LABEL,
                         text_feature=features.TEXT, reference_profile=reference_profile,
                         limits=TextLimits(max_empty_fraction=validation.max_empty_fraction,
                                           max_length_drift=validation.max_length_drift,
                                           max_vocabulary_drift=validation.max_vocabulary_drift))

    transform = tfx.components.Transform(
        examples=examples, schema=schema, preprocessing_fn=PREPROCESSING_FN,
        splits_config=tfx.proto.SplitsConfig(analyze=["train"], transform=["train", "eval"]),
        custom_config=transform_config)
    transform.add_upstream_node(data_gate)

    trainer = tfx.components.Trainer(
        run_fn=RUN_FN,
        examples=transform.outputs["transformed_examples"],
        transform_graph=transform.outputs["transform_graph"],
        schema=schema,
        train_args=tfx.proto.TrainArgs(splits=["train"]),
        eval_args=tfx.proto.EvalArgs(splits=["eval"]),
        custom_config=trainer_config)

    model_resolver = tfx.dsl.Resolver(
        strategy_class=tfx.dsl.experimental.LatestBlessedModelStrategy,
        model=tfx.dsl.Channel(type=tfx.types.standard_artifacts.Model),
        model_blessing=tfx.dsl.Channel(type=tfx.types.standard_artifacts.ModelBlessing),
    ).with_id("latest_blessed_model_resolver")

    evaluator = tfx.components.Evaluator(
        examples=examples, model=trainer.outputs["model"],
        baseline_model=model_resolver.outputs["model"],
        eval_config=eval_config(config), example_splits=["eval"])

    pusher = tfx.components.Pusher(
        model=trainer.outputs["model"], model_blessing=evaluator.outputs["blessing"],
        push_destination=tfx.proto.PushDestination(
            filesystem=tfx.proto.PushDestination.Filesystem(
                base_directory=config.model_serving_dir)),
        custom_executor_spec=executor_spec.ExecutorClassSpec(AtomicPusherExecutor))

    return tfx.dsl.Pipeline(
        pipeline_name=config.pipeline_name,
        pipeline_root=config.pipeline_root,
        components=[example_gen, statistics_gen, schema_gen, example_validator, data_gate, transform,
                    trainer, model_resolver, evaluator, pusher],
        enable_cache=config.enable_cache,
        metadata_connection_config=metadata_connection_config,
        beam_pipeline_args=list(beam_pipeline_args or config.beam_pipeline_args),
    )
