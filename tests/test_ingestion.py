"""ImdbExampleGen's reading, splitting and failure policy, on archives built here."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from pathlib import Path

import pytest
import tensorflow as tf

from imdb_sentiment.components import imdb_data
from imdb_sentiment.components.imdb_example_gen import write_splits
from conftest import make_members, write_archive


def read_split(uri: Path, split: str):
    files = sorted((uri / f"Split-{split}").glob("*.gz"))
    records = tf.data.TFRecordDataset([str(f) for f in files], compression_type="GZIP")
    return [tf.train.Example.FromString(r.numpy()) for r in records]


def feature(example: tf.train.Example, name: str):
    value = example.features.feature[name]
    return value.int64_list.value[0] if value.int64_list.value else value.bytes_list.value[0].decode()


def write(tmp_path: Path, data: Path, **overrides):
    options = dict(eval_percent=20, sample_percent=100, split_salt="imdb-v1", max_skip_fraction=0.01)
    options.update(overrides)
    out = tmp_path / "examples"
    summary = write_splits(str(out), str(data), str(tmp_path / "cache"), **options)
    return out, summary


def test_tarball_becomes_train_and_eval_examples(tmp_path, small_archive):
    out, summary = write(tmp_path, small_archive)
    assert set(summary["splits"]) == {"train", "eval"}
    examples = read_split(out, "train") + read_split(out, "eval")
    assert len(examples) == 40
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
    eval_ids = {feature(e, "review_id") for e in read_split(out1, "eval")}
    assert eval_ids == {feature(e, "review_id") for e in read_split(out2, "eval")}
    for review_id in eval_ids:
        assert imdb_data.hash_bucket(review_id, "imdb-v1") < 20
    # Same bytes on every run: files are written in hash order, not archive order.
    files1 = sorted((out1 / "Split-train").glob("*.gz"))
    files2 = sorted((out2 / "Split-train").glob("*.gz"))
    assert [gzip.decompress(f.read_bytes()) for f in files1] == [
        gzip.decompress(f.read_bytes()) for f in files2]


def test_hash_bucket_is_stable_across_machines():
    # A fixed value: changing the hash would silently move reviews between splits.
    expected = int.from_bytes(hashlib.sha256(b"imdb-v1:train/pos/0").digest()[:8], "big") % 100
    assert imdb_data.hash_bucket("train/pos/0", "imdb-v1") == expected


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
    _, summary = write(tmp_path / "s", archive, sample_percent=25)
    kept = sum(s["reviews"] for s in summary["splits"].values())
    assert 60 < kept < 140  # ~100 of 400


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


def _tar_with(tmp_path: Path, info: tarfile.TarInfo, data: bytes = b"") -> Path:
    path = tmp_path / f"evil-{abs(hash(info.name))}.tar"
    with tarfile.open(path, "w") as archive:
        archive.addfile(info, io.BytesIO(data) if data else None)
    return path


def test_safe_extract_refuses_escaping_members(tmp_path):
    traversal = tarfile.TarInfo("../escape.txt")
    traversal.size = 1
    absolute = tarfile.TarInfo("/tmp/absolute.txt")
    absolute.size = 1
    link = tarfile.TarInfo("aclImdb/link")
    link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
    for info, data in ((traversal, b"x"), (absolute, b"x"), (link, b"")):
        with pytest.raises(imdb_data.DataError, match="refusing to extract"):
            imdb_data.safe_extract(_tar_with(tmp_path, info, data), tmp_path / "target")
    assert not (tmp_path / "escape.txt").exists()
    ok = write_archive(tmp_path / "ok.tar.gz", make_members(count=2))
    imdb_data.safe_extract(ok, tmp_path / "target")
    assert (tmp_path / "target" / "aclImdb" / "train" / "pos" / "0_7.txt").exists()
