"""The command line as a user meets it: its own first line, no tracebacks."""

from __future__ import annotations

import subprocess
import sys


def _cli(*args: str, stdin: bytes = b"") -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "imdb_sentiment.pipeline.cli", *args],
                          input=stdin, capture_output=True, timeout=300)


def test_a_command_that_loads_tensorflow_prints_only_its_own_line(tmp_path):
    result = _cli("predict", "--model", str(tmp_path / "missing"), "a review")
    assert result.returncode == 2
    lines = result.stderr.decode().splitlines()
    assert len(lines) == 1 and lines[0].startswith("imdb-pipeline: error:"), lines
    assert b"cuFFT" not in result.stderr and b"cuDNN" not in result.stderr


def test_invalid_utf8_on_stdin_is_decoded_leniently_and_said(tmp_path):
    result = _cli("predict", "--model", str(tmp_path / "missing"), stdin=b"great \xff\xfe film\n")
    stderr = result.stderr.decode()
    assert "not valid UTF-8" in stderr and "Traceback" not in stderr
    assert result.returncode == 2  # then the missing model, in one line of its own


def test_the_summary_shows_both_models_by_length_on_the_report_split():
    from imdb_sentiment.pipeline.cli import slice_table

    record = {"metrics": {"report": {"overall": {"binary_accuracy": 0.9},
                                     "length_bucket=q1: 1-120 words": {"binary_accuracy": 0.91,
                                                                      "example_count": 600.0},
                                     "length_bucket=q2: 121+ words": {"binary_accuracy": 0.88,
                                                                     "example_count": 580.0}}},
              "baseline_metrics": {"report": {"length_bucket=q1: 1-120 words": {"binary_accuracy": 0.92}}}}
    lines = slice_table(record, "report", "length_bucket")
    assert "report by length_bucket" in lines[0]
    assert lines[1].split() == ["q1:", "1-120", "words", "600", "0.9100", "0.9200"]
    assert lines[2].split()[-2:] == ["0.8800", "-"]  # no baseline figure: said, not invented
    assert slice_table(record, "test", "length_bucket") == []
