"""Failure handling: bad data at the CLI, the data gate, atomic pushes, the run lock."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from tensorflow_metadata.proto.v0 import anomalies_pb2, statistics_pb2

from imdb_sentiment.components import atomic_pusher, data_gate
from imdb_sentiment.pipeline.local_runner import RunLockedError, home_lock
from conftest import make_members, write_archive


def run_cli(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "imdb_sentiment.pipeline.cli", *args],
                          capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("case", ["truncated", "missing"])
def test_bad_archive_is_one_clear_line_exit_2_and_nothing_pushed(tmp_path, case):
    good = write_archive(tmp_path / "good.tar.gz", make_members(count=40))
    bad = tmp_path / "bad.tar.gz"
    if case == "truncated":
        bad.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    home = tmp_path / "home"
    result = run_cli("run", "--profile", "smoke", "--data", str(bad), "--home", str(home))
    assert result.returncode == 2, result.stdout + result.stderr
    assert "bad input data" in result.stderr and "bad.tar.gz" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    record = json.loads((home / "last_run.json").read_text())
    assert record["succeeded"] is False and record["pushed_model"] is None
    assert not (home / "serving").exists() or not any((home / "serving").rglob("saved_model.pb"))
    assert "Traceback" in Path(record["log_file"]).read_text()  # the details are in the log


def _write_anomalies(uri: Path, split: str, features: dict) -> None:
    anomalies = anomalies_pb2.Anomalies()
    for name, description in features.items():
        anomalies.anomaly_info[name].short_description = description
    (uri / f"Split-{split}").mkdir(parents=True)
    (uri / f"Split-{split}" / data_gate.ANOMALIES_FILE).write_bytes(anomalies.SerializeToString())


def _write_label_stats(uri: Path, split: str, low: float, high: float) -> None:
    statistics = statistics_pb2.DatasetFeatureStatisticsList()
    feature = statistics.datasets.add().features.add()
    feature.path.step.append("label")
    feature.num_stats.min, feature.num_stats.max = low, high
    (uri / f"Split-{split}").mkdir(parents=True)
    (uri / f"Split-{split}" / data_gate.STATISTICS_FILE).write_bytes(statistics.SerializeToString())


def test_data_gate_names_each_anomaly(tmp_path):
    anomalies, stats = tmp_path / "anomalies", tmp_path / "stats"
    _write_anomalies(anomalies, "train", {"label": "Out-of-range values"})
    _write_anomalies(anomalies, "eval", {"text": "Column dropped"})
    _write_label_stats(stats, "train", 0, 2)
    with pytest.raises(data_gate.DataValidationError) as error:
        data_gate.check(str(anomalies), str(stats), ["train", "eval"], "label")
    assert "train: feature 'label': Out-of-range values" in str(error.value)
    assert "eval: feature 'text': Column dropped" in str(error.value)


def test_data_gate_refuses_a_single_class_and_passes_clean_data(tmp_path):
    anomalies, stats = tmp_path / "anomalies", tmp_path / "stats"
    _write_anomalies(anomalies, "train", {})
    _write_label_stats(stats, "train", 1, 1)
    with pytest.raises(data_gate.DataValidationError, match="one class only"):
        data_gate.check(str(anomalies), str(stats), ["train"], "label")
    clean_stats = tmp_path / "clean"
    _write_label_stats(clean_stats, "train", 0, 1)
    data_gate.check(str(anomalies), str(clean_stats), ["train"], "label")


def _saved_model(path: Path) -> Path:
    (path / "variables").mkdir(parents=True)
    (path / "variables" / "variables.index").write_bytes(b"index")
    (path / "saved_model.pb").write_bytes(b"graph")
    return path


def test_pushes_are_whole_and_versions_only_increase(tmp_path):
    model = _saved_model(tmp_path / "model")
    base = tmp_path / "serving" / "imdb_sentiment"
    first = atomic_pusher.publish_model(str(model), str(base))
    second = atomic_pusher.publish_model(str(model), str(base))  # same second: still newer
    assert int(Path(second).name) == int(Path(first).name) + 1
    assert sorted(p.name for p in base.iterdir()) == sorted([Path(first).name, Path(second).name])
    assert (Path(second) / "saved_model.pb").read_bytes() == b"graph"


def test_an_interrupted_push_leaves_no_loadable_version(tmp_path, monkeypatch):
    model = _saved_model(tmp_path / "model")
    base = tmp_path / "serving"

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(atomic_pusher.io_utils, "copy_file", crash)  # dies before saved_model.pb
    with pytest.raises(OSError):
        atomic_pusher.publish_model(str(model), str(base))
    assert not [p for p in base.iterdir() if p.name.isdigit()]  # TF Serving sees nothing
    monkeypatch.undo()
    published = atomic_pusher.publish_model(str(model), str(base))  # the next push cleans up
    assert [p.name for p in base.iterdir()] == [Path(published).name]


def test_a_second_run_on_the_same_home_refuses_with_exit_4(tmp_path):
    home = tmp_path / "home"
    with home_lock(home):
        with pytest.raises(RunLockedError):
            with home_lock(home):
                pass
        result = run_cli("run", "--profile", "smoke", "--data", str(tmp_path / "x.tar.gz"),
                         "--home", str(home), timeout=300)
    assert result.returncode == 4, result.stderr
    assert "in use by a running pipeline" in result.stderr and f"pid {os.getpid()}" in result.stderr
    with home_lock(home):  # released: usable again
        pass
