"""TeacherLabels: the unlabelled reviews, labelled by an n-gram teacher.

Knowledge distillation through the 50,000 unlabelled reviews of `train/unsup/`
(docs/evaluation-protocol.md, "Distillation"): an NB-LR teacher
(`trainer/teacher.py`) is fitted on the `train` split, and its P(positive)
for each review of the `unsup` split becomes that review's soft label. The
Trainer first fits the BiLSTM to those soft labels, then to the labels.

- Reads: `train` (to fit the teacher), `eval` (only to report the teacher's
  accuracy beside the baseline's; nothing is chosen on it) and `unsup`. The
  `unsup` split holds only reviews of `train` movies (`imdb_data.SplitRule`).
- Writes: Split-unsup of an Examples artifact, gzipped tf.Examples of
  `token_ids` (through the run's own Transform graph, so the ids are the
  Trainer's) and `teacher_probability`.
- Data without `train/unsup/` gives an empty artifact; the Trainer then skips
  distillation and the run says so.

Its output is cached by TFX like any component's: a later run on the same
data, Transform graph and code reuses it.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import json
import logging
import multiprocessing
import os
import time
from typing import Any, Dict, List

from tfx import types
from tfx.components.util import examples_utils
from tfx.dsl.components.base import base_component, base_executor, executor_spec
from tfx.proto import example_gen_pb2
from tfx.types import artifact_utils, standard_artifacts
from tfx.types.component_spec import ChannelParameter, ExecutionParameter

from imdb_sentiment.trainer import features
from imdb_sentiment.trainer.teacher import NbLrTeacher, TeacherConfig
from . import example_files, imdb_data

#: The custom property with what the teacher did (read by the run summary).
REPORT_PROPERTY = "teacher_report"
SHARDS = 4
_BATCH = 1024


def _texts_and_labels(examples_uri: str, split: str):
    texts, labels = [], []
    for example in example_files.split_examples(examples_uri, split):
        feature = example.features.feature
        texts.append(example_files.text_of(example, features.TEXT))
        labels.append(feature[features.LABEL].int64_list.value[0]
                      if feature[features.LABEL].int64_list.value else imdb_data.UNLABELLED)
    return texts, labels


def token_id_rows(transform_graph_uri: str, texts: List[str]):
    """The Transform graph's `token_ids` for raw texts (the ids the Trainer reads)."""
    import numpy as np
    import tensorflow as tf
    import tensorflow_transform as tft

    output = tft.TFTransformOutput(transform_graph_uri)
    layer = output.transform_features_layer()
    spec = output.raw_feature_spec()
    rows = []
    for start in range(0, len(texts), _BATCH):
        batch = texts[start:start + _BATCH]
        raw: Dict[str, Any] = {features.TEXT: tf.constant(batch)[:, tf.newaxis]}
        # The graph also reads the label (absent here); its output is not used.
        for name, feature_spec in spec.items():
            if name != features.TEXT and isinstance(feature_spec, tf.io.FixedLenFeature):
                raw[name] = tf.zeros([len(batch), *feature_spec.shape], feature_spec.dtype)
        rows.append(layer(raw)[features.TOKEN_IDS].numpy())
    return np.concatenate(rows) if rows else np.zeros([0, 0], np.int64)


def fit_teacher(train_texts: List[str], train_labels: List[int], config: TeacherConfig) -> NbLrTeacher:
    """The teacher fitted on `train` (top-level, so a second process can run it)."""
    import numpy as np

    from imdb_sentiment.trainer.preprocessing import word_lists

    return NbLrTeacher(config).fit(word_lists(train_texts), np.array(train_labels))


def probabilities_of(teacher: NbLrTeacher, texts: List[str]):
    """The teacher's P(positive) for raw texts (top-level, for a second process)."""
    from imdb_sentiment.trainer.preprocessing import word_lists

    return teacher.probabilities(word_lists(texts))


