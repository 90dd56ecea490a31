"""ImdbExampleGen's reading, splitting and failure policy, on archives built here."""

from __future__ import annotations

import collections
import gzip
import json
import tarfile
import tempfile
from pathlib import Path

import pytest
import tensorflow as tf

from imdb_sentiment.components import imdb_data
from imdb_sentiment.components.imdb_example_gen import write_splits
from conftest import make_members, movie_url, write_archive


def read_split(uri: Path, split: str):
    files = sorted((uri / f"Split-{split}").glob("*.gz"))
    records = tf.data.TFRecordDataset([str(f) for f in files], compression_type="GZIP")
    return [tf.train.Example.FromString(r.numpy()) for r in records]


def feature(example: tf.train.Example, name: str):
    value = example.features.feature[name]
    return value.int64_list.value[0] if value.int64_list.value else value.bytes_list.value[0].decode()


def write(tmp_path: Path, data: Path, sample_percent: int = 100, max_skip_fraction: float = 0.01,
          **rule):
    rule = imdb_data.SplitRule(**{"eval_percent": 20, "report_percent": 20, **rule})
    out = tmp_path / "examples"
    summary = write_splits(str(out), str(data), str(tmp_path / "cache"), rule=rule,
                           sample_percent=sample_percent, max_skip_fraction=max_skip_fraction)
    return out, summary


def all_examples(out: Path):
    return [e for split in imdb_data.SPLITS if (out / f"Split-{split}").exists()
            for e in read_split(out, split)]


def test_tarball_becomes_train_eval_and_report_examples(tmp_path, small_archive):
    out, summary = write(tmp_path, small_archive)
    assert set(summary["splits"]) == {"train", "eval", "report"}
    examples = all_examples(out)
    assert len(examples) == 40
    for split in summary["splits"]:  # each example says where it was written
        assert {feature(e, "data_split") for e in read_split(out, split)} == {split}
    by_id = {feature(e, "review_id"): e for e in examples}
    positive = by_id["train/pos/3"]
    assert feature(positive, "label") == 1 and feature(positive, "rating") == 7 + 3 % 4
    assert "<br />" in feature(positive, "text")  # raw text is kept; Transform normalises
    negative = by_id["train/neg/3"]
    assert feature(negative, "label") == 0 and feature(negative, "rating") == 1 + 3 % 4
    assert json.loads((out / "ingestion_report.json").read_text())["splits"] == summary["splits"]


def test_split_is_deterministic_and_follows_the_hash(tmp_path, small_archive):
    out1, summary1 = write(tmp_path / "a", small_archive)
    out2, summary2 = write(tmp_path / "b", small_archive)
    assert summary1 == summary2
    assert summary1["grouped_by"] == "review"  # no urls files: each review is its own group
    eval_ids = {feature(e, "review_id") for e in read_split(out1, "eval")}
    assert eval_ids == {feature(e, "review_id") for e in read_split(out2, "eval")}
    for review_id in eval_ids:
        assert imdb_data.hash_bucket(f"review:{review_id}", "imdb-v1") < 20
    for e in read_split(out1, "report"):
        assert 20 <= imdb_data.hash_bucket(f"review:{feature(e, 'review_id')}", "imdb-v1") < 40
    # Same bytes on every run: files are written in hash order, not archive order.
    files1 = sorted((out1 / "Split-train").glob("*.gz"))
    files2 = sorted((out2 / "Split-train").glob("*.gz"))
    assert [gzip.decompress(f.read_bytes()) for f in files1] == [
        gzip.decompress(f.read_bytes()) for f in files2]


def test_hash_bucket_is_pinned():
    # Literals: changing the hash would silently move reviews between splits.
    assert imdb_data.hash_bucket("train/pos/0", "imdb-v1") == 92
    assert imdb_data.hash_bucket("movie:tt0453418", "imdb-v1") == 32


