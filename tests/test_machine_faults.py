"""Faults of the machine: a full disk, a read-only home, a corrupt metadata store,
two pushers racing. Real file systems where the machine allows (tmpfs and
read-only bind mounts need root; skipped with the reason otherwise)."""

from __future__ import annotations

import errno
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from imdb_sentiment.components import atomic_pusher
from imdb_sentiment.local import runner as local_runner
from conftest import make_members, run_cli, write_archive


def _mount(*args: str) -> None:
    result = subprocess.run(["mount", *args], capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount here ({result.stderr.strip() or 'not permitted'})")


@pytest.fixture
def small_disk(tmp_path):
    disk = tmp_path / "disk"
    disk.mkdir()
    _mount("-t", "tmpfs", "-o", "size=64k", "tmpfs", str(disk))
    yield disk
    subprocess.run(["umount", str(disk)], check=False)


@pytest.fixture
def read_only_home(tmp_path):
    source, home = tmp_path / "source", tmp_path / "home"
    source.mkdir()
    home.mkdir()
    (source / "last_run.json").write_text('{"previous": true}')
    _mount("--bind", "-o", "ro", str(source), str(home))
    yield home
    subprocess.run(["umount", str(home)], check=False)


def test_a_full_disk_leaves_the_previous_record_whole_and_no_litter(small_disk):
    record = small_disk / "last_run.json"
    record.write_text('{"previous": true}')
    with pytest.raises(OSError) as raised:
        local_runner.atomic_write_text(record, "x" * 200_000)
    assert raised.value.errno == errno.ENOSPC
    assert json.loads(record.read_text()) == {"previous": True}
    assert sorted(p.name for p in small_disk.iterdir()) == ["last_run.json"]
    line = local_runner.environment_problem(raised.value, small_disk)
    assert line.startswith("no space left") and "MB free" in line and "\n" not in line


@pytest.mark.slow
def test_a_home_too_small_for_the_run_fails_before_any_work(small_disk, tmp_path):
    archive = write_archive(tmp_path / "a.tar.gz", make_members())
    result = _run_cli(small_disk / "home", archive)
    assert result.returncode == 5, result.stdout + result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("imdb-pipeline:")]
    assert len(errors) == 1 and "the run needs about" in errors[0] and "MB are free" in errors[0]
    assert "[1/" not in result.stdout  # no component started
    assert sorted(p.name for p in (small_disk / "home").iterdir()) == [".run.lock"]


def test_environment_problems_are_named_and_other_errors_are_not(tmp_path):
    readonly = OSError(errno.EROFS, "Read-only file system", str(tmp_path / "x"))
    assert "read-only file system" in local_runner.environment_problem(readonly, tmp_path)
    denied = PermissionError(errno.EACCES, "Permission denied", str(tmp_path / "y"))
    assert "permission denied" in local_runner.environment_problem(denied, tmp_path)
    wrapped = RuntimeError("component failed")
    wrapped.__cause__ = RuntimeError("database disk image is malformed\nCREATE TABLE ...")
    line = local_runner.environment_problem(wrapped, tmp_path)
    assert "metadata.sqlite" in line and "mv " in line and "CREATE TABLE" not in line
    assert local_runner.environment_problem(ValueError("a bug"), tmp_path) is None


def _run_cli(home: Path, archive: Path) -> subprocess.CompletedProcess:
    return run_cli("run", "--profile", "smoke", "--data", str(archive), "--home", str(home))


@pytest.mark.slow
def test_a_read_only_home_exits_5_with_one_line(read_only_home, tmp_path):
    archive = write_archive(tmp_path / "a.tar.gz", make_members())
    result = _run_cli(read_only_home, archive)
    assert result.returncode == 5, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("imdb-pipeline:")]
    assert errors == [errors[0]] and "read-only file system" in errors[0]
    assert "Traceback" not in result.stderr
    assert json.loads((read_only_home / "last_run.json").read_text()) == {"previous": True}


