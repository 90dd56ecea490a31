"""The whole pipeline, run for real by the CLI on a ~4% sample of the real reviews.

The archive is the real training archive with one review in ten moved to an
official-layout `test/` folder, so the test split's evaluation runs too (on
reviews no model trained on), and the runs distil through the unlabelled reviews
of `train/unsup/` when the shared archive that has them is present. One run (module fixture) is shared by the
assertions; two more runs against the same home check the cache and the
not-blessed path. Signatures are
checked with TensorFlow's own loader and `saved_model_cli`: TF Serving
itself cannot be installed on these machines, so no model server is started.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Dict

import numpy as np
import pytest
import tensorflow as tf

from imdb_sentiment.reporting import serving_client
from imdb_sentiment.pipeline.config import profile_config
from conftest import real_data_path
from conftest import run_cli as run_imdb_pipeline

pytestmark = [pytest.mark.slow, pytest.mark.long]

REVIEWS = ["An absolutely brilliant film, I loved it.", "The worst movie ever made. A waste.",
           "", "   ", "x", "<br /><br />", "素晴らしい映画 🎬🍿", "word " * 20000]


_REVIEW_RE = re.compile(r"^aclImdb/train/(pos|neg)/(\d+)_\d+\.txt$")
_data: Dict[str, Path] = {}


def archive_with_test_split(source: Path, out: Path) -> Path:
    """`source` with every tenth training review moved under `test/`, as the official layout."""
    with tarfile.open(source, "r:gz") as reader, tarfile.open(out, "w:gz", compresslevel=1) as writer:
        for member in reader:
            match = _REVIEW_RE.match(member.name)
            data = reader.extractfile(member) if member.isfile() else None
            if match and int(match.group(2)) % 10 == 0:
                member.name = member.name.replace("aclImdb/train/", "aclImdb/test/", 1)
            writer.addfile(member, data)
    return out


def run_cli(home: Path, *extra: str) -> subprocess.CompletedProcess:
    """A smoke run that distils through the unlabelled reviews, when the archive has them."""
    return run_imdb_pipeline("run", "--profile", "smoke", "--data", str(_data["archive"]),
                            "--home", str(home), "--set", "trainer.distill_epochs=1",
                            "--set", "trainer.epochs=2", *extra, timeout=1800)


def source_archive() -> Path:
    """The training archive with `train/unsup/` beside the plain one, else the plain one."""
    plain = real_data_path()
    with_unsup = plain.with_name("aclImdb_train_unsup.tar.gz")
    return with_unsup if with_unsup.exists() else plain


@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
    _data["archive"] = archive_with_test_split(
        source_archive(), tmp_path_factory.mktemp("data") / "aclImdb_train_and_test.tar.gz")
    home = tmp_path_factory.mktemp("pipeline_home")
    result = run_cli(home)
    assert result.returncode == 0, result.stdout + result.stderr
    return home, result, json.loads((home / "last_run.json").read_text())


def test_every_component_completed_and_the_summary_says_so(first_run):
    home, result, record = first_run
    statuses = {c["component"]: c["status"] for c in record["components"]}
    assert set(statuses.values()) == {"complete"}, statuses
    assert len(statuses) == 14 and {"TeacherLabels", "ModelCardGenerator"} <= set(statuses)
    assert all(c["seconds"] is not None for c in record["components"])
    for component in statuses:  # live progress named every component
        assert f"] {component} ..." in result.stdout
    assert "Trainer: " not in result.stdout  # TF/TFX log lines stay in the log file
    assert Path(record["log_file"]).exists() and "Component Trainer is finished" in Path(
        record["log_file"]).read_text()
    assert record["blessed"] is True and "passed" in record["blessing_reason"]
    assert "no served model" in record["blessing_reason"]  # first run: nothing served yet
    for split in ("eval", "report", "test"):  # both models, each split on its own
        for metrics in (record["metrics"], record["baseline_metrics"]):
            overall = metrics[split]["overall"]
            assert overall["example_count"] > 50
            for metric in ("binary_accuracy", "auc", "precision", "recall"):
                assert 0.0 <= overall[metric] <= 1.0
            assert any(name.startswith("rating=") for name in metrics[split])
            assert any(name.startswith("length_bucket=q4") for name in metrics[split])
        accuracy = record["accuracy"][split]
        assert accuracy["reviews"] == record["ingestion"]["splits"][split]["reviews"]
        assert accuracy["difference"]["value"] == pytest.approx(
            accuracy["candidate"]["value"] - accuracy["linear_baseline"]["value"], abs=2e-4)
        low, high = accuracy["candidate"]["ci95"]
        assert low <= accuracy["candidate"]["value"] <= high
    assert record["metrics"]["eval"]["overall"]["example_count"] != record["metrics"]["report"][
        "overall"]["example_count"]  # not one mixed evaluation
    assert "report (decides nothing)" in result.stdout  # the summary table names each split's role
    assert "test (the archive's official test split; decides nothing)" in result.stdout  # auto: test/
    assert record["config"]["evaluation"]["test_split"] == "on"
    assert record["baseline_training"]["best_epoch"]["val_accuracy"] > 0.6  # n-grams learn fast
    assert record["ingestion"]["grouped_by"] == "movie"
    assert record["machine"]["cores"] >= 1 and record["machine"]["cpu"]
    assert record["ingestion"]["splits"]["train"]["reviews"] > 500
    checks = record["data_checks"]  # DataGate's text profile comparisons
    assert checks["train"]["drift_from_reference"]["vocabulary_jsd"] < 0.1
    assert checks["eval"]["drift_from_train"]["length_jsd"] < 0.1
    assert record["training"]["epochs"]
    teacher = record["teacher"]
    if "unsup" in record["ingestion"]["splits"]:  # distilled: the teacher labelled them first
        assert teacher["unlabelled_reviews"] == record["ingestion"]["splits"]["unsup"]["reviews"] > 100
        assert 0.6 < teacher["eval_accuracy"] <= 1.0
        assert [e["phase"] for e in record["training"]["epochs"]] == ["distill", "labelled"]
        assert "distillation: the NB-LR teacher" in result.stdout
    else:
        assert "no train/unsup/" in teacher["skipped"] and "distillation skipped" in result.stdout
    for split in ("eval", "report"):  # the paired difference, with its interval, in words too
        difference = record["accuracy"][split]["difference"]
        low, high = difference["ci95"]
        assert low <= difference["value"] <= high and high - low < 0.5
        assert f"linear baseline on {split}:" in result.stdout


def test_the_run_report_shows_every_section_drawn_from_the_run(first_run):
    from imdb_sentiment.reporting import run_report

    home, result, record = first_run
    page_path = home / "report" / "index.html"
    assert f"report: {page_path}" in result.stdout
    page = page_path.read_text()
    for anchor, title, _ in run_report.SECTIONS:
        assert f'<section id="{anchor}">' in page and title in page
    assert "Not available" not in page and "could not be drawn" not in page, page
    images = re.findall(r"<img src=['\"]([^'\"]+)['\"]", page)
    for name in ("training_curves.png", "evaluation_eval.png", "evaluation_test.png",
                 "slices_test.png", "data_distributions.png", "component_seconds.png"):
        assert name in images
    for name in images:
        image = page_path.parent / name
        assert image.stat().st_size > 5000, name  # a drawn plot, not an empty file
    mistakes = [name for name in images if name.startswith("mistake_")]
    assert 1 <= len(mistakes) <= run_report.MISTAKES_SHOWN
    # TFMA computed the curves the page draws, for both models and every split.
    plots = run_report.read_plots(run_report.RunOutputs(home).uri("Evaluator", "evaluation"))
    assert set(plots) == {"eval", "report", "test"}
    for split in plots.values():
        assert set(split) == {"candidate", "linear_baseline"}
        assert all(len(kinds["pr_curve"]) > 10 and kinds["calibration"] for kinds in split.values())
    # TFDV's own statistics view sits beside the page.
    assert "facets-overview" in (page_path.parent / "statistics.html").read_text()


def test_pushed_model_is_in_tf_serving_layout_and_scores_reviews(first_run):
    _, _, record = first_run
    pushed = Path(record["pushed_model"])
    assert pushed.parent.name == "imdb_sentiment" and pushed.name.isdigit()
    assert (pushed / "saved_model.pb").exists() and (pushed / "variables").is_dir()
    assert not [p for p in pushed.parent.iterdir() if p.name.startswith(".")]  # no staging left
    model = tf.saved_model.load(str(pushed))
    examples = serving_client.serialize_reviews(REVIEWS)
    probability = model.signatures["serving_default"](examples=examples)["probability"].numpy()
    assert probability.shape == (len(REVIEWS),)
    assert np.all(np.isfinite(probability)) and np.all((probability >= 0) & (probability <= 1))


_HUGE_REQUEST_SCRIPT = """
import resource, sys, time
import tensorflow as tf
from imdb_sentiment.reporting import serving_client
serve = tf.saved_model.load(sys.argv[1]).signatures["serving_default"]
normal = "A fine film with a weak ending, but the cast carries it. " * 20
serve(examples=serving_client.serialize_reviews([normal]))
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
huge = serving_client.serialize_reviews(["a dull, dull and endless film. " * 1_700_000])
start = time.perf_counter()
probability = float(serve(examples=huge)["probability"].numpy()[0])
seconds = time.perf_counter() - start
print(before, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, seconds, probability)
"""


def test_a_fifty_megabyte_request_costs_the_served_model_bounded_memory_and_time(first_run):
    """The served graph cuts the text before tokenizing it (trainer/preprocessing.bound_text)."""
    _, _, record = first_run
    result = subprocess.run([sys.executable, "-c", _HUGE_REQUEST_SCRIPT, record["pushed_model"]],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    before_kib, after_kib, seconds, probability = map(float, result.stdout.split()[-4:])
    assert 0.0 <= probability <= 1.0
    assert after_kib < 1.5 * before_kib, (before_kib, after_kib)
    assert seconds < 10, seconds


def test_pushed_model_holds_no_machine_local_path(first_run):
    """TF Transform names its vocabulary table after a temp path; export scrubs it."""
    home, _, record = first_run
    pushed = Path(record["pushed_model"])
    for path in pushed.rglob("*"):
        # lineage.json records the run's locations on purpose: they lead back to it.
        if path.is_file() and path.name != "lineage.json":
            data = path.read_bytes()
            assert str(home).encode() not in data and b"tftransform_tmp" not in data, path
    assert b"path-" in (pushed / "saved_model.pb").read_bytes()  # the digest that replaced it
    fingerprint = tf.saved_model.experimental.read_fingerprint(str(pushed))
    assert fingerprint.saved_model_checksum  # rewritten after the scrub, still readable


def test_pushed_model_carries_tf_serving_warmup_requests_that_replay(first_run):
    """TF Serving replays assets.extra/tf_serving_warmup_requests at load (trainer/warmup.py)."""
    from imdb_sentiment.trainer import warmup

    _, _, record = first_run
    pushed = Path(record["pushed_model"])
    records = warmup.read_warmup_requests(str(pushed))  # TF Serving's own PredictionLog proto
    assert 0 < len(records) <= warmup.MAX_RECORDS
    assert {r.WhichOneof("log_type") for r in records} == {"predict_log", "classify_log"}
    counts = warmup.replay(str(pushed))
    assert counts == {"serving_default": 2, "explain": 2, "classify": 2}


def test_pushed_model_leads_back_to_its_data_code_and_config_on_its_own(first_run):
    """Only the pushed directory is read: no MLMD, no pipeline home."""
    import hashlib

    from imdb_sentiment.components import model_card

    _, _, record = first_run
    extra = Path(record["pushed_model"]) / "assets.extra"
    lineage = json.loads((extra / "lineage.json").read_text())
    assert lineage["data"]["sha256"] == hashlib.sha256(_data["archive"].read_bytes()).hexdigest()
    assert lineage["data"]["splits"]["train"]["reviews"] > 0
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).resolve().parents[1],
                          capture_output=True, text=True)
    if head.returncode == 0:  # a checkout (CI clones one)
        assert lineage["code"]["commit"] == head.stdout.strip()
    smoke = json.loads(profile_config("smoke").to_json())
    smoke["trainer"].update(distill_epochs=1, epochs=2)  # run_cli's --set
    assert lineage["config"]["trainer"] == smoke["trainer"] and lineage["config"]["profile"] == "smoke"
    assert lineage["training"]["epochs"] and lineage["training"]["device"]["cpu"]
    assert lineage["evaluation"]["accuracy"]["eval"]["candidate"]["value"] == (
        record["accuracy"]["eval"]["candidate"]["value"])
    assert any(k.startswith("length_bucket=") for k in lineage["evaluation"]["metrics"]["eval"])
    assert lineage["run"]["mlmd_artifact_ids"]["model"] > 0
    card = json.loads((extra / "model_card.json").read_text())
    assert card["schema_version"] == model_card.SCHEMA_VERSION
    assert "<table>" in (extra / "model_card.html").read_text()
    described = run_imdb_pipeline("describe", "--model", str(Path(record["pushed_model"]).parent),
                                 timeout=300)
    assert described.returncode == 0, described.stderr
    assert lineage["data"]["sha256"] in described.stdout and "accuracy on eval" in described.stdout


def test_explain_and_classify_agree_with_serving_default(first_run):
    _, _, record = first_run
    model = tf.saved_model.load(record["pushed_model"])
    examples = serving_client.serialize_reviews(REVIEWS)
    reference = model.signatures["serving_default"](examples=examples)["probability"].numpy()
    explained = model.signatures["explain"](text=tf.constant(REVIEWS))
    np.testing.assert_allclose(explained["probability"].numpy(), reference, atol=1e-5)
    attention, tokens = explained["attention"].numpy(), explained["tokens"].numpy()
    np.testing.assert_allclose(attention.sum(axis=1), 1.0, atol=1e-4)
    assert np.all(attention[tokens == b""] == 0.0)  # padding gets no weight
    assert [t for t in tokens[0] if t][:3] == [b"an", b"absolutely", b"brilliant"]
    classified = model.signatures["classify"](inputs=examples)
    np.testing.assert_allclose(classified["scores"].numpy()[:, 1], reference, atol=1e-5)
    assert classified["classes"].numpy()[0].tolist() == [b"negative", b"positive"]
    transformed = model.signatures["transform_features"](examples=examples)
    assert transformed["token_ids"].shape[0] == len(REVIEWS)


def test_signatures_run_the_folded_network_which_equals_the_trained_keras_model(first_run):
    """The export folds the embedding into the LSTM (`serving_folded_lstm`, the
    default); the SavedModel also keeps the Keras classifier it was folded from,
    which Keras' loader revives where this package is imported."""
    import tf_keras

    import imdb_sentiment.trainer.model  # noqa: F401 - registers the custom layers

    _, _, record = first_run
    model = tf.saved_model.load(record["pushed_model"])
    classifier = tf_keras.models.load_model(record["pushed_model"], compile=False)
    examples = serving_client.serialize_reviews(REVIEWS)
    ids = model.signatures["transform_features"](examples=examples)["token_ids"]
    folded_probability, attention = model.inference_network(ids)
    units = profile_config("smoke").trainer.lstm_units
    assert model.inference_network.forward.input_table.shape[1] == 4 * units
    np.testing.assert_allclose(folded_probability.numpy(), classifier(ids, training=False).numpy()[:, 0],
                               atol=1e-5)
    served = model.signatures["serving_default"](examples=examples)["probability"].numpy()
    np.testing.assert_allclose(served, folded_probability.numpy(), atol=1e-6)