def label_unlabelled(examples: types.Artifact, transform_graph_uri: str, output_uri: str,
                     config: TeacherConfig, max_reviews: int = 0) -> Dict[str, Any]:
    """Fits the teacher, writes Split-unsup of soft-labelled token ids; returns the report."""
    import numpy as np
    import tensorflow as tf

    start = time.perf_counter()
    split_dir = os.path.join(output_uri, f"Split-{imdb_data.UNSUP_SPLIT}")
    tf.io.gfile.makedirs(split_dir)
    report: Dict[str, Any] = {"teacher": "NB-LR", "config": dataclasses.asdict(config),
                              "unlabelled_reviews": 0}
    if imdb_data.UNSUP_SPLIT not in artifact_utils.decode_split_names(examples.split_names):
        report["skipped"] = ("the data has no train/unsup/ reviews (or distillation is off): "
                             "the BiLSTM learns from the labels only")
        return report
    texts, labels = _texts_and_labels(examples.uri, "train")
    eval_texts, eval_labels = _texts_and_labels(examples.uri, "eval")
    unsup_texts, _ = _texts_and_labels(examples.uri, imdb_data.UNSUP_SPLIT)
    if max_reviews:
        unsup_texts = unsup_texts[:max_reviews]  # the split is in hash order: a stable sample
    # The teacher is pure Python and liblinear, one core each: it is fitted in a
    # second process while this one maps the reviews to token ids through the
    # Transform graph, then both processes label half of the reviews.
    spawn = multiprocessing.get_context("spawn")
    half = len(unsup_texts) // 2
    with concurrent.futures.ProcessPoolExecutor(max_workers=1, mp_context=spawn) as pool:
        fitting = pool.submit(fit_teacher, texts, labels, config)
        token_ids = token_id_rows(transform_graph_uri, unsup_texts)
        teacher = fitting.result()
        first_half = pool.submit(probabilities_of, teacher, unsup_texts[:half])
        second_half = probabilities_of(teacher, unsup_texts[half:])
        probabilities = np.concatenate([first_half.result(), second_half]).astype(np.float32)
    eval_probabilities, ngrams = probabilities_of(teacher, eval_texts), teacher.ngram_count
    eval_right = (eval_probabilities >= 0.5) == (np.array(eval_labels) == 1)
    example_files.write_split(output_uri, imdb_data.UNSUP_SPLIT, (
        tf.train.Example(features=tf.train.Features(feature={
            features.TOKEN_IDS: tf.train.Feature(int64_list=tf.train.Int64List(value=ids)),
            features.TEACHER_PROBABILITY: tf.train.Feature(
                float_list=tf.train.FloatList(value=[probability]))})).SerializeToString(
                    deterministic=True)
        for ids, probability in zip(token_ids, probabilities)), SHARDS)
    report.update(
        unlabelled_reviews=len(unsup_texts), train_reviews=len(texts), ngrams=ngrams,
        eval_accuracy=round(float(np.mean(eval_right)), 4), eval_reviews=len(eval_texts),
        mean_probability=round(float(np.mean(probabilities)), 4) if len(probabilities) else None,
        seconds=round(time.perf_counter() - start, 1))
    return report


class Executor(base_executor.BaseExecutor):
    def Do(self, input_dict: Dict[str, List[types.Artifact]],
           output_dict: Dict[str, List[types.Artifact]], exec_properties: Dict[str, Any]) -> None:
        examples = artifact_utils.get_single_instance(input_dict["examples"])
        transform_graph = artifact_utils.get_single_instance(input_dict["transform_graph"])
        output = artifact_utils.get_single_instance(output_dict["soft_labels"])
        teacher = json.loads(exec_properties["teacher_config"])
        report = label_unlabelled(examples, transform_graph.uri, output.uri,
                                  TeacherConfig(**teacher["config"]), teacher["max_reviews"])
        output.split_names = artifact_utils.encode_split_names([imdb_data.UNSUP_SPLIT])
        examples_utils.set_payload_format(output, example_gen_pb2.FORMAT_TF_EXAMPLE)
        examples_utils.set_file_format(output, "tfrecords_gzip")
        output.set_string_custom_property(REPORT_PROPERTY, json.dumps(report))
        logging.info("TeacherLabels: %s", json.dumps(report))


class TeacherLabelsSpec(types.ComponentSpec):
    PARAMETERS = {
        # {"config": TeacherConfig fields, "max_reviews": int}
        "teacher_config": ExecutionParameter(type=str),
        # Changes with the code the executor runs, so the cache is not stale.
        "code_fingerprint": ExecutionParameter(type=str),
    }
    INPUTS = {
        "examples": ChannelParameter(type=standard_artifacts.Examples),
        "transform_graph": ChannelParameter(type=standard_artifacts.TransformGraph),
    }
    OUTPUTS = {"soft_labels": ChannelParameter(type=standard_artifacts.Examples)}


class TeacherLabels(base_component.BaseComponent):
    """The `unsup` split's token ids with the n-gram teacher's P(positive) as soft labels."""

    SPEC_CLASS = TeacherLabelsSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(Executor)

    def __init__(self, examples: types.BaseChannel, transform_graph: types.BaseChannel,
                 config: TeacherConfig, max_reviews: int = 0, code_fingerprint: str = ""):
        spec = TeacherLabelsSpec(
            examples=examples, transform_graph=transform_graph,
            teacher_config=json.dumps({"config": dataclasses.asdict(config),
                                       "max_reviews": max_reviews}, sort_keys=True),
            code_fingerprint=code_fingerprint,
            soft_labels=types.Channel(type=standard_artifacts.Examples))
        super().__init__(spec=spec)