@pytest.mark.slow
def test_a_corrupt_metadata_store_exits_5_and_never_shows_the_previous_run(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    (home / "metadata.sqlite").write_bytes(b"SQLite format 3\x00" + os.urandom(8192))
    previous = {"log_file": "old.log", "succeeded": True, "seconds": 176.0, "profile": "smoke",
                "components": [], "pushed_model": "somewhere"}
    (home / "last_run.json").write_text(json.dumps(previous))
    result = _run_cli(home, write_archive(tmp_path / "a.tar.gz", make_members()))
    assert result.returncode == 5, result.stdout + result.stderr
    assert "Run finished" not in result.stdout and "pushed model: somewhere" not in result.stdout
    assert "still holds the previous run" in result.stdout
    assert "mv " in result.stderr and "metadata.sqlite.broken" in result.stderr
    assert "CREATE TABLE" not in result.stderr and "Traceback" not in result.stderr
    assert json.loads((home / "last_run.json").read_text()) == previous


@pytest.mark.slow
def test_home_that_is_a_file_is_refused_with_one_line(tmp_path):
    home = tmp_path / "home"
    home.write_text("not a directory")
    result = _run_cli(home, write_archive(tmp_path / "a.tar.gz", make_members()))
    assert result.returncode == 2 and "is a file, not a directory" in result.stderr
    assert "Traceback" not in result.stderr


def _saved_model_dir(path: Path) -> Path:
    (path / "variables").mkdir(parents=True)
    (path / "variables" / "variables.index").write_bytes(b"index")
    (path / "saved_model.pb").write_bytes(b"graph")
    return path


def test_pushes_are_whole_and_versions_only_increase(tmp_path):
    model = _saved_model_dir(tmp_path / "model")
    base = tmp_path / "serving" / "imdb_sentiment"
    first = atomic_pusher.publish_model(str(model), str(base))
    second = atomic_pusher.publish_model(str(model), str(base))  # same second: still newer
    assert int(Path(second).name) == int(Path(first).name) + 1
    assert sorted(p.name for p in base.iterdir()) == sorted([Path(first).name, Path(second).name])
    assert (Path(second) / "saved_model.pb").read_bytes() == b"graph"


def test_two_pushers_racing_get_two_whole_versions(tmp_path, monkeypatch):
    monkeypatch.setattr(atomic_pusher.time, "time", lambda: 1_800_000_000)  # same second
    models = [_saved_model_dir(tmp_path / f"model{i}") for i in range(2)]
    base = str(tmp_path / "serving")
    results, errors = [], []
    barrier = threading.Barrier(2)

    def push(model):
        barrier.wait()
        try:
            results.append(atomic_pusher.publish_model(str(model), base))
        except Exception as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=push, args=(m,)) for m in models]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors and len(set(results)) == 2
    for version in results:
        assert (Path(version) / "saved_model.pb").read_bytes() == b"graph"
        assert (Path(version) / "variables" / "variables.index").exists()
    assert sorted(p.name for p in Path(base).iterdir()) == ["1800000000", "1800000001"]


def test_a_failed_push_leaves_no_staging_and_a_dead_pushers_staging_is_removed(tmp_path, monkeypatch):
    base = tmp_path / "serving"
    model = _saved_model_dir(tmp_path / "model")

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(atomic_pusher.io_utils, "copy_file", crash)  # dies mid-copy
    with pytest.raises(OSError, match="disk full"):
        atomic_pusher.publish_model(str(model), str(base))
    assert list(base.iterdir()) == []  # no version for TF Serving, no staging left behind
    monkeypatch.undo()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    now = time.time()
    here, elsewhere = socket.gethostname(), "another-pod-7f9c"

    def staging(name: str, lease=None) -> None:
        (base / f".staging-{name}").mkdir()
        if lease is not None:
            (base / f".staging-{name}.lease").write_text(json.dumps(lease))

    staging("dead-here", {"host": here, "pid": dead.pid, "heartbeat": now})
    staging("live-here", {"host": here, "pid": os.getpid(), "heartbeat": now})
    # Another pod's pid means nothing here: its heartbeat decides.
    staging("live-elsewhere", {"host": elsewhere, "pid": dead.pid, "heartbeat": now - 60})
    staging("stale-elsewhere", {"host": elsewhere, "pid": os.getpid(),
                                "heartbeat": now - atomic_pusher.STALE_AFTER_SECONDS - 1})
    staging("no-lease")
    version = atomic_pusher.publish_model(str(_saved_model_dir(tmp_path / "ok")), str(base))
    assert sorted(p.name for p in base.iterdir()) == sorted(
        [Path(version).name, ".staging-live-here", ".staging-live-here.lease",
         ".staging-live-elsewhere", ".staging-live-elsewhere.lease"])
