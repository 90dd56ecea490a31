"""ServedModelGate: the no-regression gate against the model being served.

Real SavedModels (tiny, written here) and real Examples artifacts on disk; the
executor is called as TFX calls it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import tensorflow as tf
from tfx.types import standard_artifacts

from imdb_sentiment.components import served_model_gate, serving_layout
from imdb_sentiment.components.imdb_example_gen import review_to_example
from imdb_sentiment.components.imdb_data import Review
from imdb_sentiment.reporting import serving_client
from conftest import write_tfma_metrics

POSITIVE_WORD = "good"


def write_model(path: Path, rule: str) -> Path:
    """A SavedModel whose serving_default says P(positive) by a fixed rule."""

    class Model(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
        def serve(self, examples):
            text = tf.io.parse_example(examples, {"text": tf.io.FixedLenFeature([], tf.string)})["text"]
            says_good = tf.strings.regex_full_match(text, f".*{POSITIVE_WORD}.*")
            probability = tf.where(says_good, 0.9, 0.1) if rule == "right" else tf.fill(
                tf.shape(text), 0.9 if rule == "always positive" else 0.1)
            return {"probability": probability}

    model = Model()
    tf.saved_model.save(model, str(path), signatures={"serving_default": model.serve})
    return path


def examples_artifact(tmp_path: Path) -> standard_artifacts.Examples:
    """An eval split of 10 reviews: 5 positive ("good"), 5 negative."""
    uri = tmp_path / "examples"
    (uri / "Split-eval").mkdir(parents=True)
    options = tf.io.TFRecordOptions(compression_type="GZIP")
    with tf.io.TFRecordWriter(str(uri / "Split-eval" / "data.gz"), options) as writer:
        for i in range(10):
            label = int(i < 5)
            text = f"a {POSITIVE_WORD} film" if label else "a dull film"
            writer.write(review_to_example(Review(f"train/x/{i}", "train", text, label, 7),
                                           "eval").SerializeToString())
    artifact = standard_artifacts.Examples()
    artifact.uri = str(uri)
    artifact.split_names = '["eval"]'
    return artifact


#: What the Evaluator measures for a candidate of each rule on `examples_artifact`'s split.
EVALUATED_ACCURACY = {"always positive": 0.5, "always negative": 0.5, "right": 1.0}


def evaluation_artifact(tmp_path: Path, accuracy: float) -> standard_artifacts.ModelEvaluation:
    artifact = standard_artifacts.ModelEvaluation()
    artifact.uri = str(write_tfma_metrics(tmp_path / "evaluation", {"eval": {"binary_accuracy": accuracy}}))
    return artifact


def run_gate(tmp_path: Path, candidate_rule: str, served: str = "", evaluator_blessed: bool = True,
             max_drop: float = 0.01) -> standard_artifacts.ModelBlessing:
    model = standard_artifacts.Model()
    model.uri = str(tmp_path / "model")
    upstream = standard_artifacts.ModelBlessing()
    upstream.uri = str(tmp_path / "upstream")
    upstream.set_int_custom_property("blessed", int(evaluator_blessed))
    serving = tmp_path / "serving"
    serving.mkdir(exist_ok=True)
    if served == "corrupt":
        (serving / "7").mkdir()
        (serving / "7" / "saved_model.pb").write_bytes(b"not a graph")
    elif served:
        write_model(serving / "5", "always negative")  # an older version, never read
        write_model(serving / "12", served)
    output = standard_artifacts.ModelBlessing()
    output.uri = str(tmp_path / "out")
    os.makedirs(output.uri)
    served_model_gate.Executor().Do(
        {"model": [model], "evaluator_blessing": [upstream], "examples": [examples_artifact(tmp_path)],
         "evaluation": [evaluation_artifact(tmp_path, EVALUATED_ACCURACY[candidate_rule])]},
        {"blessing": [output]},
        {"serving_dir": str(serving), "split": "eval", "max_accuracy_drop": max_drop})
    return output


def test_the_candidates_accuracy_is_the_evaluators_and_the_served_models_is_scored(tmp_path):
    blessing = run_gate(tmp_path, "always positive", served="right")
    accuracies = json.loads(blessing.get_string_custom_property("accuracies"))
    assert accuracies == {"split": "eval", "candidate": 0.5, "served": 1.0}
    with pytest.raises(ValueError, match="no binary_accuracy for the report split"):
        served_model_gate.evaluated_accuracy(str(tmp_path / "evaluation"), "report")


def test_first_run_with_nothing_served_relies_on_the_evaluator(tmp_path):
    blessing = run_gate(tmp_path, "always positive")
    assert blessing.get_int_custom_property("blessed") == 1
    assert "no served model" in blessing.get_string_custom_property("reason")
    assert sorted(os.listdir(blessing.uri)) == ["BLESSED"]  # a verdict, nothing else


def test_a_model_worse_than_the_served_one_is_refused(tmp_path):
    blessing = run_gate(tmp_path, "always positive", served="right")  # 0.5 against 1.0
    assert blessing.get_int_custom_property("blessed") == 0
    reason = blessing.get_string_custom_property("reason")
    assert "0.5000 is 0.5000 below the served model's 1.0000" in reason
    assert blessing.get_string_custom_property("served_model").endswith(f"{os.sep}12")
    assert (Path(blessing.uri) / "NOT_BLESSED").exists()


def test_a_model_as_good_as_the_served_one_passes(tmp_path):
    blessing = run_gate(tmp_path, "right", served="right")
    assert blessing.get_int_custom_property("blessed") == 1
    assert "change +0.0000" in blessing.get_string_custom_property("reason")


def test_a_corrupt_served_model_is_logged_and_skipped(tmp_path, caplog):
    with caplog.at_level("WARNING"):
        blessing = run_gate(tmp_path, "always positive", served="corrupt")
    assert blessing.get_int_custom_property("blessed") == 1
    assert "could not be scored" in caplog.text
    assert "no served model" in blessing.get_string_custom_property("reason")


def test_what_the_evaluator_refused_stays_refused(tmp_path):
    blessing = run_gate(tmp_path, "right", served="always negative", evaluator_blessed=False)
    assert blessing.get_int_custom_property("blessed") == 0
    assert "Evaluator did not bless" in blessing.get_string_custom_property("reason")


@pytest.mark.parametrize("evaluator,candidate,served,drop,blessed", [
    (True, 0.90, None, 0.01, True), (True, 0.895, 0.90, 0.01, True),
    (True, 0.889, 0.90, 0.01, False), (False, 0.95, 0.90, 0.01, False),
    (True, 0.90, 0.90, 0.0, True)])
def test_decision_rule(evaluator, candidate, served, drop, blessed):
    assert served_model_gate.decide(evaluator, candidate, served, drop)[0] is blessed


def test_newest_version_is_the_largest_number(tmp_path):
    assert serving_layout.newest_version(str(tmp_path / "missing")) is None
    for name in ("9", "10", ".staging-11", "notes"):
        (tmp_path / name).mkdir()
    assert serving_layout.versions(str(tmp_path)) == [9, 10]
    assert serving_layout.newest_version(str(tmp_path)) == str(tmp_path / "10")


def test_the_cli_loads_the_version_tf_serving_would_serve(tmp_path):
    for name in ("9", "10"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "saved_model.pb").write_bytes(b"")
    (tmp_path / ".staging-11").mkdir()
    assert serving_client.resolve_model_dir(str(tmp_path)) == tmp_path / "10"
    assert serving_client.resolve_model_dir(str(tmp_path / "9")) == tmp_path / "9"
    (tmp_path / "12").mkdir()  # newest, but not a SavedModel: said, not skipped
    with pytest.raises(FileNotFoundError, match="newest version .*12 has none"):
        serving_client.resolve_model_dir(str(tmp_path))
