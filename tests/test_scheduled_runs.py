"""Scheduled runs on one home, for real: spans cut by movie from the real
training archive arrive one after another (docs/operations.md, "Spans"), and
the first span's run is stopped twice before it finishes.

- span 1: the run is terminated (SIGTERM to its process group, as a shell or a
  scheduler stops it) while Transform runs, and the CLI must exit 143 saying
  how to resume and release the home lock; it is then killed (SIGKILL, no
  chance to clean up) while the Trainer runs; the same command a third time
  must finish, reuse what completed before the kills, push exactly one whole
  model, and never have fed a component an artifact of an execution that did
  not complete. Beam runs in worker processes here, as in a full run, so the
  signals must reach them too.
- span 2 arrives: everything that depends on the data reruns, the schema does
  not, and the summary, `last_run.json` and the report name span 2. This run
  takes its Beam work through Beam's portable framework: users who outgrow one
  machine run Beam on Flink, Spark or Dataflow, which all take a pipeline
  through the portable runner API. The embedded job server
  (`--job_endpoint=embed`) and LOOPBACK workers stand in for such an engine:
  StatisticsGen, Transform and the Evaluator must run through PortableRunner,
  not the DirectRunner. Not run here: Flink, Spark or Dataflow themselves
  (docs/operations.md lists each engine's flags).
- nothing new: the run exits 0 with "no new data since span 2" and runs nothing;
- a drifted span 3 (every review cut to ten words): refused with exit 2 before
  Transform, and nothing is pushed.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import List, Tuple

import pytest

from imdb_sentiment.local.runner import direct_beam_args
from conftest import cli_command, real_data_path, run_cli, write_span_archives

pytestmark = [pytest.mark.slow, pytest.mark.long]

#: About 1,400 labelled reviews per span: enough for the smoke model and the gates.
MOVIES_PER_SPAN = 200
PORTABLE_ARGS = ("--runner=PortableRunner", "--job_endpoint=embed", "--environment_type=LOOPBACK")


def run_args(home: Path, pattern: str, beam_args: Tuple[str, ...] = ()) -> List[str]:
    """A smoke run on every review of the newest span; `beam_args` replace the default."""
    return ["run", "--profile", "smoke", "--data", pattern, "--home", str(home),
            "--set", "ingestion.sample_percent=100", *[f"--beam-arg={arg}" for arg in beam_args]]


def run(home: Path, pattern: str, beam_args: Tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    return run_cli(*run_args(home, pattern, beam_args), timeout=1800)


def cut_to_ten_words(archive: Path) -> None:
    """The span's reviews, each cut to its first ten words (a broken scraper)."""
    with tarfile.open(archive, "r:gz") as reader:
        members = [(m, reader.extractfile(m).read() if m.isfile() else None) for m in reader]
    with tarfile.open(archive, "w:gz") as writer:
        for member, data in members:
            if data is not None and member.name.endswith(".txt") and "/urls_" not in member.name:
                data = " ".join(data.decode().split()[:10]).encode()
                member.size = len(data)
            writer.addfile(member, io.BytesIO(data) if data is not None else None)


def executor_started(home: Path, component: str) -> bool:
    """Whether TFX has handed `component`'s execution to its executor (the run log
    shows the component's inputs resolved, then a new execution launched)."""
    logs = sorted((home / "logs").glob("run-*.log"))
    if not logs:
        return False
    text = logs[-1].read_text(errors="replace")
    resolved = text.rfind(f"[{component}] Resolved inputs")
    return resolved >= 0 and text.find("Going to run a new execution:", resolved) >= 0


