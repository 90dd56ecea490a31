"""The configuration: validated when built, and outside every cache key."""

from __future__ import annotations

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
    from imdb_sentiment.pipeline.cli import _parse_overrides
    from imdb_sentiment.trainer.hparams import parse_value

    assert _parse_overrides(["trainer.max_pool=off", "trainer.epochs=2", "trainer.learning_rate=1e-3"]) == {
        "trainer": {"max_pool": False, "epochs": 2, "learning_rate": 1e-3}}
    assert parse_value(True, "YES") is True and parse_value(False, "0") is False
    with pytest.raises(ValueError, match="trainer.max_pool"):
        _parse_overrides(["trainer.max_pool=maybe"])  # not silently False
    with pytest.raises(ValueError, match="no field"):
        _parse_overrides(["trainer.no_such_field=1"])