def test_reviews_of_one_movie_stay_in_one_split(tmp_path):
    archive = write_archive(tmp_path / "movies.tar.gz",
                            make_members(count=150, reviews_per_movie=5))
    out, summary = write(tmp_path, archive)
    assert summary["grouped_by"] == "movie"
    split_of_movie = collections.defaultdict(set)
    for split in ("train", "eval", "report"):
        for example in read_split(out, split):
            number = int(feature(example, "review_id").rsplit("/", 1)[1])
            offset = 0 if "/pos/" in feature(example, "review_id") else 10_000
            split_of_movie[offset + number // 5].add(split)
    assert len(split_of_movie) == 60
    assert all(len(splits) == 1 for splits in split_of_movie.values())
    counts = {split: summary["splits"][split]["movies"] for split in ("train", "eval", "report")}
    assert sum(counts.values()) == 60 and min(counts.values()) > 0
    # The same reviews split by review instead put most movies on several sides.
    out2, _ = write(tmp_path / "by-review", archive, group_by_movie=False)
    sides = collections.defaultdict(set)
    for split in ("train", "eval", "report"):
        for example in read_split(out2, split):
            review_id = feature(example, "review_id")
            sides[(review_id.split("/")[1], int(review_id.rsplit("/", 1)[1]) // 5)].add(split)
    assert sum(len(s) > 1 for s in sides.values()) > 30


def test_movie_ids_come_from_the_urls_files():
    reviews = imdb_data.read_reviews(
        write_archive(Path(tempfile.mkdtemp()) / "m.tar.gz",
                      make_members(count=4, reviews_per_movie=2)), imdb_data.ReadReport())
    by_id = {r.review_id: r.movie_id for r in reviews}
    assert by_id["train/pos/3"] == "tt0000001" and by_id["train/neg/0"] == "tt0010000"
    assert movie_url(1).endswith("tt0000001/usercomments")


@pytest.mark.parametrize("rule,message", [
    (dict(eval_percent=0), "eval_percent"), (dict(eval_percent=100), "eval_percent"),
    (dict(eval_percent=50, report_percent=50), "report_percent"),
    (dict(report_percent=-1), "report_percent")])
def test_split_rule_refuses_impossible_percentages(rule, message):
    with pytest.raises(ValueError, match=message):
        imdb_data.SplitRule(**rule)


def test_extracted_directory_and_test_split(tmp_path):
    archive = write_archive(tmp_path / "full.tar.gz", make_members(test_split=True, unsup=True))
    with tarfile.open(archive) as handle:
        handle.extractall(tmp_path / "extracted")
    for source in (archive, tmp_path / "extracted", tmp_path / "extracted" / "aclImdb"):
        out, summary = write(tmp_path / f"out-{source.name}", source)
        assert summary["splits"]["test"]["reviews"] == 40
        assert summary["has_test_split"] is True
        total = sum(s["reviews"] for s in summary["splits"].values())
        assert total == 80  # unsup/ ignored


def test_sampling_keeps_a_stable_subset(tmp_path):
    archive = write_archive(tmp_path / "big.tar.gz", make_members(count=200))
    ids = []
    for run in ("a", "b"):
        out, summary = write(tmp_path / run, archive, sample_percent=25)
        ids.append({feature(e, "review_id") for e in all_examples(out)})
    assert 60 < len(ids[0]) < 140  # ~100 of 400
    assert ids[0] == ids[1]  # the same reviews every time
    out, _ = write(tmp_path / "c", archive, sample_percent=50)
    assert ids[0] < {feature(e, "review_id") for e in all_examples(out)}  # nested samples


def test_bad_files_are_skipped_and_counted(tmp_path):
    members = make_members(count=200)
    members["aclImdb/train/neutral/1_5.txt"] = b"meh"
    members["aclImdb/train/pos/notanid.txt"] = b"good"
    members["aclImdb/train/pos/9999_11.txt"] = b"rating out of range"
    members["aclImdb/train/neg/9998_2.txt"] = b"\xff\xfe not utf-8"
    _, summary = write(tmp_path, write_archive(tmp_path / "a.tar.gz", members), max_skip_fraction=0.05)
    assert summary["skipped"] == {
        "unknown label folder (expected pos/neg)": 1,
        "file name is not <id>_<rating 1-10>.txt": 2,
        "not valid UTF-8": 1,
    }
    assert sum(s["reviews"] for s in summary["splits"].values()) == 400


def test_too_many_bad_files_is_fatal(tmp_path):
    members = make_members(count=5)
    for i in range(5):
        members[f"aclImdb/train/pos/x{i}.txt"] = b"bad name"
    with pytest.raises(imdb_data.DataError, match="could not be read"):
        write(tmp_path, write_archive(tmp_path / "a.tar.gz", members))


@pytest.mark.parametrize("case,members,message", [
    ("no train folder", {"aclImdb/README": b"x"}, "no labelled reviews"),
    ("empty label folders", {"aclImdb/train/pos/": b""}, "no labelled reviews"),
])
def test_archives_without_reviews_are_fatal(tmp_path, case, members, message):
    archive = write_archive(tmp_path / "a.tar.gz", {k: v for k, v in members.items() if not k.endswith("/")})
    with pytest.raises(imdb_data.DataError, match=message):
        write(tmp_path, archive)


def test_archive_with_only_a_test_split_says_so(tmp_path):
    members = {k.replace("/train/", "/test/"): v for k, v in make_members(count=5).items()}
    with pytest.raises(imdb_data.DataError, match="no labelled reviews under train/"):
        write(tmp_path, write_archive(tmp_path / "only-test.tar.gz", members))


def test_directory_without_train_is_fatal(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(imdb_data.DataError, match="no train/ folder"):
        write(tmp_path, tmp_path / "empty")


def test_corrupt_and_truncated_archives_are_fatal(tmp_path):
    good = write_archive(tmp_path / "good.tar.gz", make_members(count=50))
    truncated = tmp_path / "truncated.tar.gz"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    garbage = tmp_path / "garbage.tar.gz"
    garbage.write_bytes(b"this is not a tarball" * 100)
    for bad in (truncated, garbage):
        with pytest.raises(imdb_data.DataError, match=f"{bad.name}: the archive is corrupt"):
            write(tmp_path / bad.stem, bad)


def test_missing_path_is_a_clear_error(tmp_path):
    with pytest.raises(imdb_data.DataError, match="no such file or directory"):
        write(tmp_path, tmp_path / "nope.tar.gz")


def test_download_is_verified_before_use(tmp_path, small_archive):
    url = small_archive.as_uri()  # urllib reads file:// like http://; no network involved
    good = imdb_data.file_checksums(small_archive)
    cached = imdb_data.download(url, tmp_path / "cache", expected=good)
    assert cached.read_bytes() == small_archive.read_bytes()
    wrong = {name: "0" * len(value) for name, value in good.items()}
    with pytest.raises(imdb_data.DataError, match="checksum mismatch"):
        imdb_data.download(url, tmp_path / "cache2", expected=wrong)
    assert not any((tmp_path / "cache2").iterdir())  # nothing half-downloaded is kept
    with pytest.raises(imdb_data.DataError, match="no pinned checksum"):
        imdb_data.download("https://example.invalid/other.tar.gz", tmp_path / "cache3")


def test_length_classes_are_the_train_splits_quartiles_and_every_example_has_one(tmp_path, small_archive):
    from imdb_sentiment.components.imdb_example_gen import length_boundaries, length_bucket

    reviews = [imdb_data.Review(f"train/pos/{n}", "train", "word " * n, 1, 8) for n in range(1, 101)]
    assert length_boundaries(reviews) == [26, 51, 76]
    assert [length_bucket(n, [26, 51, 76]) for n in (1, 26, 27, 76, 77, 5000)] == [
        "q1: 1-26 words", "q1: 1-26 words", "q2: 27-51 words", "q3: 52-76 words",
        "q4: 77+ words", "q4: 77+ words"]
    assert length_boundaries([reviews[0]] * 10) == [1]  # ties collapse: two classes, not empty ones
    out, summary = write(tmp_path, small_archive)
    assert len(summary["length_buckets"]) >= 2
    for example in all_examples(out):
        assert feature(example, "length_bucket") in summary["length_buckets"]


def test_whether_the_data_has_a_test_split_is_seen_without_extracting(tmp_path, small_archive):
    with_test = write_archive(tmp_path / "full.tar.gz", make_members(test_split=True))
    assert imdb_data.has_test_reviews(str(with_test)) is True
    assert imdb_data.has_test_reviews(str(small_archive)) is False
    with tarfile.open(with_test) as handle:
        handle.extractall(tmp_path / "extracted")
    assert imdb_data.has_test_reviews(str(tmp_path / "extracted")) is True
    assert imdb_data.has_test_reviews("") is True  # the official download has test/
    assert imdb_data.has_test_reviews("gs://bucket/aclImdb.tar.gz") is None  # cannot know here
    out, summary = write(tmp_path / "out", with_test)
    assert "test" in summary["splits"]
    with pytest.raises(imdb_data.DataError, match="test_split is on but there are no reviews under test/"):
        write_splits(str(tmp_path / "out2"), str(small_archive), str(tmp_path / "cache"),
                     rule=imdb_data.SplitRule(eval_percent=20, report_percent=20), sample_percent=100,
                     max_skip_fraction=0.01, require_test=True)


def test_unlabelled_reviews_of_train_movies_become_the_unsup_split_without_a_label(tmp_path):
    members = make_members(count=40, reviews_per_movie=2)
    urls = []
    for i in range(60):  # unlabelled review i is about labelled movie i // 2 (pos folder's)
        members[f"aclImdb/train/unsup/{i}_0.txt"] = f"an unlabelled review {i}".encode()
        urls.append(movie_url(i // 2))
    members["aclImdb/train/urls_unsup.txt"] = "\n".join(urls).encode() + b"\n"
    data = write_archive(tmp_path / "unsup.tar.gz", members)
    rule = imdb_data.SplitRule(eval_percent=20, report_percent=20)
    out = tmp_path / "examples"
    summary = write_splits(str(out), str(data), str(tmp_path / "cache"), rule=rule,
                           sample_percent=100, max_skip_fraction=0.01, unlabelled=True)
    unsup = read_split(out, imdb_data.UNSUP_SPLIT)
    assert summary["unlabelled_found"] == 60 and 0 < len(unsup) < 60
    assert summary["splits"][imdb_data.UNSUP_SPLIT]["reviews"] == len(unsup)
    assert all("label" not in e.features.feature for e in unsup)
    # Only reviews of train movies: no eval or report movie gets a teacher's label.
    labelled_split_of_movie = {}
    for split in ("train", "eval", "report"):
        for example in read_split(out, split):
            number = int(feature(example, "review_id").rsplit("/", 1)[1])
            if feature(example, "review_id").startswith("train/pos/"):
                labelled_split_of_movie[number // 2] = split
    for example in unsup:
        movie = int(feature(example, "review_id").rsplit("/", 1)[1]) // 2
        assert labelled_split_of_movie.get(movie, "train") == "train"
    # Without asking, the unlabelled reviews are not read.
    _, plain = write(tmp_path / "plain", data)
    assert imdb_data.UNSUP_SPLIT not in plain["splits"] and plain["unlabelled_found"] is None


def test_a_review_over_the_size_limit_is_skipped_unread_and_counted_per_split(tmp_path):
    members = make_members(count=40, reviews_per_movie=2)
    members["aclImdb/train/pos/3_10.txt"] = b"far too long " * 100_000  # 1.3 MB
    data = write_archive(tmp_path / "big.tar.gz", members)
    rule = imdb_data.SplitRule(eval_percent=20, report_percent=20)
    summary = write_splits(str(tmp_path / "out"), str(data), str(tmp_path / "cache"), rule=rule,
                           sample_percent=100, max_skip_fraction=0.05, max_review_bytes=1_000_000)
    oversized = summary["oversized"]
    assert oversized["skipped"] == 1 and oversized["examples"] == ["train/pos/3"]
    assert sum(oversized["by_split"].values()) == 1
    assert set(oversized["by_split"]) <= {"train", "eval", "report"}
    assert summary["skipped"][imdb_data.OVERSIZED] == 1
    assert sum(s["reviews"] for s in summary["splits"].values()) == 79
    # It counts toward the skip limit like any unreadable review.
    with pytest.raises(imdb_data.DataError, match="could not be read"):
        write_splits(str(tmp_path / "out2"), str(data), str(tmp_path / "cache"), rule=rule,
                     sample_percent=100, max_skip_fraction=0.01, max_review_bytes=1_000_000)


_PEAK_SCRIPT = """
import resource, sys
from imdb_sentiment.components import imdb_data
from imdb_sentiment.components.imdb_example_gen import write_splits
summary = write_splits(sys.argv[2], sys.argv[1], sys.argv[3], rule=imdb_data.SplitRule(20, 20),
                       sample_percent=100, max_skip_fraction=0.05, max_review_bytes=1_000_000)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, summary["oversized"]["skipped"])
"""


@pytest.mark.slow
def test_a_fifty_megabyte_review_costs_ingestion_no_memory(tmp_path):
    import subprocess
    import sys

    members = make_members(count=40, reviews_per_movie=2)
    plain = write_archive(tmp_path / "plain.tar.gz", members)
    members["aclImdb/train/pos/3_10.txt"] = b"a repeated phrase, " * 2_700_000  # 51 MB
    huge = write_archive(tmp_path / "huge.tar.gz", members)

    def peak_kib(data: Path, name: str):
        result = subprocess.run([sys.executable, "-c", _PEAK_SCRIPT, str(data), str(tmp_path / name),
                                 str(tmp_path / "cache")], capture_output=True, text=True, check=True)
        peak, skipped = result.stdout.split()[-2:]
        return int(peak), int(skipped)

    (plain_peak, plain_skipped), (huge_peak, huge_skipped) = peak_kib(plain, "a"), peak_kib(huge, "b")
    assert (plain_skipped, huge_skipped) == (0, 1)
    assert huge_peak < 1.5 * plain_peak, (plain_peak, huge_peak)
