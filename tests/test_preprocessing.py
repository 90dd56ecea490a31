"""preprocessing_fn through real TF Transform analysis (Beam, in memory)."""

from __future__ import annotations

import tempfile

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_transform as tft
import tensorflow_transform.beam as tft_beam
from tensorflow_transform.tf_metadata import dataset_metadata, schema_utils

from imdb_sentiment.trainer.hparams import TrainerConfig
from imdb_sentiment.trainer import features, preprocessing

RAW_SPEC = {features.TEXT: tf.io.FixedLenFeature([1], tf.string),
            features.LABEL: tf.io.FixedLenFeature([1], tf.int64)}


def normalize(text: str) -> str:
    return preprocessing.normalize(tf.constant([text])).numpy()[0].decode()


def test_normalize_lowercases_strips_html_and_splits_punctuation():
    assert normalize("Great MOVIE!<br /><br />Don't miss it.") == "great movie ! don't miss it ."
    assert normalize("7/10, (really)") == "7 / 10 , ( really )"
    assert normalize("ÉCLATANT <i>film</i>") == "éclatant film"


@pytest.mark.parametrize("text", ["", "   ", "<br /><br />", "\n\t"])
def test_empty_reviews_become_one_token(text):
    assert normalize(text) == features.EMPTY_TOKEN


def test_tokenize_keeps_the_end_of_long_reviews():
    tokens = preprocessing.tokenize(tf.constant(["a b c d e f"]), max_length=3)
    assert [t.decode() for t in tokens[0].numpy()] == ["d", "e", "f"]


CORPUS = ["good good good film", "bad bad bad film", "good film", "bad film",
          "one two three four five six seven good", "", "rare"]


def analyze(corpus, hparams: TrainerConfig):
    """Runs preprocessing_fn through TF Transform: (outputs, TFTransformOutput)."""
    rows = [{features.TEXT: [t.encode()], features.LABEL: [i % 2]} for i, t in enumerate(corpus)]
    metadata = dataset_metadata.DatasetMetadata(schema_utils.schema_from_feature_spec(RAW_SPEC))
    with tempfile.TemporaryDirectory() as temp_dir, tft_beam.Context(temp_dir=temp_dir):
        (outputs, _), transform_fn = (rows, metadata) | tft_beam.AnalyzeAndTransformDataset(
            lambda inputs: preprocessing.preprocessing_fn(
                inputs, hparams.to_transform_custom_config()))
        output_dir = tempfile.mkdtemp()
        _ = transform_fn | tft_beam.WriteTransformFn(output_dir)
    return outputs, tft.TFTransformOutput(output_dir)


@pytest.fixture(scope="module")
def transformed():
    """Analyse a tiny corpus once; return (outputs, vocabulary, hparams) for the tests."""
    hparams = TrainerConfig(vocab_size=4, min_frequency=2, max_sequence_length=5)
    outputs, tft_output = analyze(CORPUS, hparams)
    vocabulary = tft_output.vocabulary_by_name(features.VOCABULARY)
    return outputs, [v.decode() for v in vocabulary], hparams


@pytest.mark.slow
def test_vocabulary_keeps_only_the_top_k():
    _, tft_output = analyze(CORPUS, TrainerConfig(vocab_size=2, min_frequency=1,
                                                  max_sequence_length=5))
    vocabulary = [v.decode() for v in tft_output.vocabulary_by_name(features.VOCABULARY)]
    assert len(vocabulary) == 2 and vocabulary[0] == "good"  # 5 occurrences
    assert vocabulary[1] in ("film", "bad")  # 4 each: one of them is cut


def test_head_and_tail_truncation_keeps_both_ends():
    tokens = preprocessing.tokenize(tf.constant(["a b c d e f g h", "x y"]), max_length=5, head=2)
    assert [[t.decode() for t in row] for row in tokens.to_list()] == [
        ["a", "b", "f", "g", "h"], ["x", "y"]]


