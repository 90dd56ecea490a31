"""The run report's page, built from a run record alone (no TFX run).

The end-to-end test (`test_pipeline_e2e.py`) checks the page a real run
writes, with TFMA's plots, TFDV's statistics and the model's mistakes.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import run_cli
from imdb_sentiment.reporting import run_report


def _record() -> dict:
    slices = {"overall": {"example_count": 400.0, "binary_accuracy": 0.88, "auc": 0.95,
                          "mean_label": 0.5},
              "rating=1": {"example_count": 90.0, "binary_accuracy": 0.97, "auc": 0.0,
                           "mean_label": 0.0},
              "length_bucket=q1: 1-127 words": {"example_count": 100.0, "binary_accuracy": 0.9,
                                                "auc": 0.96, "mean_label": 0.52}}
    baseline = {name: dict(values, binary_accuracy=values["binary_accuracy"] + 0.01)
                for name, values in slices.items()}
    epochs = [{"epoch": i, "loss": 0.6 / i, "accuracy": 0.7 + 0.05 * i, "val_loss": 0.4,
               "val_accuracy": 0.85 + 0.01 * i, "seconds": 10.0, "examples_per_second": 100.0}
              for i in (1, 2, 3)]
    accuracy = {"candidate": {"value": 0.88, "ci95": [0.84, 0.91]},
                "linear_baseline": {"value": 0.89, "ci95": [0.85, 0.92]},
                "difference": {"value": -0.01, "ci95": None}, "reviews": 400.0}
    return {
        "profile": "smoke", "succeeded": True, "error": None, "seconds": 120.0,
        "log_file": "/tmp/x.log",
        "components": [{"component": "Trainer", "status": "complete", "seconds": 60.0},
                       {"component": "Evaluator", "status": "complete", "seconds": 20.0},
                       {"component": "Pusher", "status": "not run", "seconds": None}],
        "metrics": {"test": slices, "eval": slices}, "baseline_metrics": {"eval": baseline},
        "accuracy": {"test": accuracy, "eval": accuracy, "report": accuracy},
        "blessed": False, "blessing_reason": "failed: binary_accuracy is -0.0100",
        "pushed_model": None,
        "training": {"policy": "float32", "epochs": epochs, "best_epoch": epochs[1],
                     "train_examples": 1000, "device": {"cpu": "Test CPU", "gpus": []}},
        "baseline_training": {"epochs": epochs[:2]},
        "ingestion": {"source": "a.tar.gz", "sha256": "ab" * 32, "grouped_by": "movie"},
        "data_checks": {"eval": {"reviews": 400, "empty": 0, "median_words": 170.0,
                                 "drift_from_train": {"length_jsd": 0.001, "vocabulary_jsd": 0.004}}},
        "config": {"pipeline_name": "imdb_sentiment"},
        "machine": {"cpu": "Test CPU", "cores": 2, "gpus": []},
    }


def _images(page: str, folder: Path):
    sources = re.findall(r"<img src=['\"]([^'\"]+)['\"]", page)
    return [folder / source for source in sources]


def test_a_home_with_only_its_run_record_gets_every_section_and_real_plots(tmp_path):
    (tmp_path / "last_run.json").write_text(json.dumps(_record()))
    page_path = run_report.write_report(tmp_path)
    page = page_path.read_text()
    assert page_path == tmp_path / "report" / "index.html"
    for anchor, title, _ in run_report.SECTIONS:  # every section, in a browser's order
        assert f'<section id="{anchor}">' in page and title in page
    # What needs ML Metadata says so; nothing raised.
    assert "could not be drawn" not in page
    assert page.count("Not available: no TFMA evaluation in this home") == 1
    assert "Not available: no trained model or no examples in this home" in page
    images = _images(page, page_path.parent)
    assert {p.name for p in images} == {"training_curves.png", "slices_eval.png",
                                        "slices_test.png", "component_seconds.png"}
    for image in images:
        pixels = np.asarray(Image.open(image).convert("L"))
        assert pixels.shape[0] > 100 and pixels.shape[1] > 300
        assert (pixels < 128).mean() > 0.01  # something dark was drawn, not a blank canvas
    # Splits in their roles' order, each with its role; AUC is not claimed on one-class slices.
    assert page.index("<b>eval</b>") < page.index("<b>report</b>") < page.index("<b>test</b>")
    assert "decides nothing" in page and "chose the epoch and gates the push" in page
    assert "– (one class)" in page and "0.9500" in page
    assert "0.8800 [0.840, 0.910]" in page
    assert "not blessed, nothing pushed" in page and "ab" * 32 in page


@pytest.mark.slow
def test_rebuilding_replaces_the_old_plots(tmp_path):
    record = _record()
    (tmp_path / "last_run.json").write_text(json.dumps(record))
    run_report.write_report(tmp_path)
    record["metrics"].pop("test")
    (tmp_path / "last_run.json").write_text(json.dumps(record))
    run_report.write_report(tmp_path)
    assert not (tmp_path / "report" / "slices_test.png").exists()


def test_a_run_that_stopped_early_still_gets_a_page_saying_what_is_missing(tmp_path):
    record = {"profile": "smoke", "succeeded": False, "error": "OSError: disk full",
              "seconds": 3.0, "components": [{"component": "ImdbExampleGen", "status": "failed",
                                               "seconds": 3.0}]}
    (tmp_path / "last_run.json").write_text(json.dumps(record))
    page = run_report.write_report(tmp_path).read_text()
    assert "failed: OSError: disk full" in page
    assert "Not available: no training history" in page
    assert "Not available: no evaluation" in page
    assert "could not be drawn" not in page


def test_the_most_confident_mistakes_come_first_and_right_answers_never_appear():
    reviews = [{"label": 1}, {"label": 0}, {"label": 1}, {"label": 0}, {"label": 1}]
    probabilities = [0.45, 0.99, 0.02, 0.30, 0.90]
    mistakes = run_report.confident_mistakes(reviews, probabilities, count=5)
    assert [p for _, p in mistakes] == [0.99, 0.02, 0.45]


def test_rating_buckets_are_named_by_the_whole_ratings_they_hold():
    from tensorflow_metadata.proto.v0 import statistics_pb2

    dataset = statistics_pb2.DatasetFeatureStatistics()
    feature = dataset.features.add()
    feature.path.step.append("rating")
    histogram = feature.num_stats.histograms.add(type=statistics_pb2.Histogram.STANDARD)
    edges = np.linspace(1, 10, 11)  # TFDV's 10 equal buckets over ratings 1-10
    counts = [50, 20, 20, 20, 0.2, 0.1, 20, 20, 20, 50]
    for low, high, count in zip(edges[:-1], edges[1:], counts):
        histogram.buckets.add(low_value=low, high_value=high, sample_count=count)
    shares = run_report._rating_shares(dataset)
    assert list(shares) == ["1", "2", "3", "4", "7", "8", "9", "10"]
    assert shares["1"] == pytest.approx(50 / sum(counts))


@pytest.mark.slow
def test_report_command_names_a_home_without_a_run(tmp_path):
    result = run_cli("report", "--home", str(tmp_path), timeout=300)
    assert result.returncode == 2, result.stderr
    assert "no last_run.json" in result.stderr and "Traceback" not in result.stderr


def test_the_page_reads_only_artifacts_of_the_run_it_describes(tmp_path, monkeypatch):
    """A run that failed early must not show the previous run's model or plots as its own."""
    from imdb_sentiment.reporting import run_summary

    asked = []

    class Reader:
        def __init__(self, connection, pipeline_name):
            pass

        def output(self, node_id, key, since_ms=0):
            asked.append((node_id, since_ms))
            return None

    monkeypatch.setattr(run_summary, "MetadataReader", Reader)
    record = dict(_record(), started_ms=1_700_000_000_000)
    (tmp_path / "last_run.json").write_text(json.dumps(record))
    (tmp_path / "metadata.sqlite").write_bytes(b"")
    page = run_report.write_report(tmp_path).read_text()
    assert asked and all(since == record["started_ms"] for _, since in asked)
    assert "Not available: no TFMA evaluation in this home" in page
