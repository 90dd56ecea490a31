"""Scheduled runs on spans, for real: three spans cut by movie from the real
training archive arrive one after another (docs/operations.md, "Spans").

- span 1: a run pushes a model;
- span 2 arrives: everything that depends on the data reruns, the schema
  does not, and the summary, `last_run.json` and the report name span 2.
  This run takes its Beam work through Beam's portable framework (below);
- nothing new: the run exits 0 with "no new data since span 2" and runs nothing;
- a drifted span 3 (every review cut to ten words): refused with exit 2
  before Transform, and nothing is pushed.

Users who outgrow one machine run Beam on Flink, Spark or Dataflow, which all
take a pipeline through the portable runner API (a job service, SDK harnesses).
For span 2 the embedded job server (`--job_endpoint=embed`) and LOOPBACK
workers stand in for such an engine: every Beam component (StatisticsGen,
Transform, Evaluator) must run through PortableRunner, not the DirectRunner.
Not run here: Flink, Spark or Dataflow themselves (docs/operations.md lists
each engine's flags).
"""

from __future__ import annotations

import json
import subprocess
import tarfile
from pathlib import Path

import pytest

from conftest import real_data_path, run_cli, write_span_archives

pytestmark = pytest.mark.slow

#: About 1,400 labelled reviews per span: enough for the smoke model and the gates.
MOVIES_PER_SPAN = 200
PORTABLE_ARGS = ["--runner=PortableRunner", "--job_endpoint=embed", "--environment_type=LOOPBACK"]


def run(home: Path, data: str, *beam_args: str) -> subprocess.CompletedProcess:
    return run_cli("run", "--profile", "smoke", "--data", data, "--home", str(home),
                   "--set", "ingestion.sample_percent=100",
                   *[f"--beam-arg={arg}" for arg in beam_args], timeout=1800)


def cut_to_ten_words(archive: Path) -> None:
    """The span's reviews, each cut to its first ten words (a broken scraper)."""
    import io

    with tarfile.open(archive, "r:gz") as reader:
        members = [(m, reader.extractfile(m).read() if m.isfile() else None) for m in reader]
    with tarfile.open(archive, "w:gz") as writer:
        for member, data in members:
            if data is not None and member.name.endswith(".txt") and "/urls_" not in member.name:
                data = " ".join(data.decode().split()[:10]).encode()
                member.size = len(data)
            writer.addfile(member, io.BytesIO(data) if data is not None else None)


@pytest.fixture(scope="module")
def spans_dir(tmp_path_factory):
    staging = tmp_path_factory.mktemp("staging")
    write_span_archives(real_data_path(), staging, spans=3, movies_per_span=MOVIES_PER_SPAN)
    cut_to_ten_words(staging / "imdb-3.tar.gz")
    return staging, tmp_path_factory.mktemp("arriving")


def test_spans_arrive_one_after_another(spans_dir, tmp_path):
    staging, arriving = spans_dir
    pattern = str(arriving / "imdb-{SPAN}.tar.gz")
    home = tmp_path / "home"

    (arriving / "imdb-1.tar.gz").write_bytes((staging / "imdb-1.tar.gz").read_bytes())
    first = run(home, pattern)
    assert first.returncode == 0, first.stdout + first.stderr
    record = json.loads((home / "last_run.json").read_text())
    assert [s["number"] for s in record["ingestion"]["spans"]] == [1]
    assert record["pushed_model"]

    (arriving / "imdb-2.tar.gz").write_bytes((staging / "imdb-2.tar.gz").read_bytes())
    second = run(home, pattern, *PORTABLE_ARGS)
    assert second.returncode == 0, second.stdout + second.stderr
    record = json.loads((home / "last_run.json").read_text())
    log = Path(record["log_file"]).read_text()
    assert 'Environment "LOOPBACK" has started a component' in log  # PortableRunner's own line
    assert "using the default runner: DirectRunner" not in log
    assert record["pushed_model"]
    assert [s["number"] for s in record["ingestion"]["spans"]] == [2]
    statuses = {c["component"]: c["status"] for c in record["components"]}
    assert statuses["SchemaGen"] == "cached"  # does not depend on the data
    for component in ("SpanResolver", "ImdbExampleGen", "StatisticsGen", "Transform", "Trainer",
                      "BaselineTrainer", "Evaluator"):
        assert statuses[component] == "complete", statuses
    assert "data: span 2 (imdb-2.tar.gz)" in second.stdout
    assert "span 2" in (home / "report" / "index.html").read_text()
    pushed = sorted(p.name for p in (home / "serving" / "imdb_sentiment").iterdir()
                    if p.name.isdigit())

    third = run(home, pattern, *PORTABLE_ARGS)  # the same command as span 2's
    assert third.returncode == 0, third.stdout + third.stderr
    assert "no new data since span 2" in third.stdout
    assert json.loads((home / "last_run.json").read_text()) == record  # nothing ran

    (arriving / "imdb-3.tar.gz").write_bytes((staging / "imdb-3.tar.gz").read_bytes())
    drifted = run(home, pattern)
    assert drifted.returncode == 2, drifted.stdout + drifted.stderr
    record = json.loads((home / "last_run.json").read_text())
    statuses = {c["component"]: c["status"] for c in record["components"]}
    assert statuses["DataGate"] == "failed" and statuses["Transform"] == "not run", statuses
    assert "length" in drifted.stdout + drifted.stderr
    assert sorted(p.name for p in (home / "serving" / "imdb_sentiment").iterdir()
                  if p.name.isdigit()) == pushed