def test_saved_model_cli_sees_four_signatures_and_the_classify_method(first_run):
    _, _, record = first_run
    cli = Path(sys.executable).with_name("saved_model_cli")
    shown = subprocess.run([str(cli), "show", "--dir", record["pushed_model"], "--all"],
                           capture_output=True, text=True, timeout=300)
    assert shown.returncode == 0, shown.stderr
    for signature in ("serving_default", "transform_features", "explain", "classify"):
        assert f"signature_def['{signature}']" in shown.stdout
    classify_block = shown.stdout.split("signature_def['classify']")[1].split("signature_def[")[0]
    assert "Method name is: tensorflow/serving/classify" in classify_block
    assert "inputs['inputs']" in classify_block and "outputs['scores']" in classify_block


def test_model_loads_and_scores_with_no_gpu_visible(first_run):
    """The exported graph must not need a GPU kernel (e.g. CudnnRNN) to run."""
    _, _, record = first_run
    script = ("import sys, tensorflow as tf\n"
              "assert not tf.config.list_physical_devices('GPU')\n"
              "from imdb_sentiment.reporting import serving_client as c\n"
              "m = c.load(sys.argv[1])\n"
              "p = c.predict(m, ['great film', 'awful film'])\n"
              "assert len(p) == 2 and all(0 <= x <= 1 for x in p), p\n"
              "print('ok')\n")
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "-1"}
    result = subprocess.run([sys.executable, "-c", script, record["pushed_model"]], env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0 and result.stdout.strip().endswith("ok"), result.stderr[-2000:]


def test_second_run_reuses_the_cache_and_pushes_a_newer_version(first_run):
    home, _, first = first_run
    result = run_cli(home)
    assert result.returncode == 0, result.stdout + result.stderr
    record = json.loads((home / "last_run.json").read_text())
    statuses = {c["component"]: c["status"] for c in record["components"]}
    for component in ("ImdbExampleGen", "StatisticsGen", "DataGate", "Transform", "Trainer",
                      "BaselineTrainer"):
        assert statuses[component] == "cached", statuses
    assert int(Path(record["pushed_model"]).name) > int(Path(first["pushed_model"]).name)
    # The served model is the one the first run pushed: the same model, so no regression.
    # The gate took the candidate's accuracy from TFMA and scored the served copy itself
    # through serving_default: on the same model the two must agree (TFMA's is rounded to 4).
    change = re.search(r"change ([+-]\d\.\d{4})", record["blessing_reason"])
    assert change and abs(float(change.group(1))) <= 1e-4, record["blessing_reason"]
    statuses_after_gate = [statuses[c] for c in ("ServedModelGate", "ModelCardGenerator", "Pusher")]
    assert statuses_after_gate == ["complete"] * 3, statuses  # a new served version: rerun
    # The report of a run made of cached executions still finds every artifact of this run.
    page = (home / "report" / "index.html").read_text()
    assert "Not available" not in page and "could not be drawn" not in page


def test_model_below_the_accuracy_floor_is_not_pushed(first_run):
    home, _, _ = first_run
    serving = home / "serving" / "imdb_sentiment"
    before = sorted(p.name for p in serving.iterdir())
    result = run_cli(home, "--set", "evaluation.accuracy_lower_bound=0.999")
    assert result.returncode == 3, result.stdout + result.stderr
    assert "not blessed" in result.stderr and "binary_accuracy" in result.stderr
    assert "eval split" in result.stderr  # the gate reads eval, never report
    record = json.loads((home / "last_run.json").read_text())
    assert record["blessed"] is False and record["pushed_model"] is None
    assert sorted(p.name for p in serving.iterdir()) == before  # previous model untouched


from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402

_loaded = {}


def _model(path: str):
    if path not in _loaded:
        _loaded[path] = tf.saved_model.load(path)
    return _loaded[path]


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.text(max_size=2000), min_size=1, max_size=6))
def test_any_unicode_review_gets_a_finite_probability_from_both_signatures(first_run, reviews):
    model = _model(first_run[2]["pushed_model"])
    served = model.signatures["serving_default"](
        examples=serving_client.serialize_reviews(reviews))["probability"].numpy()
    explained = model.signatures["explain"](text=tf.constant(reviews))["probability"].numpy()
    assert served.shape == explained.shape == (len(reviews),)
    assert np.all(np.isfinite(served)) and np.all((served >= 0) & (served <= 1))
    np.testing.assert_allclose(served, explained, atol=1e-5)