def run_until(argv: List[str], home: Path, component: str, sig: int, out: Path,
              timeout: float = 900) -> Tuple[int, str]:
    """Starts a run, sends `sig` to its process group once `component`'s executor runs."""
    marker = f"] {component} ..."
    with out.open("w") as stdout:
        process = subprocess.Popen(argv, stdout=stdout, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    try:
        deadline = time.monotonic() + timeout
        while marker not in out.read_text() or not executor_started(home, component):
            assert process.poll() is None, f"run ended before {marker!r}:\n{out.read_text()}"
            assert time.monotonic() < deadline, f"no {marker!r} within {timeout}s"
            time.sleep(0.5)
        os.killpg(process.pid, sig)
        code = process.wait(timeout=180)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    return code, out.read_text()


def unfinished_inputs(metadata_path: Path) -> tuple:
    """(execution, artifact) pairs where an execution read an artifact no complete
    execution made; and the type names of the executions that did not complete."""
    from ml_metadata import metadata_store
    from ml_metadata.proto import metadata_store_pb2

    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = str(metadata_path)
    config.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READONLY
    store = metadata_store.MetadataStore(config)
    executions = {e.id: e for e in store.get_executions()}
    type_names = {t.id: t.name for t in store.get_execution_types()}
    done = {metadata_store_pb2.Execution.COMPLETE, metadata_store_pb2.Execution.CACHED}
    events = store.get_events_by_execution_ids(list(executions))
    producers = {}
    for event in events:
        if event.type == metadata_store_pb2.Event.OUTPUT:
            producers.setdefault(event.artifact_id, []).append(executions[event.execution_id])
    bad = []
    for event in events:
        if event.type != metadata_store_pb2.Event.INPUT or event.artifact_id not in producers:
            continue  # imported artifacts (the schema) have no producer
        if not any(p.last_known_state in done for p in producers[event.artifact_id]):
            bad.append((event.execution_id, event.artifact_id))
    unfinished = sorted(type_names[e.type_id] for e in executions.values()
                        if e.last_known_state not in done)
    return bad, unfinished


@dataclass
class SpanOne:
    """What the interrupted, then resumed, run of span 1 left behind."""
    home: Path
    staging: Path
    arriving: Path
    terminated: Tuple[int, str]
    terminated_record: dict
    killed: Tuple[int, str]
    pushed_after_kill: List[Path]
    record: dict
    versions: List[Path]
    unfinished_inputs: list
    unfinished_executions: List[str]


@pytest.fixture(scope="module")
def span_one(tmp_path_factory) -> SpanOne:
    """Span 1 arrives; its run is terminated, killed, then run again to the end."""
    staging = tmp_path_factory.mktemp("staging")
    write_span_archives(real_data_path(), staging, spans=3, movies_per_span=MOVIES_PER_SPAN)
    cut_to_ten_words(staging / "imdb-3.tar.gz")
    arriving = tmp_path_factory.mktemp("arriving")
    logs = tmp_path_factory.mktemp("outputs")
    home = tmp_path_factory.mktemp("home") / "home"
    (arriving / "imdb-1.tar.gz").write_bytes((staging / "imdb-1.tar.gz").read_bytes())
    # Beam in worker processes, as a full run has them: the signals must reach them too.
    argv = cli_command(*run_args(home, str(arriving / "imdb-{SPAN}.tar.gz"), direct_beam_args(2)))

    terminated = run_until(argv, home, "Transform", signal.SIGTERM, logs / "first.out")
    terminated_record = json.loads((home / "last_run.json").read_text())
    killed = run_until(argv, home, "Trainer", signal.SIGKILL, logs / "second.out")
    pushed_after_kill = list(home.glob("serving/**/saved_model.pb"))
    resumed = subprocess.run(argv, capture_output=True, text=True, timeout=1800)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    bad, unfinished = unfinished_inputs(home / "metadata.sqlite")
    return SpanOne(home, staging, arriving, terminated, terminated_record, killed,
                   pushed_after_kill, json.loads((home / "last_run.json").read_text()),
                   sorted((home / "serving" / "imdb_sentiment").iterdir()), bad, unfinished)


def test_a_terminated_then_killed_run_resumes_from_the_cache_and_pushes_once(span_one):
    code, output = span_one.terminated
    assert code == 143, output
    assert "terminated; run the same command again to resume" in output
    assert "Traceback" not in output
    first = span_one.terminated_record
    assert first["succeeded"] is False and first["pushed_model"] is None
    stopped = {c["component"]: c["status"] for c in first["components"]}
    # SIGTERM stops Transform where it runs (left running, or failed when the
    # signal kills Beam's workers first), or, when library code inside it
    # swallows the exception, lets it finish and stops the run before the next
    # component (docs/operations.md, exit codes). Nothing after it may start.
    assert stopped["Transform"] in ("running", "failed", "complete"), stopped
    for later in ("Trainer", "BaselineTrainer", "Evaluator", "Pusher"):
        assert stopped[later] == "not run", stopped

    code, output = span_one.killed
    assert code == -signal.SIGKILL, output
    assert span_one.pushed_after_kill == []  # nothing was pushed

    record = span_one.record
    assert [s["number"] for s in record["ingestion"]["spans"]] == [1]
    statuses = {c["component"]: c["status"] for c in record["components"]}
    for reused in ("ImdbExampleGen", "StatisticsGen", "DataGate", "Transform"):
        assert statuses[reused] == "cached", statuses  # completed before the kills
    for rerun in ("Trainer", "Evaluator", "Pusher"):
        assert statuses[rerun] == "complete", statuses

    versions = span_one.versions
    assert [p.name for p in versions] == [Path(record["pushed_model"]).name]  # one whole push
    assert (versions[0] / "saved_model.pb").exists() and (versions[0] / "variables").is_dir()

    # The killed Trainer (and a stopped Transform) left executions that never
    # completed, and no execution read their outputs.
    unfinished = [name.rsplit(".", 1)[-1] for name in span_one.unfinished_executions]
    assert any(name.endswith("Trainer") for name in unfinished), unfinished
    if stopped["Transform"] != "complete":
        assert "Transform" in unfinished, unfinished
    assert span_one.unfinished_inputs == []


def test_spans_arrive_one_after_another(span_one):
    home, staging, arriving = span_one.home, span_one.staging, span_one.arriving
    pattern = str(arriving / "imdb-{SPAN}.tar.gz")

    (arriving / "imdb-2.tar.gz").write_bytes((staging / "imdb-2.tar.gz").read_bytes())
    second = run(home, pattern, PORTABLE_ARGS)
    assert second.returncode == 0, second.stdout + second.stderr
    record = json.loads((home / "last_run.json").read_text())
    assert [s["number"] for s in record["ingestion"]["spans"]] == [2]
    statuses = {c["component"]: c["status"] for c in record["components"]}
    assert statuses["SchemaGen"] == "cached"  # does not depend on the data
    for component in ("SpanResolver", "ImdbExampleGen", "StatisticsGen", "Transform", "Trainer",
                      "BaselineTrainer", "Evaluator"):
        assert statuses[component] == "complete", statuses
    assert "data: span 2 (imdb-2.tar.gz)" in second.stdout
    assert "span 2" in (home / "report" / "index.html").read_text()
    log = Path(record["log_file"]).read_text()
    assert 'Environment "LOOPBACK" has started a component' in log  # PortableRunner's own line
    assert "using the default runner: DirectRunner" not in log
    assert record["pushed_model"]
    pushed = sorted(p.name for p in (home / "serving" / "imdb_sentiment").iterdir()
                    if p.name.isdigit())

    third = run(home, pattern, PORTABLE_ARGS)  # the same command as span 2's
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
