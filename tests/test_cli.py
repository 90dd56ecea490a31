"""The command line as a user meets it: its own first line, no tracebacks."""

from __future__ import annotations

import subprocess

from conftest import run_cli

import pytest


def _cli(*args: str, stdin: bytes = b"") -> subprocess.CompletedProcess:
    return run_cli(*args, stdin=stdin, text=False, timeout=300)


@pytest.mark.slow
def test_a_command_that_loads_tensorflow_prints_only_its_own_line(tmp_path):
    result = _cli("predict", "--model", str(tmp_path / "missing"), "a review")
    assert result.returncode == 2
    lines = result.stderr.decode().splitlines()
    assert len(lines) == 1 and lines[0].startswith("imdb-pipeline: error:"), lines
    assert b"cuFFT" not in result.stderr and b"cuDNN" not in result.stderr


@pytest.mark.slow
def test_invalid_utf8_on_stdin_is_decoded_leniently_and_said(tmp_path):
    result = _cli("predict", "--model", str(tmp_path / "missing"), stdin=b"great \xff\xfe film\n")
    stderr = result.stderr.decode()
    assert "not valid UTF-8" in stderr and "Traceback" not in stderr
    assert result.returncode == 2  # then the missing model, in one line of its own


def test_the_summary_shows_both_models_by_length_on_the_report_split():
    from imdb_sentiment.cli.main import slice_table

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


class _EmptyMetadata:
    """MLMD as it is when a run stops before any component registered an execution."""

    def latest_execution(self, node_id, since_ms=0):
        return None

    def output(self, node_id, key, since_ms=0):
        return None


def test_the_run_record_marks_the_running_component_failed_and_keeps_the_config(tmp_path):
    from imdb_sentiment.pipeline import config as config_lib
    from imdb_sentiment.local.runner import build_run_record

    record = build_run_record(
        _EmptyMetadata(), config_lib.profile_config("smoke"), started_ms=0, seconds=12.34,
        error=OSError("disk full"), log_path=tmp_path / "run.log", running_node="Transform",
        component_seconds={"ImdbExampleGen": 3.0},
        component_ids=("ImdbExampleGen", "Transform", "Trainer"))
    status = {c["component"]: c["status"] for c in record["components"]}
    assert status["Transform"] == "failed" and status["Trainer"] == "not run"
    assert record["components"][0] == {"component": "ImdbExampleGen", "status": "not run", "seconds": 3.0}
    assert record["succeeded"] is False and record["error"] == "OSError: disk full"
    assert record["seconds"] == 12.3 and record["config"]["profile"] == "smoke"
    assert record["pushed_model"] is None and record["blessed"] is None
    assert record["machine"]["cores"] >= 1


def test_a_failed_run_maps_to_one_line_and_its_exit_code(tmp_path, capsys):
    import errno

    from imdb_sentiment.components.imdb_data import DataError
    from imdb_sentiment.cli import main as cli

    log = tmp_path / "run.log"
    wrapped = RuntimeError("component failed")
    wrapped.__cause__ = DataError("archive.tar.gz: no train/")
    cases = [(wrapped, cli.EXIT_BAD_INPUT, "bad input data: archive.tar.gz: no train/"),
             (cli.Terminated(), cli.EXIT_TERMINATED, "terminated; run the same command again"),
             (KeyboardInterrupt(), cli.EXIT_INTERRUPTED, "interrupted"),
             (OSError(errno.ENOSPC, "No space left on device"), cli.EXIT_ENVIRONMENT, "disk"),
             (ValueError("a bug\nsecond line"), cli.EXIT_FAILURE, "ValueError: a bug")]
    for error, code, message in cases:
        assert cli._report_failure(error, tmp_path, log) == code
        err = capsys.readouterr().err
        assert message in err and "second line" not in err, err


def test_explain_refuses_an_output_format_it_cannot_write_before_loading_anything(tmp_path):
    from imdb_sentiment.cli import main as cli

    assert cli.main(["explain", "--model", str(tmp_path / "none"), "--out", str(tmp_path / "a.pdf"),
                     "good"]) == cli.EXIT_BAD_INPUT
    assert cli.main(["explain", "--model", str(tmp_path / "none"),
                     "--out", str(tmp_path / "missing" / "a.html"), "good"]) == cli.EXIT_BAD_INPUT


def test_a_swallowed_termination_still_stops_the_run_before_the_next_component():
    """The SIGTERM handler's exception can land in library code that swallows it; the flag cannot."""
    import io
    import logging
    import threading

    import pytest

    from imdb_sentiment.local import runner as local_runner

    stop = threading.Event()
    terminal = io.StringIO()
    logger = logging.getLogger("imdb_sentiment.tests.progress")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    handler = local_runner.ComponentProgress(terminal, total=2, stop=stop)
    logger.addHandler(handler)
    try:
        logger.info("Component Transform is running.")
        stop.set()  # what the CLI's SIGTERM handler does before it raises
        logger.info("Component Transform is finished.")
        with pytest.raises(local_runner.Terminated, match="before Trainer"):
            logger.info("Component Trainer is running.")
    finally:
        logger.removeHandler(handler)
    assert "[1/2] Transform ..." in terminal.getvalue()
    assert "Trainer ..." not in terminal.getvalue()


def test_a_failure_after_sigterm_is_reported_as_the_termination(tmp_path, capsys):
    """SIGTERM reaches Beam's workers too: their deaths can fail the component first."""
    import threading

    from imdb_sentiment.cli import main as cli

    stop = threading.Event()
    workers_died = RuntimeError("SDK worker exited\nwith a traceback")
    assert cli._after_termination(workers_died, stop) is workers_died  # no SIGTERM: its own error
    stop.set()
    failure = cli._after_termination(workers_died, stop)
    assert failure.__cause__ is workers_died
    assert cli._report_failure(failure, tmp_path, tmp_path / "run.log") == cli.EXIT_TERMINATED
    assert "terminated; run the same command again" in capsys.readouterr().err
    terminated = cli.Terminated("received signal 15")
    assert cli._after_termination(terminated, stop) is terminated


def test_local_beam_arguments_spare_tfx_the_sdist_it_builds_for_remote_workers(monkeypatch):
    """TFX 1.16's Beam executors run `make_beam_dependency_flags` on every local
    run; with the default arguments it must hand them back unchanged, without
    packaging TFX (tfx/utils/dependency_utils.py)."""
    from tfx.utils import dependency_utils

    from imdb_sentiment.local.runner import direct_beam_args
    from imdb_sentiment.pipeline.config import profile_config

    def packaged():
        raise AssertionError("TFX built its ephemeral sdist for a local run")

    monkeypatch.setattr(dependency_utils, "build_ephemeral_package", packaged)
    for profile, mode in (("full", "multi_processing"), ("smoke", "in_memory")):
        args = direct_beam_args(profile_config(profile).local_beam_workers)
        assert f"--direct_running_mode={mode}" in args
        assert dependency_utils.make_beam_dependency_flags(list(args)) == list(args)
    with pytest.raises(AssertionError, match="ephemeral sdist"):
        dependency_utils.make_beam_dependency_flags(["--direct_num_workers=2"])
