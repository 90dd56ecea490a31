"""Data as spans: TFX 1.16's span matching, the selection, and when a run has nothing new."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from imdb_sentiment.components import spans


def _touch(path: Path, text: str = "x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_the_newest_spans_by_number_not_by_name(tmp_path):
    for number in (1, 2, 10):
        _touch(tmp_path / f"imdb-{number}.tar.gz")
    _touch(tmp_path / "imdb-latest.tar.gz")  # matches the glob, is no span
    pattern = str(tmp_path / "imdb-{SPAN}.tar.gz")
    assert [s.number for s in spans.available_spans(pattern)] == [1, 2, 10]
    assert spans.select_spans(pattern).numbers == [10]
    assert spans.select_spans(pattern, window=2).numbers == [2, 10]
    assert spans.select_spans(pattern, window=5).numbers == [1, 2, 10]
    assert spans.select_spans(pattern).spans[0].uri == str(tmp_path / "imdb-10.tar.gz")


def test_the_newest_span_is_the_one_tfx_itself_picks(tmp_path):
    """Cross-checked with TFX's public resolver (ExampleGen's driver calls it)."""
    from tfx.components.example_gen import utils
    from tfx.proto import example_gen_pb2

    for number in (3, 7, 12):
        _touch(tmp_path / f"span-{number:02d}" / "reviews.txt")
    ours = spans.select_spans(str(tmp_path / "span-{SPAN:2}") + "/")
    split = example_gen_pb2.Input.Split(name="data", pattern="span-{SPAN:2}/*")
    _, tfx_span, _ = utils.calculate_splits_fingerprint_span_and_version(str(tmp_path), [split])
    assert ours.numbers == [tfx_span] == [12]
    assert ours.spans[0].uri == str(tmp_path / "span-12")


def test_the_newest_version_of_each_span(tmp_path):
    for name in ("imdb-1-v1", "imdb-1-v3", "imdb-2-v1", "imdb-2-v2"):
        _touch(tmp_path / f"{name}.tar.gz")
    chosen = spans.select_spans(str(tmp_path / "imdb-{SPAN}-v{VERSION}.tar.gz"), window=2)
    assert [(s.number, s.version) for s in chosen.spans] == [(1, 3), (2, 2)]


def test_data_without_a_span_spec_is_span_zero(tmp_path):
    archive = _touch(tmp_path / "aclImdb.tar.gz")
    selection = spans.select_spans(str(archive))
    assert selection.numbers == [0] and not selection.has_spans and selection.describe() == ""
    assert spans.SpanSelection.from_json(selection.to_json()) == selection


def test_the_fingerprint_follows_the_content_not_the_name(tmp_path):
    pattern = str(tmp_path / "span-{SPAN}/")
    _touch(tmp_path / "span-1" / "train" / "pos" / "0_9.txt", "good")
    first = spans.select_spans(pattern)
    assert spans.select_spans(pattern) == first
    review = _touch(tmp_path / "span-1" / "train" / "pos" / "1_8.txt", "fine")
    added = spans.select_spans(pattern)
    assert added.numbers == first.numbers and added.fingerprint != first.fingerprint
    os.utime(review, ns=(1, 1))  # the same file, rewritten at another time
    assert spans.select_spans(pattern).fingerprint != added.fingerprint


def test_clear_errors(tmp_path):
    with pytest.raises(spans.SpanError, match="no span matches"):
        spans.select_spans(str(tmp_path / "imdb-{SPAN}.tar.gz"))
    with pytest.raises(spans.SpanError, match="no such file"):
        spans.select_spans(str(tmp_path / "missing.tar.gz"))
    with pytest.raises(spans.SpanError, match="VERSION"):
        spans.select_spans(str(tmp_path / "imdb-{VERSION}.tar.gz"))
    with pytest.raises(spans.SpanError, match="span_window"):
        spans.select_spans(str(tmp_path / "imdb-{SPAN}.tar.gz"), window=0)


def test_a_run_has_nothing_to_do_only_when_spans_data_config_and_code_are_unchanged(tmp_path):
    from imdb_sentiment.pipeline.config import profile_config
    from imdb_sentiment.local.runner import (package_fingerprint, prepared_config,
                                                      unchanged_since_last_run)

    _touch(tmp_path / "data" / "imdb-1.tar.gz")
    pattern = str(tmp_path / "data" / "imdb-{SPAN}.tar.gz")
    selection = spans.select_spans(pattern)
    config = prepared_config(profile_config("smoke", data=pattern), tmp_path / "home", selection)
    record = {"succeeded": True, "config": json.loads(config.to_json()), "code": package_fingerprint(),
              "ingestion": {"spans": [{"number": 1}], "data_fingerprint": selection.fingerprint}}
    last_run = tmp_path / "last_run.json"

    def check(record_now, selection_now=selection, config_now=config):
        last_run.write_text(json.dumps(record_now))
        return unchanged_since_last_run(last_run, selection_now, config_now)

    assert check(record) == 1
    assert check({**record, "succeeded": False}) is None
    assert check({**record, "code": "edited"}) is None
    assert check(record, config_now=config.replace(enable_cache=False)) is None
    _touch(tmp_path / "data" / "imdb-2.tar.gz")
    assert check(record, selection_now=spans.select_spans(pattern)) is None
    # One archive without a pattern is never skipped: a run is what was asked for.
    archive = spans.select_spans(str(tmp_path / "data" / "imdb-1.tar.gz"))
    assert check({**record, "ingestion": {"spans": [{"number": 0}],
                                          "data_fingerprint": archive.fingerprint}},
                 selection_now=archive) is None


def test_the_noise_floor_is_the_divergence_chance_gives_at_that_size():
    """Vectorised resampling agrees with `jensen_shannon` draw by draw, and
    the floor falls as the sample grows: 5 reviews read a length JSD of 0.4
    and more from the very data they were drawn from."""
    import numpy as np

    from imdb_sentiment.components import text_profile
    from conftest import REPO_ROOT

    reference = text_profile.TextProfile.from_json(
        (REPO_ROOT / "pipeline" / "schema" / "text_profile.json").read_text())
    floors = [text_profile.resampled_divergence(reference.lengths, n) for n in (5, 50, 300, 2500)]
    assert floors == sorted(floors, reverse=True) and floors[0] > 0.4 and floors[-1] < 0.01
    shares = np.asarray(reference.lengths) / sum(reference.lengths)
    draws = np.random.default_rng(0).multinomial(5, shares, size=400) / 5
    expected = sorted(text_profile.jensen_shannon(shares, draw) for draw in draws)[396]
    assert abs(text_profile.resampled_divergence(reference.lengths, 5) - expected) < 1e-9


@pytest.mark.slow
def test_the_teacher_labels_the_same_in_two_processes_as_in_one(tmp_path):
    """TeacherLabels fits in a second process and labels half the reviews there:
    the pickled teacher gives the very probabilities the one-process teacher does."""
    import concurrent.futures
    import multiprocessing

    import numpy as np

    from imdb_sentiment.components import teacher_labels
    from imdb_sentiment.trainer.teacher import TeacherConfig
    from conftest import NEGATIVE, POSITIVE

    texts = [f"{text} review {i}" for i in range(40) for text in (POSITIVE[i % 3], NEGATIVE[i % 3])]
    labels = [1, 0] * 40
    config = TeacherConfig(min_document_frequency=1)
    alone = teacher_labels.probabilities_of(teacher_labels.fit_teacher(texts, labels, config), texts)
    spawn = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(max_workers=1, mp_context=spawn) as pool:
        teacher = pool.submit(teacher_labels.fit_teacher, texts, labels, config).result()
        first = pool.submit(teacher_labels.probabilities_of, teacher, texts[:30]).result()
    together = np.concatenate([first, teacher_labels.probabilities_of(teacher, texts[30:])])
    np.testing.assert_array_equal(together, alone)
    assert together[0] > 0.5 > together[1]