@pytest.mark.slow
def test_ngram_tfidf_matches_sklearn_sublinear_tfidf():
    """Same numbers as sklearn's TfidfVectorizer(sublinear_tf=True, smooth_idf=True, norm='l2')."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    corpus = CORPUS[:5] + ["good film , bad film ! good good", "film film film"]
    outputs, tft_output = analyze(corpus, TrainerConfig(max_sequence_length=5, ngram_order=2,
                                                        ngram_min_frequency=1))
    names = [v.decode() for v in tft_output.vocabulary_by_name(features.NGRAM_VOCABULARY)]

    def grams(text):
        tokens = preprocessing.normalize(tf.constant([text])).numpy()[0].decode().split(" ")
        return tokens + [f"{a} {b}" for a, b in zip(tokens, tokens[1:])]

    vectorizer = TfidfVectorizer(analyzer=grams, sublinear_tf=True)
    expected = vectorizer.fit_transform(corpus)
    columns = vectorizer.vocabulary_
    for row, output in enumerate(outputs):
        got = {names[i]: w for i, w in zip(output[features.NGRAM_IDS],
                                            output[features.NGRAM_WEIGHTS])}
        want = {gram: expected[row, col] for gram, col in columns.items() if expected[row, col]}
        assert got.keys() == want.keys()
        for gram, weight in want.items():
            assert got[gram] == pytest.approx(weight, rel=1e-5), (row, gram)


@pytest.mark.slow
def test_vocabulary_is_top_k_with_min_frequency(transformed):
    _, vocabulary, hparams = transformed
    assert len(vocabulary) <= hparams.vocab_size
    assert vocabulary[0] == "good"  # 5 occurrences; film and bad have 4 each
    assert set(vocabulary[:3]) == {"good", "film", "bad"}
    assert "rare" not in vocabulary  # seen once, below min_frequency


@pytest.mark.slow
def test_ids_are_shifted_padded_right_and_oov_bucketed(transformed):
    outputs, vocabulary, hparams = transformed
    oov = features.oov_id(len(vocabulary))
    ids = {i: list(row[features.TOKEN_IDS]) for i, row in enumerate(outputs)}
    for row in ids.values():
        assert len(row) == hparams.max_sequence_length
    good, film = vocabulary.index("good") + 1, vocabulary.index("film") + 1
    assert ids[2] == [good, film, 0, 0, 0]  # right padding with 0
    # Truncation keeps the last 5 of 8 tokens: four five six seven good.
    assert ids[4] == [oov, oov, oov, oov, good]
    assert ids[6] == [oov, 0, 0, 0, 0]  # unknown word
    assert ids[5] == [oov, 0, 0, 0, 0]  # empty review -> <empty> (OOV), never all padding
    assert all(row[0] != features.PAD_ID for row in ids.values())
    assert min(min(r) for r in ids.values()) >= 0 and max(max(r) for r in ids.values()) <= oov


@pytest.mark.slow
def test_label_passes_through(transformed):
    outputs, _, _ = transformed
    assert [int(np.asarray(row[features.LABEL]).reshape(-1)[0]) for row in outputs] == [
        i % 2 for i in range(len(outputs))]


from hypothesis import given, settings, strategies as st  # noqa: E402


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(max_size=400), min_size=1, max_size=6), st.integers(1, 50))
@pytest.mark.slow
def test_any_unicode_text_tokenizes_to_one_or_more_tokens(texts, max_length):
    tokens = preprocessing.tokenize(tf.constant(texts), max_length)
    lengths = tokens.row_lengths().numpy()
    assert len(lengths) == len(texts)
    assert all(1 <= n <= max_length for n in lengths)  # never an all-padding row
    for row in tokens.to_list():
        assert all(t and b" " not in t and b"<br" not in t for t in row)


def _unbounded_tokens(texts, max_length: int, head: int = 0):
    return preprocessing.truncate(tf.strings.split(preprocessing.normalize(texts)), max_length, head)


@pytest.mark.parametrize("head", [0, 100])
@pytest.mark.slow
def test_the_character_bound_changes_no_token_of_any_training_review(head):
    """Every review of the real archive: the tokens the model sees are the same with the bound."""
    from conftest import real_data_path
    from imdb_sentiment.components import imdb_data

    texts = [r.text for r in imdb_data.read_reviews(real_data_path(), imdb_data.ReadReport())]
    hparams = TrainerConfig()
    for start in range(0, len(texts), 4096):
        batch = tf.constant(texts[start:start + 4096])
        bounded = preprocessing.tokenize(batch, hparams.max_sequence_length, head)
        unbounded = _unbounded_tokens(batch, hparams.max_sequence_length, head)
        assert bounded.to_list() == unbounded.to_list()


@pytest.mark.slow
def test_a_fifty_megabyte_review_is_cut_before_it_is_tokenized():
    phrase = "this film was a waste of a good cast <br /> "
    huge = phrase * (50_000_000 // len(phrase) + 1)
    text = tf.constant([huge, "short é review"])
    bounded = preprocessing.bound_text(text, max_length=400)
    lengths = tf.strings.length(bounded, unit="UTF8_CHAR").numpy()
    assert lengths[0] == preprocessing.CHARS_PER_TOKEN * 400
    assert bounded.numpy()[1] == "short é review".encode()
    # What the model sees of the huge review is its last 400 tokens, as without the bound.
    small = tf.constant([phrase * 2000])  # same ending, small enough to tokenize whole
    assert (preprocessing.tokenize(text[:1], 400).to_list()
            == _unbounded_tokens(small, 400).to_list())
