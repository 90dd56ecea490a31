"""The pipeline DAG, shared by the local and the Kubeflow runner.

`create_pipeline` only wires components from a `PipelineConfig`; where
metadata lives and how Beam runs are the runners' business.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional, Sequence, Tuple

import tensorflow_model_analysis as tfma
from ml_metadata.proto import metadata_store_pb2
# TFX's modules rather than `tfx.v1`, whose extensions import the Vertex AI SDK:
# seconds at the start of every local run, for nothing a local run uses.
from tfx.components import Evaluator, ExampleValidator, StatisticsGen, Trainer, Transform
from tfx.components.schema_gen.import_schema_gen.component import ImportSchemaGen
from tfx.orchestration.pipeline import Pipeline
from tfx.proto.trainer_pb2 import EvalArgs, TrainArgs
from tfx.proto.transform_pb2 import SplitsConfig

from imdb_sentiment.components.atomic_pusher import AtomicPusher
from imdb_sentiment.components.distilling_trainer import DistillingTrainer
from imdb_sentiment.components.data_gate import DataGate, TextLimits
from imdb_sentiment.components.imdb_data import UNSUP_SPLIT
from imdb_sentiment.components.imdb_example_gen import ImdbExampleGen
from imdb_sentiment.components.model_card_generator import ModelCardGenerator
from imdb_sentiment.components.paired_accuracy import PairedAccuracyDifference
from imdb_sentiment.components.served_model_gate import ServedModelGate
from imdb_sentiment.components.span_resolver import SpanResolver
from imdb_sentiment.components.teacher_labels import TeacherLabels
from imdb_sentiment.trainer import features
from .config import PipelineConfig, code_fingerprint

PREPROCESSING_FN = "imdb_sentiment.trainer.preprocessing.preprocessing_fn"
RUN_FN = "imdb_sentiment.trainer.train.run_fn"
BASELINE_RUN_FN = "imdb_sentiment.trainer.linear_baseline.run_fn"
TRAINER_PACKAGE_DIR = Path(features.__file__).resolve().parent
SCHEMA_FILE = "schema.pbtxt"
#: TFMA's names for the two models it compares.
CANDIDATE, BASELINE = "candidate", "linear_baseline"
#: The splits the Evaluator scores: `eval` gates, `report` (and `test`, when
#: evaluated) are only reported.
GATED_SPLIT, REPORTED_SPLITS, TEST_SPLIT = "eval", ("report",), "test"

#: Thresholds of the confusion matrices TFMA reports (0.5 is the served decision).
CONFUSION_THRESHOLDS = (0.25, 0.5, 0.75)

def _module_of(dotted_path: str) -> str:
    return dotted_path.rpartition(".")[0]


def component_ids(pipeline: Pipeline) -> Tuple[str, ...]:
    """The ids of a built pipeline's components, in the order `create_pipeline`
    lists them (an order they can run in; also the order of the run summary)."""
    return tuple(component.id for component in pipeline.components)


def _never_cached_on_kubeflow(component):
    """Marks a step whose result depends on something outside its inputs (what
    is in storage or being served now): a cached result would be stale."""
    component.never_cached_on_kubeflow = True
    return component


def uncached_component_ids(pipeline: Pipeline) -> Tuple[str, ...]:
    """The steps a compiled Kubeflow spec must never serve from its cache."""
    return tuple(component.id for component in pipeline.components
                 if getattr(component, "never_cached_on_kubeflow", False))


def evaluated_splits(config: PipelineConfig) -> Tuple[str, ...]:
    """`eval`, `report`, and `test` when `evaluation.test_split` is "on".

    "auto" counts as off here: each runner resolves it first, as only the
    runner knows whether it can see the data (`local/runner.py` `resolve_test_split`).
    """
    test = (TEST_SPLIT,) if config.evaluation.test_split == "on" else ()
    return (GATED_SPLIT, *REPORTED_SPLITS, *test)


def _split_slice(split: str, *more: str) -> tfma.SlicingSpec:
    return tfma.SlicingSpec(feature_values={features.DATA_SPLIT: split}, feature_keys=list(more))


def eval_config(config: PipelineConfig) -> tfma.EvalConfig:
    """The BiLSTM against the linear baseline, per split, by star rating and by length.

    One pass scores both models on every evaluated split, sliced by
    `data_split` (the overall slice would mix splits, so there is none). The
    thresholds apply to the `eval` split's slice only: an accuracy floor and
    a margin over the linear baseline. (TFMA's jackknife intervals are left
    off: over AUC's confusion matrices they cost minutes in pure Python; the
    run summary gives Wilson intervals for accuracies instead.)

    Both models are `tf_generic`: TFMA calls their `serving_default` signature,
    as TF Serving does. Left unset, TFMA 0.47 (`utils/model_util.py`,
    `get_model_type`) loads each model once more only to learn that Keras saved
    it, then revives the Keras objects, which the signatures do not need.
    """
    evaluation = config.evaluation
    accuracy_threshold = tfma.MetricThreshold(
        value_threshold=tfma.GenericValueThreshold(
            lower_bound={"value": evaluation.accuracy_lower_bound}),
        change_threshold=tfma.GenericChangeThreshold(
            direction=tfma.MetricDirection.HIGHER_IS_BETTER,
            absolute={"value": evaluation.min_margin_over_baseline}))
    splits = evaluated_splits(config)
    return tfma.EvalConfig(
        model_specs=[
            tfma.ModelSpec(name=CANDIDATE, signature_name="serving_default",
                           label_key=features.LABEL, prediction_key="probability",
                           model_type=tfma.TF_GENERIC),
            tfma.ModelSpec(name=BASELINE, signature_name="serving_default",
                           label_key=features.LABEL, prediction_key="probability",
                           model_type=tfma.TF_GENERIC, is_baseline=True)],
        slicing_specs=[spec for split in splits for spec in (
            _split_slice(split), _split_slice(split, evaluation.slice_feature),
            _split_slice(split, features.LENGTH_BUCKET))],
        metrics_specs=[tfma.MetricsSpec(metrics=[
            tfma.MetricConfig(class_name="ExampleCount"),
            # Gate on the eval split's slice only: per-rating slices are small
            # and one-class, and the report split must decide nothing.
            tfma.MetricConfig(class_name="BinaryAccuracy", per_slice_thresholds=[
                tfma.PerSliceMetricThreshold(slicing_specs=[_split_slice(GATED_SPLIT)],
                                             threshold=accuracy_threshold)]),
            tfma.MetricConfig(class_name="AUC"),
            tfma.MetricConfig(class_name="Precision"),
            tfma.MetricConfig(class_name="Recall"),
            # Calibration: mean prediction / mean label, and a 10-bin reliability plot.
            tfma.MetricConfig(class_name="MeanLabel"),
            tfma.MetricConfig(class_name="MeanPrediction"),
            tfma.MetricConfig(class_name="Calibration"),
            tfma.MetricConfig(class_name="CalibrationPlot", config='"num_buckets": 10'),
            # The confusion matrix at 0.5, and precision/recall around it.
            tfma.MetricConfig(class_name="ConfusionMatrixAtThresholds",
                              config='"thresholds": %s' % list(CONFUSION_THRESHOLDS)),
            # The precision-recall curve the run report draws.
            tfma.MetricConfig(class_name="ConfusionMatrixPlot", config='"num_thresholds": 100'),
            # BiLSTM − baseline accuracy with its paired interval, review by review.
            tfma.MetricConfig(class_name=PairedAccuracyDifference.__name__,
                              module=PairedAccuracyDifference.__module__),
        ], model_names=[CANDIDATE, BASELINE])])


def create_pipeline(
    config: PipelineConfig,
    *,
    data_fingerprint: str = "",
    served_version: str = "",
    run_id: str = "",
    metadata_connection_config: Optional[metadata_store_pb2.ConnectionConfig] = None,
    beam_pipeline_args: Sequence[str] = (),
) -> Pipeline:
    """The IMDB sentiment pipeline: ingest → validate → transform → train → evaluate → push."""
    # Each cache key covers the code its executor can run: the import closure
    # of the module its entry point lives in (and of the executor's own module).
    transform_config = config.trainer.to_transform_custom_config(
        code_fingerprint(_module_of(PREPROCESSING_FN)))
    trainer_config = config.trainer.to_custom_config(
        code_fingerprint(_module_of(RUN_FN), DistillingTrainer.__module__))
    baseline_config = config.baseline.to_custom_config(
        code_fingerprint(_module_of(BASELINE_RUN_FN), DistillingTrainer.__module__))

    distilling = config.trainer.distill_epochs > 0
    # Which spans to read is decided where the data is (components/spans.py);
    # ImdbExampleGen receives the decision as a parameter value.
    span_resolver = _never_cached_on_kubeflow(SpanResolver(
        data=config.data, window=config.ingestion.span_window, observed=data_fingerprint))
    example_gen = ImdbExampleGen(
        data=config.data, cache_dir=config.download_cache_dir,
        rule=config.ingestion.split_rule(),
        sample_percent=config.ingestion.sample_percent,
        require_test=TEST_SPLIT in evaluated_splits(config),
        selection=span_resolver.outputs["selection"].future()[0].value, unlabelled=distilling,
        max_review_bytes=config.ingestion.max_review_bytes,
        max_skip_fraction=config.ingestion.max_skip_fraction)
    examples = example_gen.outputs["examples"]

    # The unlabelled reviews are the teacher's alone: no statistic, check or
    # evaluation reads them (so no schema requires them to carry a label).
    statistics_gen = StatisticsGen(examples=examples, exclude_splits=[UNSUP_SPLIT])
    schema_gen = ImportSchemaGen(
        schema_file=os.path.join(config.schema_dir, SCHEMA_FILE)).with_id("SchemaGen")
    schema = schema_gen.outputs["schema"]
    example_validator = ExampleValidator(
        statistics=statistics_gen.outputs["statistics"], schema=schema)

    # ExampleValidator only reports; the gate fails the run on any anomaly. What
    # trains reads the schema the gate passed, so nothing runs on data it refused.
    validation = config.validation
    reference_profile = (Path(validation.reference_profile).read_text()
                         if validation.reference_profile else "")
    data_gate = DataGate(examples=examples, anomalies=example_validator.outputs["anomalies"],
                         statistics=statistics_gen.outputs["statistics"], schema=schema,
                         label=features.LABEL,
                         text_feature=features.TEXT, reference_profile=reference_profile,
                         limits=TextLimits.of(validation))
    checked_schema = data_gate.outputs["checked_schema"]

    transform = Transform(
        examples=examples, schema=checked_schema, preprocessing_fn=PREPROCESSING_FN,
        splits_config=SplitsConfig(analyze=["train"], transform=["train", "eval"]),
        # StatisticsGen has described the raw data; statistics of the
        # transformed n-gram features would cost minutes and serve no check.
        disable_statistics=True,
        custom_config=transform_config)

    teacher_labels = TeacherLabels(
        examples=examples, transform_graph=transform.outputs["transform_graph"],
        config=config.teacher, max_reviews=config.trainer.distill_max_reviews,
        code_fingerprint=code_fingerprint(TeacherLabels.__module__)) if distilling else None

    def trainer_of(run_fn: str, custom_config: dict, **more) -> Trainer:
        """A Trainer on the Transform output: fits on `train`, stops early on `eval`."""
        return DistillingTrainer(
            run_fn=run_fn,
            examples=transform.outputs["transformed_examples"],
            transform_graph=transform.outputs["transform_graph"],
            schema=checked_schema,
            train_args=TrainArgs(splits=["train"]),
            eval_args=EvalArgs(splits=["eval"]),
            custom_config=custom_config, **more)

    trainer = trainer_of(RUN_FN, trainer_config, soft_labels=(
        teacher_labels.outputs["soft_labels"] if teacher_labels else None)).with_id("Trainer")
    baseline_trainer = trainer_of(BASELINE_RUN_FN, baseline_config).with_id("BaselineTrainer")

    # TFMA's baseline slot holds the linear model; the last good model is the
    # one being served, which ServedModelGate compares with (no Resolver: see
    # components/served_model_gate.py).
    evaluator = Evaluator(
        examples=examples, model=trainer.outputs["model"],
        baseline_model=baseline_trainer.outputs["model"],
        eval_config=eval_config(config), example_splits=list(evaluated_splits(config)))

    served_model_gate = _never_cached_on_kubeflow(ServedModelGate(
        model=trainer.outputs["model"], evaluator_blessing=evaluator.outputs["blessing"],
        examples=examples, evaluation=evaluator.outputs["evaluation"],
        serving_dir=config.model_serving_dir, split=GATED_SPLIT,
        max_accuracy_drop=config.evaluation.max_accuracy_drop, served_version=served_version))
    blessing = served_model_gate.outputs["blessing"]

    model_card_generator = ModelCardGenerator(
        model=trainer.outputs["model"], examples=examples,
        evaluation=evaluator.outputs["evaluation"], blessing=blessing,
        pipeline_config=config.to_record_json(), model_name=config.model_name, run_id=run_id)

    pusher = _never_cached_on_kubeflow(AtomicPusher(
        model=trainer.outputs["model"], model_blessing=blessing,
        model_card=model_card_generator.outputs["model_card"],
        base_directory=config.model_serving_dir).with_id("Pusher"))

    return Pipeline(
        pipeline_name=config.pipeline_name,
        pipeline_root=config.pipeline_root,
        components=[span_resolver, example_gen, schema_gen, statistics_gen, example_validator,
                    data_gate, transform, *([teacher_labels] if teacher_labels else []),
                    trainer, baseline_trainer,
                    evaluator, served_model_gate, model_card_generator, pusher],
        enable_cache=config.enable_cache,
        metadata_connection_config=metadata_connection_config,
        beam_pipeline_args=list(beam_pipeline_args or config.beam_pipeline_args),
    )
