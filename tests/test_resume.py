"""Kill a real run mid-component, start it again with the same command, and check it finishes.

The run is `imdb-pipeline run --profile smoke` on a sample of the real reviews,
started in its own process group as a user's shell would. It is
- terminated (SIGTERM to the whole group) while Transform runs: the CLI must
  exit 143 with a message saying how to resume, and release the home lock;
- killed (SIGKILL to the whole group, no chance to clean up) while the
  Trainer runs;
- started a third time with the same command, which must finish, reuse the
  components completed before the kills, push exactly one whole model, and
  never have fed any component an artifact of an execution that did not
  complete (the killed Transform's and Trainer's half-written outputs).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from imdb_sentiment.local.runner import direct_beam_args
from conftest import cli_command, real_data_path

pytestmark = pytest.mark.slow


def command(home: Path) -> list:
    """A smoke run with Beam in worker processes, as a full run has them (the smoke
    profile runs Beam in its own process): the kills must reach them too."""
    return cli_command("run", "--profile", "smoke", "--data", str(real_data_path()),
                       "--home", str(home),
                       *[f"--beam-arg={arg}" for arg in direct_beam_args(2)])


def executor_started(home: Path, component: str) -> bool:
    """Whether TFX has handed `component`'s execution to its executor (the run log
    shows the component's inputs resolved, then a new execution launched)."""
    logs = sorted((home / "logs").glob("run-*.log"))
    if not logs:
        return False
    text = logs[-1].read_text(errors="replace")
    resolved = text.rfind(f"[{component}] Resolved inputs")
    return resolved >= 0 and text.find("Going to run a new execution:", resolved) >= 0


def run_until(home: Path, component: str, sig: int, out: Path, timeout: float = 900) -> tuple:
    """Starts a run, sends `sig` to its process group once `component`'s executor runs."""
    marker = f"] {component} ..."
    with out.open("w") as stdout:
        process = subprocess.Popen(command(home), stdout=stdout, stderr=subprocess.STDOUT,
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


def unfinished_inputs(metadata_path: Path) -> list:
    """(execution, artifact) pairs where an execution read an artifact no complete execution made."""
    from ml_metadata import metadata_store
    from ml_metadata.proto import metadata_store_pb2

    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = str(metadata_path)
    config.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READONLY
    store = metadata_store.MetadataStore(config)
    executions = {e.id: e for e in store.get_executions()}
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
    return bad, executions


def test_a_terminated_then_killed_run_resumes_from_the_cache_and_pushes_once(tmp_path):
    home = tmp_path / "home"

    code, output = run_until(home, "Transform", signal.SIGTERM, tmp_path / "first.out")
    assert code == 143, output
    assert "terminated; run the same command again to resume" in output
    assert "Traceback" not in output
    first = json.loads((home / "last_run.json").read_text())
    assert first["succeeded"] is False and first["pushed_model"] is None

    code, output = run_until(home, "Trainer", signal.SIGKILL, tmp_path / "second.out")
    assert code == -signal.SIGKILL, output
    assert not list(home.glob("serving/**/saved_model.pb"))  # nothing was pushed

    result = subprocess.run(command(home), capture_output=True, text=True, timeout=1800)
    assert result.returncode == 0, result.stdout + result.stderr
    record = json.loads((home / "last_run.json").read_text())
    statuses = {c["component"]: c["status"] for c in record["components"]}
    for reused in ("ImdbExampleGen", "StatisticsGen", "DataGate", "Transform"):
        assert statuses[reused] == "cached", statuses  # completed before the kills
    for rerun in ("Trainer", "Evaluator", "Pusher"):
        assert statuses[rerun] == "complete", statuses

    versions = [p for p in (home / "serving" / "imdb_sentiment").iterdir()]
    assert [p.name for p in versions] == [Path(record["pushed_model"]).name]  # one whole push
    assert (versions[0] / "saved_model.pb").exists() and (versions[0] / "variables").is_dir()

    bad, executions = unfinished_inputs(home / "metadata.sqlite")
    assert bad == [], bad
    from ml_metadata.proto import metadata_store_pb2 as mlmd

    unfinished = [e for e in executions.values()
                  if e.last_known_state not in (mlmd.Execution.COMPLETE, mlmd.Execution.CACHED)]
    assert len(unfinished) >= 2  # the terminated Transform and the killed Trainer
