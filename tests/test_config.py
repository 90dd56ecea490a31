"""The configuration: validated when built, and outside every cache key."""

from __future__ import annotations

import dataclasses
import json
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
    (lambda: config_lib.IngestionConfig(max_skip_fraction=1.5), "max_skip_fraction"),
    (lambda: config_lib.PipelineConfig(local_beam_workers=0), "local_beam_workers"),
])
def test_a_bad_value_fails_when_the_config_is_built(build, message):
    with pytest.raises(ValueError, match=message):
        build()


def test_every_profile_builds():
    for profile in config_lib.PROFILES:
        assert config_lib.profile_config(profile).profile == profile


def _custom_config(pipeline, node_id: str) -> dict:
    component = next(c for c in pipeline.components if c.id == node_id)
    return json.loads(component.exec_properties["custom_config"])


def test_cache_keys_cover_each_executors_import_closure_and_nothing_above_it():
    """Editing pipeline/config.py (a comment, a default) must not rerun Transform or the
    Trainers; editing any file their code imports, however indirectly, must."""
    closures = {name: config_lib.import_closure(module) for name, module in (
        ("transform", "imdb_sentiment.trainer.preprocessing"),
        ("trainer", "imdb_sentiment.trainer.train"),
        ("baseline", "imdb_sentiment.trainer.linear_baseline"),
        ("teacher", "imdb_sentiment.components.teacher_labels"))}
    pipeline_dir = Path(config_lib.__file__).resolve().parent
    for files in closures.values():
        assert files and not any(pipeline_dir == f.parent for f in files)  # layers point down
    names = {name: {f"{f.parent.name}/{f.name}" for f in files} for name, files in closures.items()}
    # The imports the hand-kept list missed (the stale BaselineTrainer of issue 27).
    assert {"trainer/datasets.py", "trainer/warmup.py", "trainer/__init__.py"} <= names["baseline"]
    assert "trainer/model.py" not in names["transform"]
    assert {"trainer/teacher.py", "components/example_files.py",
            "components/imdb_data.py"} <= names["teacher"]
    assert "components/data_gate.py" not in names["teacher"]


def test_a_file_reached_only_through_imports_changes_the_baselines_cache_key(monkeypatch, tmp_path):
    config = config_lib.profile_config("smoke").replace(
        pipeline_root=str(tmp_path / "root"), serving_dir=str(tmp_path / "serving"))
    before = pipeline_lib.create_pipeline(config)
    warmup = Path(pipeline_lib.TRAINER_PACKAGE_DIR) / "warmup.py"  # signatures.py imports it
    real_read_bytes = Path.read_bytes
    monkeypatch.setattr(Path, "read_bytes", lambda self: real_read_bytes(self) + (
        b"\n# edited\n" if self.resolve() == warmup.resolve() else b""))
    after = pipeline_lib.create_pipeline(config)
    for node_id, changes in (("BaselineTrainer", True), ("Trainer", True), ("Transform", False)):
        keys = [_custom_config(p, node_id)["code_fingerprint"] for p in (before, after)]
        assert (keys[0] != keys[1]) is changes, node_id


def test_the_default_split_rule_is_the_ingestion_default():
    """text_profile (components/) uses SplitRule() itself: the config takes its
    defaults from there, and an override still reaches the rule."""
    from imdb_sentiment.components.imdb_data import SplitRule

    assert config_lib.IngestionConfig().split_rule() == SplitRule()
    assert config_lib.IngestionConfig(eval_percent=20).split_rule() == SplitRule(eval_percent=20)


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
    from imdb_sentiment.local.runner import resolve_test_split

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


def test_distillation_wires_the_teacher_between_transform_and_the_trainer(tmp_path):
    base = config_lib.profile_config("smoke").replace(pipeline_root=str(tmp_path / "root"),
                                                       serving_dir=str(tmp_path / "serving"))
    plain = pipeline_lib.create_pipeline(base)
    assert "TeacherLabels" not in pipeline_lib.component_ids(plain)
    distilling = pipeline_lib.create_pipeline(base.replace(
        trainer=dataclasses.replace(base.trainer, distill_epochs=1, epochs=2)))
    ids = pipeline_lib.component_ids(distilling)
    assert ids.index("Transform") < ids.index("TeacherLabels") < ids.index("Trainer")
    components = {c.id: c for c in distilling.components}
    soft_labels = components["Trainer"].inputs["soft_labels"]
    assert soft_labels.producer_component_id == "TeacherLabels"
    assert "soft_labels" not in components["BaselineTrainer"].inputs
    assert components["ImdbExampleGen"].exec_properties["unlabelled"] == 1
    # No statistic, check or evaluation reads the unlabelled split.
    assert json.loads(components["StatisticsGen"].exec_properties["exclude_splits"]) == ["unsup"]
    assert "unsup" not in components["Evaluator"].exec_properties["example_splits"]


def test_distillation_epochs_replace_labelled_ones_and_leave_at_least_one():
    from imdb_sentiment.trainer import train
    from imdb_sentiment.trainer.hparams import TrainerConfig

    config = TrainerConfig(epochs=3, distill_epochs=1, batch_size=10)
    assert config.labelled_epochs(distilling=True) == 2
    assert config.labelled_epochs(distilling=False) == 3  # no unlabelled data: all labelled
    assert train.training_steps(config, 100, 50) == 10 * 2 + 5
    assert train.training_steps(config, 100, 0) == 10 * 3
    with pytest.raises(ValueError, match="at least one labelled epoch"):
        TrainerConfig(epochs=1, distill_epochs=1)
