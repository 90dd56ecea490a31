"""ImdbExampleGen: the aclImdb archive in, gzipped tf.Example splits out.

A custom component rather than FileBasedExampleGen because the dataset's
layout carries the label and rating in folder and file names, its official
`test/` split must stay separate from the hash-made `eval` split, and TFX
does not allow input splits and hash-partitioned output splits together.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import tensorflow as tf
from tfx import types
from tfx.components.util import examples_utils
from tfx.dsl.components.base import base_component, base_executor, executor_spec
from tfx.proto import example_gen_pb2
from tfx.types import artifact_utils, standard_artifacts
from tfx.types.component_spec import ChannelParameter, ExecutionParameter

from imdb_sentiment.trainer import features
from . import example_files, imdb_data, span_drift, spans, text_profile

#: Name of the JSON report written next to the splits.
REPORT_FILE = "ingestion_report.json"
SHARDS = {"train": 4, "eval": 1, "report": 1, "test": 2, imdb_data.UNSUP_SPLIT: 4}


def length_boundaries(reviews: Sequence[imdb_data.Review], quantiles: int = 4) -> List[int]:
    """Upper word counts of the first `quantiles - 1` length classes: the
    quantiles of `reviews`' word counts (the train split's, so that every
    split is cut at the same lengths)."""
    counts = sorted(text_profile.word_count(r.text) for r in reviews)
    if not counts:
        return []
    return sorted({counts[min(len(counts) - 1, len(counts) * q // quantiles)] for q in range(1, quantiles)})


def length_bucket(words: int, boundaries: Sequence[int]) -> str:
    """"q1: 1-125 words", ..., "q4: 600+ words": the class and its range, readable in TFMA slices."""
    lower = 1
    for index, upper in enumerate(boundaries):
        if words <= upper:
            return f"q{index + 1}: {lower}-{upper} words"
        lower = upper + 1
    return f"q{len(boundaries) + 1}: {lower}+ words"


def review_to_example(review: imdb_data.Review, split: str,
                      boundaries: Sequence[int] = ()) -> tf.train.Example:
    """A review as the tf.Example every later component reads.

    `data_split` names the split the review was written to, so one TFMA pass
    over several splits can slice its metrics by split; `length_bucket` lets
    it slice them by length (`boundaries` from `length_boundaries`).
    """
    def _bytes(value: str) -> tf.train.Feature:
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value.encode("utf-8")]))

    def _int(value: int) -> tf.train.Feature:
        return tf.train.Feature(int64_list=tf.train.Int64List(value=[value]))

    feature = {
        features.TEXT: _bytes(review.text),
        features.RATING: _int(review.rating),
        features.REVIEW_ID: _bytes(review.review_id),
        features.DATA_SPLIT: _bytes(split),
        features.LENGTH_BUCKET: _bytes(length_bucket(text_profile.word_count(review.text), boundaries)),
    }
    if review.labelled:  # an unlabelled review has no label feature, rather than a false one
        feature[features.LABEL] = _int(review.label)
    return tf.train.Example(features=tf.train.Features(feature=feature))


def assign_splits(reviews: List[imdb_data.Review], rule: imdb_data.SplitRule,
                  sample_percent: int) -> Dict[str, List[imdb_data.Review]]:
    """The sampled reviews of each split, in a stable shuffled (hash) order."""
    splits: Dict[str, List[imdb_data.Review]] = {}
    for review in reviews:
        if imdb_data.in_sample(review, sample_percent, rule.salt):
            split = rule.split_of(review)
            if split != imdb_data.EXCLUDED:
                splits.setdefault(split, []).append(review)
    for records in splits.values():
        records.sort(key=lambda r: imdb_data.hash_bucket(r.review_id, f"order:{rule.salt}", 1 << 62))
    return splits


def write_split_files(output_uri: str, splits: Dict[str, List[imdb_data.Review]],
                      shards: Dict[str, int], boundaries: Sequence[int] = ()) -> Dict[str, Dict[str, int]]:
    """Writes `Split-<name>/data_tfrecord-*.gz`; returns review counts per split."""
    counts: Dict[str, Dict[str, int]] = {}
    for split, records in sorted(splits.items()):
        example_files.write_split(output_uri, split, (
            review_to_example(review, split, boundaries).SerializeToString(deterministic=True)
            for review in records), shards.get(split, 1))
        counts[split] = {"reviews": len(records),
                         "movies": len({r.movie_id for r in records if r.movie_id})}
        if split != imdb_data.UNSUP_SPLIT:
            counts[split]["positive"] = sum(r.label for r in records)
    return counts


def write_splits(output_uri: str, data: str, cache_dir: str, rule: imdb_data.SplitRule,
                 sample_percent: int, max_skip_fraction: float,
                 require_test: bool = False, unlabelled: bool = False,
                 max_review_bytes: int = 0,
                 selection: Optional[spans.SpanSelection] = None) -> Dict[str, Any]:
    """Reads the dataset and writes its splits; returns the ingestion report.

    The report is also written as JSON next to the splits. Records of a split
    are written in hash order, so the files are shuffled yet byte-identical
    on every run. With `unlabelled`, the reviews of `train/unsup/` whose movie
    is in `train` become the `unsup` split (`imdb_data.SplitRule`). With a
    span `selection`, the reviews of all its spans are read (`data` is then
    the pattern, for messages); splits go by movie across spans, so a movie
    stays in its split as spans arrive.
    """
    locations = [span.uri for span in selection.spans] if selection else [data]
    report = imdb_data.ReadReport()
    everything: List[imdb_data.Review] = []
    by_span: List[List[imdb_data.Review]] = []
    for location in locations:
        source = imdb_data.resolve_source(location, Path(cache_dir))
        by_span.append(imdb_data.read_reviews(source, report, unlabelled=unlabelled,
                                              max_review_bytes=max_review_bytes))
        everything += by_span[-1]
    reviews = [review for review in everything if review.labelled]
    report.reviews = len(reviews)
    report.has_test_split = any(r.source_split == "test" for r in reviews)
    logging.info("ImdbExampleGen: read %d reviews (%d with a movie id)", len(reviews),
                 report.with_movie)
    imdb_data.check_report(report, source, max_skip_fraction)
    if not any(r.source_split == "train" for r in reviews):
        raise imdb_data.DataError(f"{source}: no labelled reviews under train/ (found only "
                                  "test/); training needs train/pos and train/neg")
    splits = assign_splits(everything, rule, sample_percent)
    unlabelled_found = len(everything) - len(reviews)
    if unlabelled:
        logging.info("ImdbExampleGen: %d unlabelled reviews, %d of train movies kept", unlabelled_found,
                     len(splits.get(imdb_data.UNSUP_SPLIT, [])))
    if require_test and "test" not in splits:
        raise imdb_data.DataError(
            f"{source}: evaluation.test_split is on but there are no reviews under test/ "
            "(set it to auto or off)")
    wanted = ["train", "eval"] + (["report"] if rule.report_percent else [])
    if any(split not in splits for split in wanted):
        raise imdb_data.DataError(
            f"{source}: the sample is too small to make the {', '.join(wanted)} splits "
            f"(got {sorted(splits)}); raise sample_percent, eval_percent or report_percent")
    boundaries = length_boundaries(splits["train"])
    summary = {
        "source": os.path.basename(str(source).rstrip("/")),
        "sha256": (imdb_data.file_checksums(source, ("sha256",))["sha256"]
                   if source.is_file() and len(locations) == 1 else None),
        # The spans read (number, location, version); span 0 = data without spans.
        "spans": [dataclasses.asdict(span) for span in selection.spans] if selection else None,
        "data_fingerprint": selection.fingerprint if selection else None,
        "split_rule": dataclasses.asdict(rule),
        "grouped_by": "movie" if rule.group_by_movie and report.with_movie else "review",
        "splits": write_split_files(output_uri, splits, SHARDS, boundaries),
        "length_buckets": sorted({length_bucket(b, boundaries) for b in [*boundaries, 10**9]}),
        "skipped": report.skipped,
        "skipped_examples": report.skipped_examples,
        "has_test_split": report.has_test_split,
        # None: not asked for; otherwise the reviews found under train/unsup/
        # (those of eval/report movies are found but not written).
        "unlabelled_found": unlabelled_found if unlabelled else None,
        "oversized": oversized_summary(report, rule, max_review_bytes),
    }
    with tf.io.gfile.GFile(os.path.join(output_uri, REPORT_FILE), "w") as handle:
        handle.write(json.dumps(summary, indent=2))
    if selection and selection.has_spans:
        write_span_summaries(output_uri, selection, by_span, cache_dir, max_review_bytes)
    return summary


def write_span_summaries(output_uri: str, selection: spans.SpanSelection,
                         by_span: List[List[imdb_data.Review]], cache_dir: str,
                         max_review_bytes: int) -> None:
    """The newest span's and the previous span's labelled reviews, summarised
    for DataGate's drift check (`span_drift`); the previous span is read for
    this alone when it is outside the window."""
    current = span_drift.SpanSummary.of(selection.newest, by_span[-1])
    previous = None
    if selection.previous is not None:
        if selection.previous in selection.spans:
            reviews = by_span[selection.spans.index(selection.previous)]
        else:
            source = imdb_data.resolve_source(selection.previous.uri, Path(cache_dir))
            reviews = imdb_data.read_reviews(source, imdb_data.ReadReport(),
                                             max_review_bytes=max_review_bytes)
        previous = span_drift.SpanSummary.of(selection.previous.number, reviews)
    span_drift.write_summaries(output_uri, current, previous)


def oversized_summary(report: imdb_data.ReadReport, rule: imdb_data.SplitRule,
                      max_review_bytes: int) -> Dict[str, Any]:
    """Reviews skipped for their size: the limit, how many per split, which."""
    by_split: Dict[str, int] = {}
    for review_id, movie_id in report.oversized:
        split = imdb_data.split_of_skipped(review_id, movie_id, rule)
        by_split[split] = by_split.get(split, 0) + 1
    return {"limit_bytes": max_review_bytes or None, "skipped": len(report.oversized),
            "by_split": by_split, "examples": [r for r, _ in report.oversized[:5]]}


class Executor(base_executor.BaseExecutor):
    """Runs `write_splits` and marks the artifact like TFX's own ExampleGen."""

    def Do(self, input_dict: Dict[str, List[types.Artifact]],
           output_dict: Dict[str, List[types.Artifact]], exec_properties: Dict[str, Any]) -> None:
        examples = artifact_utils.get_single_instance(output_dict["examples"])
        selection = (spans.SpanSelection.from_json(exec_properties["selection"])
                     if exec_properties.get("selection") else None)
        summary = write_splits(
            output_uri=examples.uri,
            selection=selection,
            data=exec_properties["data"],
            cache_dir=exec_properties["cache_dir"],
            rule=imdb_data.SplitRule(
                eval_percent=exec_properties["eval_percent"],
                report_percent=exec_properties["report_percent"],
                salt=exec_properties["split_salt"],
                group_by_movie=bool(exec_properties["group_by_movie"])),
            sample_percent=exec_properties["sample_percent"],
            max_skip_fraction=exec_properties["max_skip_fraction"],
            require_test=bool(exec_properties.get("require_test") or 0),
            unlabelled=bool(exec_properties.get("unlabelled") or 0),
            max_review_bytes=int(exec_properties.get("max_review_bytes") or 0),
        )
        examples.split_names = artifact_utils.encode_split_names(sorted(summary["splits"]))
        # TFX's own properties: the newest span read (0 without spans), its version.
        examples.span = selection.newest if selection else 0
        examples.version = (selection.spans[-1].version or 0) if selection else 0
        if selection:
            examples.set_string_custom_property("spans", json.dumps(selection.numbers))
        examples_utils.set_payload_format(examples, example_gen_pb2.FORMAT_TF_EXAMPLE)
        examples_utils.set_file_format(examples, "tfrecords_gzip")
        examples.set_string_custom_property("ingestion_report", json.dumps(summary))
        logging.info("ImdbExampleGen: %s", json.dumps(summary))


