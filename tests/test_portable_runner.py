"""The pipeline's Beam work through Beam's portable framework.

Users who outgrow one machine run Beam on Flink, Spark or Dataflow, which all
take a pipeline through the portable runner API (a job service, SDK
harnesses). Here the embedded job server (`--job_endpoint=embed`) and
LOOPBACK workers stand in for such an engine: every Beam component
(StatisticsGen, Transform, Evaluator) must run through PortableRunner, not
the DirectRunner. Not run here: Flink, Spark or Dataflow themselves
(docs/operations.md lists each engine's flags).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import make_members, run_cli, write_archive

pytestmark = pytest.mark.slow

PORTABLE_ARGS = ["--runner=PortableRunner", "--job_endpoint=embed", "--environment_type=LOOPBACK"]


def test_every_beam_component_runs_on_the_portable_runner(tmp_path):
    archive = write_archive(tmp_path / "aclImdb.tar.gz", make_members(count=60, reviews_per_movie=1))
    home = tmp_path / "home"
    result = run_cli(
        "run", "--profile", "smoke", "--data", str(archive), "--home", str(home),
        "--set", "ingestion.sample_percent=100",
        # Six fixture sentences are no IMDB text: the text checks would (rightly) stop it.
        "--set", "validation.reference_profile=", "--set", "validation.max_length_drift=1",
        "--set", "validation.max_vocabulary_drift=1", "--set", "validation.max_empty_fraction=1",
        *[f"--beam-arg={arg}" for arg in PORTABLE_ARGS], timeout=1800)
    assert result.returncode == 0, result.stdout + result.stderr
    record = json.loads((home / "last_run.json").read_text())
    statuses = {c["component"]: c["status"] for c in record["components"]}
    assert {statuses[c] for c in ("StatisticsGen", "Transform", "Evaluator")} == {"complete"}
    assert record["pushed_model"]
    log = Path(record["log_file"]).read_text()
    assert 'Environment "LOOPBACK" has started a component' in log  # PortableRunner's own line
    assert "using the default runner: DirectRunner" not in log
