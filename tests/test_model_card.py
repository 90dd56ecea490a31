"""The model card and lineage record (components/model_card.py), without a pipeline run.

The card's structure is checked against the Model Card Toolkit's JSON schema
v0.0.2 as published in tensorflow/model-card-toolkit at commit 4161ebb
(`model_card_toolkit/schema/v0.0.2/model_card.schema.json`): the parts
restated below are its top-level properties (no others allowed) and the
fields and types of the sections this card fills.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import jsonschema
from google.protobuf import json_format
from tfx.proto import pusher_pb2
from tfx.types import standard_artifacts

from imdb_sentiment.components import model_card, model_card_generator
from imdb_sentiment.components.atomic_pusher import AtomicPusherExecutor, publish_model
from imdb_sentiment.components.imdb_example_gen import REPORT_FILE
from imdb_sentiment.components.model_card_generator import ModelCard
from conftest import write_tfma_metrics

_STRING = {"type": "string"}
_DESCRIBED = {"type": "array", "items": {"type": "object", "properties": {"description": _STRING},
                                         "additionalProperties": False}}
MCT_V002_SUBSET = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "schema_version": _STRING,
        "model_details": {"type": "object", "properties": {
            "name": _STRING, "overview": _STRING, "documentation": _STRING,
            "version": {"type": "object", "properties": {"name": _STRING, "date": _STRING,
                                                         "diff": _STRING}}}},
        "model_parameters": {"type": "object", "properties": {
            "model_architecture": _STRING, "input_format": _STRING, "output_format": _STRING,
            "data": {"type": "array", "items": {"type": "object", "properties": {
                "name": _STRING, "link": _STRING, "description": _STRING}}}}},
        "quantitative_analysis": {"type": "object", "properties": {
            "performance_metrics": {"type": "array", "items": {"type": "object", "properties": {
                "type": _STRING, "value": {"type": "number"}, "slice": _STRING},
                "additionalProperties": False}}}},
        "considerations": {"type": "object", "properties": {
            "users": _DESCRIBED, "use_cases": _DESCRIBED, "limitations": _DESCRIBED}},
    },
}


def _lineage() -> dict:
    evaluation = {
        "metrics": {"eval": {"overall": {"binary_accuracy": 0.89, "auc": 0.95},
                             "rating=1": {"binary_accuracy": 0.95, "auc": 0.0, "mean_label": 0.0,
                                          "example_count": 120}},
                    "report": {"overall": {"binary_accuracy": 0.894},
                               "length_bucket=q1: 1-120 words": {"binary_accuracy": 0.91},
                               "length_bucket=q4: 600+ words": {"binary_accuracy": 0.86}}},
        "baseline_metrics": {"eval": {"overall": {"binary_accuracy": 0.905}}},
        "accuracy": {"eval": {"candidate": {"value": 0.89, "ci95": [0.877, 0.902]},
                              "linear_baseline": {"value": 0.905, "ci95": [0.893, 0.916]}}},
    }
    return model_card.build_lineage(
        ingestion={"source": "aclImdb_train.tar.gz", "sha256": "ab" * 32,
                   "splits": {"train": {"reviews": 20000}, "eval": {"reviews": 2465}}},
        training={"device": {"gpus": [], "cpu": "Test CPU"}, "epochs": [
            {"epoch": 1, "loss": 0.4, "accuracy": 0.8, "val_loss": 0.3, "val_accuracy": 0.87}],
            "best_epoch": {"epoch": 1}, "hparams": {"max_sequence_length": 400, "head_tokens": 0}},
        evaluation=evaluation, config={"profile": "full"},
        run={"pipeline_run_id": "20261201-170000", "card_execution_id": 12,
             "mlmd_artifact_ids": {"model": 7}},
        gate={"blessed": True, "reason": "nothing served yet"})


def test_the_card_follows_the_model_card_toolkit_schema_and_states_its_limits():
    lineage = _lineage()
    card = model_card.build_model_card(lineage, "imdb_sentiment")
    jsonschema.validate(card, MCT_V002_SUBSET)
    rows = card["quantitative_analysis"]["performance_metrics"]
    metrics = {(m["slice"], m["type"]): m["value"] for m in rows}
    assert metrics[("eval", "binary_accuracy (BiLSTM)")] == 0.89
    assert metrics[("eval", "binary_accuracy (linear baseline)")] == 0.905
    assert metrics[("report, length_bucket=q4: 600+ words", "binary_accuracy (BiLSTM)")] == 0.86
    limits = " ".join(item["description"] for item in card["considerations"]["limitations"])
    assert "400 tokens" in limits and "600+ words reads 0.860" in limits
    assert "ab" * 32 in card["model_parameters"]["data"][0]["description"]
    broken = dict(card, provenance={})  # the schema allows no other top-level key
    try:
        jsonschema.validate(broken, MCT_V002_SUBSET)
    except jsonschema.ValidationError:
        pass
    else:
        raise AssertionError("the restated schema must refuse unknown top-level keys")


def test_the_card_leaves_out_auc_where_one_class_makes_it_undefined():
    rows = model_card.build_model_card(_lineage(), "imdb_sentiment")[
        "quantitative_analysis"]["performance_metrics"]
    metrics = {(m["slice"], m["type"]) for m in rows}
    assert ("eval", "auc (BiLSTM)") in metrics
    assert ("eval, rating=1", "binary_accuracy (BiLSTM)") in metrics
    assert ("eval, rating=1", "auc (BiLSTM)") not in metrics


def test_the_page_groups_metrics_by_split_and_slice_and_explains_them():
    lineage = _lineage()
    page = model_card.render_html(model_card.build_model_card(lineage, "imdb_sentiment"), lineage)
    assert page.count("<h3>eval <small>") == 1 and page.count("<h3>report <small>") == 1
    rating_row = page[page.index("<td>rating=1</td>"):].split("</tr>")[0]
    assert "<td>120</td>" in rating_row and "<td>0.9500</td>" in rating_row
    assert "0.0000" not in rating_row and "(one class)" in rating_row
    assert "mean prediction ÷ mean label" in page
    assert "0.8900 [0.8770, 0.9020]" in page  # the eval accuracy with its interval


def test_card_files_reach_the_pushed_version_with_the_model(tmp_path):
    model = tmp_path / "model"
    (model / "variables").mkdir(parents=True)
    (model / "saved_model.pb").write_bytes(b"graph")
    cards = model_card.write_card_files(str(tmp_path / "card"), _lineage(), "imdb_sentiment")
    pushed = Path(publish_model(str(model), str(tmp_path / "serving"), extra_files=cards))
    assert sorted(p.name for p in (pushed / "assets.extra").iterdir()) == sorted(model_card.CARD_FILES)
    lines = model_card.describe(str(pushed))
    text = "\n".join(lines)
    assert "sha256 " + "ab" * 32 in text and "20261201-170000" in text
    assert "accuracy on eval (chose the epoch and gates the push): 0.8900" in text
    assert json.loads((pushed / "assets.extra" / "lineage.json").read_text())["config"] == {"profile": "full"}


def _artifact(kind, uri: Path):
    artifact = kind()
    artifact.uri = str(uri)
    uri.mkdir(parents=True, exist_ok=True)
    return artifact


def test_the_card_step_reads_the_run_and_the_pusher_puts_its_card_in_the_version(tmp_path):
    """ModelCardGenerator's and the Pusher's executors, called as TFX calls them."""
    model = _artifact(standard_artifacts.Model, tmp_path / "model")
    serving_path = Path(model.uri) / "Format-Serving"
    (serving_path / "variables").mkdir(parents=True)
    (serving_path / "saved_model.pb").write_bytes(b"graph")
    examples = _artifact(standard_artifacts.Examples, tmp_path / "examples")
    (Path(examples.uri) / REPORT_FILE).write_text(json.dumps(
        {"source": "aclImdb_train.tar.gz", "sha256": "cd" * 32,
         "splits": {"train": {"reviews": 20000}, "eval": {"reviews": 2465}}}))
    evaluation = _artifact(standard_artifacts.ModelEvaluation, tmp_path / "evaluation")
    write_tfma_metrics(Path(evaluation.uri), {"eval": {"binary_accuracy": 0.89,
                                                       "example_count": 2465}})
    blessing = _artifact(standard_artifacts.ModelBlessing, tmp_path / "blessing")
    blessing.set_int_custom_property("blessed", 1)
    blessing.set_string_custom_property("reason", "no served model to compare with")
    card = _artifact(ModelCard, tmp_path / "card")
    model_card_generator.Executor().Do(
        {"model": [model], "examples": [examples], "evaluation": [evaluation],
         "blessing": [blessing]}, {"model_card": [card]},
        {"pipeline_config": json.dumps({"profile": "full"}), "model_name": "imdb_sentiment",
         "run_id": "20261204-040000"})
    assert sorted(os.listdir(card.uri)) == sorted(model_card.CARD_FILES)

    pushed = _artifact(standard_artifacts.PushedModel, tmp_path / "pushed")
    destination = pusher_pb2.PushDestination(filesystem=pusher_pb2.PushDestination.Filesystem(
        base_directory=str(tmp_path / "serving")))
    AtomicPusherExecutor().Do(
        {"model": [model], "model_blessing": [blessing], "model_card": [card]},
        {"pushed_model": [pushed]},
        {"push_destination": json_format.MessageToJson(destination)})
    version = pushed.get_string_custom_property("pushed_destination")
    text = "\n".join(model_card.describe(version))
    assert "sha256 " + "cd" * 32 in text and "20261204-040000" in text
    assert "accuracy on eval (chose the epoch and gates the push): 0.8900" in text
    assert "gate: blessed: no served model to compare with" in text


def test_describe_says_when_a_model_has_no_card(tmp_path):
    (tmp_path / "saved_model.pb").write_bytes(b"")
    try:
        model_card.describe(str(tmp_path))
    except FileNotFoundError as error:
        assert "lineage.json" in str(error)
    else:
        raise AssertionError("describe must refuse a model without a card")


def test_source_revision_prefers_the_image_commit(monkeypatch, tmp_path):
    monkeypatch.setenv(model_card.COMMIT_ENV, "abc123")
    assert model_card.source_revision()["commit"] == "abc123"
    monkeypatch.delenv(model_card.COMMIT_ENV)
    assert model_card.source_revision(tmp_path) == {"commit": None, "dirty": None,
                                                    "source": "no git checkout"}
