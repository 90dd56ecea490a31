"""The configuration: validated when built, and outside every cache key."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from imdb_sentiment.pipeline import config as config_lib
from imdb_sentiment.pipeline import pipeline as pipeline_lib
from imdb_sentiment.trainer.hparams import BaselineConfig, TrainerConfig


@pytest.mark.parametrize("build,message", [
    (lambda: TrainerConfig(mixed_precision="maybe"), "mixed_precision"),
    (lambda: TrainerConfig(embedding_dropout=1.5), "embedding_dropout"),
    (lambda: TrainerConfig(head_tokens=400, max_sequence_length=400), "head_tokens"),
    (lambda: TrainerConfig(epochs=0), "epochs"),
    (lambda: BaselineConfig(learning_rate=0), "learning_rate"),
    (lambda: config_lib.IngestionConfig(eval_percent=60, report_percent=50), "report_percent"),
    (lambda: config_lib.IngestionConfig(sample_percent=0), "sample_percent"),
    (lambda: config_lib.EvaluationConfig(accuracy_lower_bound=1.2), "accuracy_lower_bound"),
])
def test_a_bad_value_fails_when_the_config_is_built(build, message):
    with pytest.raises(ValueError, match=message):
        build()


def test_every_profile_builds():
    for profile in config_lib.PROFILES:
        assert config_lib.profile_config(profile).profile == profile


def test_config_py_is_in_no_fingerprint(monkeypatch, tmp_path):
    """Editing pipeline/config.py (a comment, a default) must not rerun Transform
    or the Trainers: their cache keys hash trainer code only, and the values
    themselves travel in custom_config."""
    hashed = []
    real = pipeline_lib.source_fingerprint

    def recording(*paths):
        hashed.extend(Path(p).resolve() for p in paths)
        return real(*paths)

    monkeypatch.setattr(pipeline_lib, "source_fingerprint", recording)
    config = config_lib.profile_config("smoke").replace(
        pipeline_root=str(tmp_path / "root"), serving_dir=str(tmp_path / "serving"))
    pipeline_lib.create_pipeline(config)
    config_file = Path(config_lib.__file__).resolve()
    trainer_dir = pipeline_lib.TRAINER_PACKAGE_DIR.resolve()
    assert hashed and config_file not in hashed
    assert all(p == trainer_dir or trainer_dir in p.parents for p in hashed), hashed


def test_the_default_split_rule_is_the_ingestion_default():
    """text_profile (components/) uses SplitRule() itself: it must be the pipeline's split."""
    from imdb_sentiment.components.imdb_data import SplitRule

    assert config_lib.IngestionConfig().split_rule() == SplitRule()


def test_set_overrides_are_typed_by_the_field_and_refuse_what_they_cannot_read():
    from imdb_sentiment.trainer.hparams import parse_value

    pairs = ["trainer.max_pool=off", "trainer.epochs=2", "trainer.learning_rate=1e-3"]
    assert config_lib.parse_overrides(pairs) == {
        "trainer": {"max_pool": False, "epochs": 2, "learning_rate": 1e-3}}
    assert parse_value(True, "YES") is True and parse_value(False, "0") is False
    with pytest.raises(ValueError, match="trainer.max_pool"):
        config_lib.parse_overrides(["trainer.max_pool=maybe"])  # not silently False
    with pytest.raises(ValueError, match="no field"):
        config_lib.parse_overrides(["trainer.no_such_field=1"])


def test_the_test_split_is_evaluated_when_on_and_auto_follows_the_data(tmp_path):
    from conftest import make_members, write_archive
    from imdb_sentiment.pipeline.local_runner import resolve_test_split

    def config(mode: str, data: str = "") -> config_lib.PipelineConfig:
        base = config_lib.profile_config("smoke")
        return base.replace(data=data, evaluation=dataclasses.replace(base.evaluation, test_split=mode))

    assert pipeline_lib.evaluated_splits(config("off")) == ("eval", "report")
    assert pipeline_lib.evaluated_splits(config("auto")) == ("eval", "report")  # unresolved: off
    on = config("on")
    assert pipeline_lib.evaluated_splits(on) == ("eval", "report", "test")
    sliced = {spec.feature_values["data_split"] for spec in pipeline_lib.eval_config(on).slicing_specs}
    assert sliced == {"eval", "report", "test"}
    with_test = write_archive(tmp_path / "t.tar.gz", make_members(test_split=True))
    without = write_archive(tmp_path / "n.tar.gz", make_members())
    assert resolve_test_split(config("auto", str(with_test))).evaluation.test_split == "on"
    assert resolve_test_split(config("auto", str(without))).evaluation.test_split == "off"
    assert resolve_test_split(config("off", str(with_test))).evaluation.test_split == "off"
    with pytest.raises(ValueError, match="test_split"):
        config_lib.EvaluationConfig(test_split="maybe")
