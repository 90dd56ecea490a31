"""Failure handling: bad data at the CLI, the data gate, atomic pushes, the run lock."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from tensorflow_metadata.proto.v0 import anomalies_pb2, statistics_pb2

from imdb_sentiment.components import data_gate, text_profile
from imdb_sentiment.local.runner import RunLockedError, home_lock
from conftest import make_members, run_cli, write_archive


@pytest.mark.parametrize("case", ["truncated", "missing"])
@pytest.mark.slow
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
    if case == "missing":  # found before the pipeline starts: nothing ran, nothing is recorded
        assert "no such file or directory" in result.stderr
        assert not (home / "last_run.json").exists()
        return
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


def _reviews(count: int, seed: int) -> list:
    """Movie-review-like texts: 50-400 words from a fixed Zipf-ish vocabulary."""
    import random

    rng = random.Random(seed)
    vocabulary = ["the", "a", "and", "of", "to", "is", "film", "movie", "it", "this", "was",
                  "great", "bad", "acting", "story", "plot", "good", "worst", "best", "i"]
    vocabulary += [f"word{i}" for i in range(300)]
    weights = [1.0 / (rank + 1) for rank in range(len(vocabulary))]
    return [" ".join(rng.choices(vocabulary, weights, k=rng.randint(50, 400)))
            for _ in range(count)]


LIMITS = data_gate.TextLimits(max_empty_fraction=0.01, max_length_drift=0.1,
                              max_vocabulary_drift=0.1)


def test_jensen_shannon_is_zero_for_equal_one_for_disjoint_and_symmetric():
    assert text_profile.jensen_shannon([0.2, 0.8], [0.2, 0.8]) == pytest.approx(0.0)
    assert text_profile.jensen_shannon([1, 0], [0, 1]) == pytest.approx(1.0)
    p, q = [0.1, 0.6, 0.3], [0.3, 0.3, 0.4]
    assert text_profile.jensen_shannon(p, q) == pytest.approx(text_profile.jensen_shannon(q, p))
    assert text_profile.words("It's GREAT.<br />Truly") == ["it's", "great", "truly"]
    for text in ("It's GREAT.<br />Truly", "<br /><br /> -- ", "naïve café, 素晴らしい"):
        assert text_profile.word_count(text) == len(text_profile.words(text))


def test_text_checks_pass_same_distribution_and_name_each_shift():
    profile = text_profile.TextProfile.from_texts
    reference = profile(_reviews(2000, seed=1))
    train, evaluation = _reviews(1000, seed=2), _reviews(200, seed=3)
    problems, report = data_gate.text_problems(
        {"train": profile(train), "eval": profile(evaluation)}, reference, LIMITS)
    assert problems == [], problems
    assert report["train"]["drift_from_reference"]["length_jsd"] < 0.02
    assert report["eval"]["drift_from_train"]["vocabulary_jsd"] < 0.02

    shifted = {
        "length": [" ".join(t.split()[:8]) for t in train],  # every review cut to 8 words
        "vocabulary": [t[::-1] for t in train],  # other words, same lengths
        "empty": train[:-50] + [""] * 50,
    }
    expected = {"length": "train: review lengths drifted from the reference profile",
                "vocabulary": "train: vocabulary drifted from the reference profile",
                "empty": "train: 50 of 1000 reviews are empty"}
    for case, texts in shifted.items():
        problems, _ = data_gate.text_problems({"train": profile(texts)}, reference, LIMITS)
        assert len(problems) == 1 and problems[0].startswith(expected[case]), (case, problems)
    # eval is compared with train even without a reference
    problems, _ = data_gate.text_problems(
        {"train": profile(train), "eval": profile([t[::-1] for t in evaluation])}, None, LIMITS)
    assert problems and problems[0].startswith("eval: vocabulary drifted from the train split")


@pytest.mark.slow
def test_reference_profile_shipped_with_the_schema_matches_the_imdb_train_split(tmp_path):
    """The curated reference is what `text_profile` makes of the real data (when present)."""
    from conftest import real_data_path
    from imdb_sentiment.pipeline.config import ValidationConfig

    shipped = text_profile.TextProfile.from_json(Path(ValidationConfig().reference_profile).read_text())
    assert shipped.reviews > 19000 and shipped.median_words > 100
    rebuilt = tmp_path / "profile.json"
    assert text_profile.main(["--data", str(real_data_path()), "--out", str(rebuilt)]) == 0
    assert text_profile.TextProfile.from_json(rebuilt.read_text()) == shipped


@pytest.mark.slow
def test_anomalous_data_stops_the_run_before_transform_with_exit_2(tmp_path):
    """Through the real CLI: one class only, empty reviews, and a foreign vocabulary."""
    members = {"aclImdb/README": b"fixture"}
    for i, text in enumerate(_reviews(60, seed=4)):
        members[f"aclImdb/train/pos/{i}_8.txt"] = (b"" if i % 10 == 0 else text.encode())
    archive = write_archive(tmp_path / "anomalous.tar.gz", members)
    home = tmp_path / "home"
    result = run_cli("run", "--profile", "smoke", "--data", str(archive), "--home", str(home),
                     "--set", "ingestion.sample_percent=100")  # every split needs a few reviews
    assert result.returncode == 2, result.stdout + result.stderr
    message = result.stderr
    assert "bad input data: data validation failed" in message and "Traceback" not in message
    assert "train: feature 'label' has one class only (1)" in message
    assert "reviews are empty" in message
    assert "vocabulary drifted from the reference profile" in message
    record = json.loads((home / "last_run.json").read_text())
    statuses = {c["component"]: c["status"] for c in record["components"]}
    assert statuses["DataGate"] == "failed", statuses
    assert statuses["Transform"] != "complete" and statuses["Trainer"] != "complete"
    assert record["pushed_model"] is None and "one class only" in record["error"]
    log = Path(record["log_file"]).read_text()
    report = json.loads(log.split("DataGate text report: ")[1].splitlines()[0])
    assert report["passed"] is False and report["splits"]["train"]["empty"] > 0


def test_path_scrubbing_keeps_names_unique_and_leaves_other_names_alone():
    from imdb_sentiment.trainer.signatures import _scrub_paths

    name = b"hash_table_tf.Tensor(b'%s', shape=(), dtype=string)_-2_-1_load_1_2"
    first = _scrub_paths(name % b"/home/me/tfx/Transform/transform_graph/7/.temp_path/tokens")
    second = _scrub_paths(name % b"/home/me/tfx/Transform/transform_graph/8/.temp_path/tokens")
    remote = _scrub_paths(name % b"gs://bucket/tfx/tokens")
    assert first != second and b"/home/me" not in first + second and b"gs://" not in remote
    assert first.endswith(b"/tokens', shape=(), dtype=string)_-2_-1_load_1_2")
    assert _scrub_paths(b"plain_table_name") == b"plain_table_name"


@pytest.mark.slow
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


def test_repository_holds_no_credentials_or_paths_of_this_machine():
    import re

    from conftest import REPO_ROOT

    files = subprocess.run(["git", "ls-files"], cwd=REPO_ROOT, capture_output=True, text=True,
                           check=True).stdout.split()
    assert len(files) > 30
    # The checkout, its parent and the home directory; a parent like /tmp or /work
    # (one component) names no machine and appears in any .gitignore.
    local = {str(REPO_ROOT), str(Path.home()) + "/"} - {"/"}
    if len(REPO_ROOT.parent.parts) > 2:
        local.add(str(REPO_ROOT.parent))
    secret = re.compile(r"AKIA[0-9A-Z]{16}|-----BEGIN [A-Z ]*PRIVATE KEY|gh[pousr]_[A-Za-z0-9]{30,}"
                        r"|xox[baprs]-[A-Za-z0-9-]{10,}|(password|passwd|secret|token)\s*[:=]\s*['\"][^'\"]{6,}")
    for name in files:
        path = REPO_ROOT / name
        if not path.is_file() or path.suffix in {".png"}:
            continue
        text = path.read_text(errors="replace")
        for prefix in local:
            assert prefix not in text, (name, prefix)
        assert not secret.search(text), (name, secret.search(text).group(0))


def test_local_cpu_threads_pick_one_thread_per_op_only_on_two_cores_and_reject_typos():
    from imdb_sentiment.local.runner import cpu_thread_setting

    assert cpu_thread_setting("auto", 2) == (1, 2)
    assert cpu_thread_setting("auto", 1) == (1, 2)
    assert cpu_thread_setting("auto", 16) is None
    assert cpu_thread_setting("default", 2) is None
    with pytest.raises(ValueError, match="local_cpu_threads"):
        cpu_thread_setting("fast", 2)