class ImdbExampleGenSpec(types.ComponentSpec):
    PARAMETERS = {
        "data": ExecutionParameter(type=str),
        "cache_dir": ExecutionParameter(type=str),
        "eval_percent": ExecutionParameter(type=int),
        "report_percent": ExecutionParameter(type=int),
        "group_by_movie": ExecutionParameter(type=int),
        "sample_percent": ExecutionParameter(type=int),
        "split_salt": ExecutionParameter(type=str),
        "max_skip_fraction": ExecutionParameter(type=float),
        # The `spans.SpanSelection` JSON from SpanResolver, resolved at run time
        # (a dynamic parameter): its fingerprint changes when the data does.
        "selection": ExecutionParameter(type=str, optional=True),
        # 1: the Evaluator will read the test split, so the data must have one.
        "require_test": ExecutionParameter(type=int, optional=True),
        # 1: also write the `unsup` split from train/unsup/, when the data has one.
        "unlabelled": ExecutionParameter(type=int, optional=True),
        # A review file over this many bytes is skipped unread and counted (0: no limit).
        "max_review_bytes": ExecutionParameter(type=int, optional=True),
    }
    INPUTS: Dict[str, ChannelParameter] = {}
    OUTPUTS = {"examples": ChannelParameter(type=standard_artifacts.Examples)}


class ImdbExampleGen(base_component.BaseComponent):
    """Emits `train`, `eval`, `report` (`imdb_data.SplitRule`) and, when present,
    `test` and (with `unlabelled`) `unsup`."""

    SPEC_CLASS = ImdbExampleGenSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(Executor)

    def __init__(self, data: str, cache_dir: str, rule: imdb_data.SplitRule,
                 sample_percent: int = 100, max_skip_fraction: float = 0.01,
                 selection: Any = None, require_test: bool = False,
                 unlabelled: bool = False, max_review_bytes: int = 0):
        spec = ImdbExampleGenSpec(
            data=data, cache_dir=cache_dir, eval_percent=rule.eval_percent,
            report_percent=rule.report_percent, group_by_movie=int(rule.group_by_movie),
            sample_percent=sample_percent, split_salt=rule.salt,
            max_skip_fraction=max_skip_fraction, selection=selection,
            require_test=int(require_test), unlabelled=int(unlabelled),
            max_review_bytes=max_review_bytes,
            examples=types.Channel(type=standard_artifacts.Examples))
        super().__init__(spec=spec)
