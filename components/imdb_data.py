"""Reading the Large Movie Review Dataset (aclImdb) into records.

Plain Python, no TFX: the ExampleGen executor wraps it, and tests call it
directly. Accepted sources: the official tarball (or one with the same
layout), an extracted directory, or an http(s) URL downloaded into a cache
and verified against pinned checksums.

Failure policy (documented in the README):
- Fatal (`DataError`): unreadable/corrupt/truncated archive, checksum
  mismatch, no `train/` folder, no labelled review at all, or more than
  `max_skip_fraction` of review files skipped.
- Skipped and counted: a review file under an unknown label folder, a file
  name that is not `<id>_<rating>.txt` with a rating 1-10, a file that is
  not valid UTF-8.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import os
import re
import tarfile
import tempfile
import urllib.parse
import urllib.request
import zlib
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional, Tuple

OFFICIAL_URL = "https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz"
#: Checksums of the official archive (published by several dataset loaders).
OFFICIAL_CHECKSUMS = {
    "md5": "7c2ac02c03563afcf9b574c7e56c153a",
    "sha1": "01ada507287d82875905620988597833ad4e0903",
}
LABELS = {"pos": 1, "neg": 0}
SOURCE_SPLITS = ("train", "test")
#: <split>/<label dir>/<file>, optionally below an `aclImdb/` prefix.
_MEMBER_RE = re.compile(r"^(?:.*/)?(train|test)/([^/]+)/([^/]+)$")
_FILE_RE = re.compile(r"^(\d+)_(\d+)\.txt$")
#: Folders that hold no labelled reviews by design.
_UNLABELLED_DIRS = {"unsup"}


class DataError(Exception):
    """Input data that cannot become a training set; the message says why."""


@dataclasses.dataclass(frozen=True)
class Review:
    review_id: str  # e.g. "train/pos/123": ids repeat across label folders
    source_split: str  # "train" or "test"
    text: str
    label: int
    rating: int


@dataclasses.dataclass
class ReadReport:
    """What was read and what was skipped, for the run summary."""

    reviews: int = 0
    skipped: Dict[str, int] = dataclasses.field(default_factory=dict)
    skipped_examples: Dict[str, List[str]] = dataclasses.field(default_factory=dict)
    has_test_split: bool = False

    def skip(self, reason: str, name: str) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1
        examples = self.skipped_examples.setdefault(reason, [])
        if len(examples) < 5:
            examples.append(name)

    @property
    def skipped_total(self) -> int:
        return sum(self.skipped.values())


def _classify_member(name: str, report: ReadReport) -> Optional[Tuple[str, str, int, int]]:
    """(split, label_dir, id, rating) of a review member, None if not a review."""
    match = _MEMBER_RE.match(name)
    if not match:
        return None
    split, label_dir, file_name = match.groups()
    if label_dir in _UNLABELLED_DIRS:
        return None
    if label_dir not in LABELS:
        report.skip("unknown label folder (expected pos/neg)", name)
        return None
    file_match = _FILE_RE.match(file_name)
    if not file_match or not 1 <= int(file_match.group(2)) <= 10:
        report.skip("file name is not <id>_<rating 1-10>.txt", name)
        return None
    return split, label_dir, int(file_match.group(1)), int(file_match.group(2))


def _decode(raw: bytes, name: str, report: ReadReport) -> Optional[str]:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        report.skip("not valid UTF-8", name)
        return None


def _iter_tarball(path: Path, report: ReadReport) -> Iterator[Review]:
    """Streams reviews out of a (gzipped) tarball without extracting it.

    Decompression goes through our own GzipFile, drained after the last
    member: tarfile's stream mode alone stops silently at a truncated gzip
    stream, while GzipFile raises on a missing end marker or a bad CRC.
    """
    try:
        with open(path, "rb") as raw:
            compressed = raw.read(2) == b"\x1f\x8b"
            raw.seek(0)
            stream = gzip.GzipFile(fileobj=raw, mode="rb") if compressed else raw
            with tarfile.open(fileobj=stream, mode="r|") as archive:
                for member in archive:
                    if not member.isfile():
                        continue
                    parsed = _classify_member(member.name, report)
                    if parsed is None:
                        continue
                    handle = archive.extractfile(member)
                    text = _decode(handle.read() if handle else b"", member.name, report)
                    if text is None:
                        continue
                    split, label_dir, number, rating = parsed
                    yield Review(f"{split}/{label_dir}/{number}", split, text,
                                 LABELS[label_dir], rating)
            while stream.read(1 << 20):
                pass
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile, OSError) as error:
        raise DataError(f"{path}: the archive is corrupt or truncated ({error})") from error


def _iter_directory(root: Path, report: ReadReport) -> Iterator[Review]:
    for split in SOURCE_SPLITS:
        split_dir = root / split
        if not split_dir.is_dir():
            continue
        for label_dir in sorted(p for p in split_dir.iterdir() if p.is_dir()):
            for path in sorted(label_dir.iterdir()):
                relative = f"{split}/{label_dir.name}/{path.name}"
                parsed = _classify_member(relative, report)
                if parsed is None:
                    continue
                text = _decode(path.read_bytes(), str(path), report)
                if text is None:
                    continue
                _, _, number, rating = parsed
                yield Review(f"{split}/{label_dir.name}/{number}", split,
                             text, LABELS[label_dir.name], rating)


def _dataset_root(directory: Path) -> Path:
    """The folder holding `train/`: the directory itself or its `aclImdb/`."""
    for candidate in (directory, directory / "aclImdb"):
        if (candidate / "train").is_dir():
            return candidate
    raise DataError(f"{directory}: no train/ folder (expected {directory}/aclImdb/train/pos, ...)")


def file_checksums(path: Path) -> Dict[str, str]:
    hashes = {name: hashlib.new(name) for name in OFFICIAL_CHECKSUMS}
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            for digest in hashes.values():
                digest.update(block)
    return {name: digest.hexdigest() for name, digest in hashes.items()}


def download(url: str, cache_dir: Path, expected: Optional[Dict[str, str]] = None,
             progress: Optional[Callable[[int, int], None]] = None) -> Path:
    """Downloads `url` into `cache_dir` once, verified before it is used.

    The file is written under a temporary name and renamed only after its
    checksums match, so an interrupted or tampered download is never reused.
    """
    expected = OFFICIAL_CHECKSUMS if expected is None and url == OFFICIAL_URL else expected
    if not expected:
        raise DataError(f"{url}: no pinned checksum for this URL; download it yourself and "
                        "pass the local path")
    cache_dir.mkdir(parents=True, exist_ok=True)
    target = cache_dir / Path(urllib.parse.urlparse(url).path).name
    if target.exists() and file_checksums(target) == expected:
        return target
    fd, partial = tempfile.mkstemp(dir=cache_dir, prefix=f".{target.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=60) as response:
            total = int(response.headers.get("Content-Length") or 0)
            done = 0
            for block in iter(lambda: response.read(1 << 20), b""):
                out.write(block)
                done += len(block)
                if progress:
                    progress(done, total)
        actual = file_checksums(Path(partial))
        if actual != expected:
            raise DataError(f"{url}: checksum mismatch (expected {expected}, got {actual}); "
                            "the download was discarded")
        os.replace(partial, target)
        return target
    except OSError as error:
        raise DataError(f"{url}: download failed ({error})") from error
    finally:
        if os.path.exists(partial):
            os.remove(partial)


def stage_remote(uri: str, cache_dir: Path) -> Path:
    """Copies an archive from object storage (gs://, s3://, ...) to `cache_dir`."""
    import tensorflow as tf  # only for its filesystems; the rest stays plain Python

    if not tf.io.gfile.exists(uri):
        raise DataError(f"{uri}: no such object")
    cache_dir.mkdir(parents=True, exist_ok=True)
    target = cache_dir / Path(urllib.parse.urlparse(uri).path).name
    partial = cache_dir / f".{target.name}.part"
    tf.io.gfile.copy(uri, str(partial), overwrite=True)
    os.replace(partial, target)
    return target


def resolve_source(data: str, cache_dir: Path) -> Path:
    """A local archive or directory for `data` (a path, a URL, or "")."""
    if not data:
        return download(OFFICIAL_URL, cache_dir)
    if re.match(r"^https?://", data):
        return download(data, cache_dir)
    if re.match(r"^[a-z][a-z0-9+.-]*://", data):
        return stage_remote(data, cache_dir)
    path = Path(data).expanduser()
    if not path.exists():
        raise DataError(f"{data}: no such file or directory")
    return path


def iter_reviews(source: Path, report: ReadReport) -> Iterator[Review]:
    """Every labelled review in an archive or directory, in a stable order."""
    if source.is_dir():
        yield from _iter_directory(_dataset_root(source), report)
    else:
        yield from _iter_tarball(source, report)


def hash_bucket(key: str, salt: str, buckets: int = 100) -> int:
    """A bucket in [0, buckets) that is the same on every run and machine."""
    digest = hashlib.sha256(f"{salt}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % buckets


def assign_split(review: Review, eval_percent: int, salt: str) -> str:
    """`test` for test/ reviews; `eval` or `train` for train/ by hash of the id."""
    if review.source_split == "test":
        return "test"
    return "eval" if hash_bucket(review.review_id, salt) < eval_percent else "train"


def in_sample(review: Review, sample_percent: int, salt: str) -> bool:
    return sample_percent >= 100 or hash_bucket(review.review_id, f"sample:{salt}") < sample_percent


def check_report(report: ReadReport, source: Path, max_skip_fraction: float) -> None:
    """Raises DataError when what was read cannot make a sound training set."""
    seen = report.reviews + report.skipped_total
    if report.reviews == 0:
        detail = f" ({report.skipped_total} files skipped: {report.skipped})" if seen else ""
        raise DataError(f"{source}: no labelled reviews found under train/pos or train/neg{detail}")
    if report.skipped_total > max_skip_fraction * seen:
        raise DataError(f"{source}: {report.skipped_total} of {seen} review files could not be "
                        f"read ({report.skipped}); first examples: {report.skipped_examples}")


def safe_extract(archive_path: Path, target: Path) -> None:
    """Extracts a tarball, refusing members that would escape `target`.

    Absolute paths, `..` components, links and device files are rejected,
    whatever the Python version's own tarfile filters do.
    """
    target = target.resolve()
    with tarfile.open(archive_path, mode="r:*") as archive:
        members = archive.getmembers()
        for member in members:
            destination = (target / member.name).resolve()
            if member.name.startswith("/") or not str(destination).startswith(str(target) + os.sep):
                raise DataError(f"{archive_path}: member {member.name!r} would be written outside "
                                f"{target}; refusing to extract")
            if not (member.isfile() or member.isdir()):
                raise DataError(f"{archive_path}: member {member.name!r} is a link or special "
                                "file; refusing to extract")
        archive.extractall(target, members=members)

