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
import logging
import os
import re
import tarfile
import tempfile
import urllib.parse
import urllib.request
import zlib
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

OFFICIAL_URL = "https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz"
#: Checksums of the official archive (published by several dataset loaders).
OFFICIAL_CHECKSUMS = {
    "md5": "7c2ac02c03563afcf9b574c7e56c153a",
    "sha1": "01ada507287d82875905620988597833ad4e0903",
}
LABELS = {"pos": 1, "neg": 0}
#: The label of a review from `train/unsup/`: it has none.
UNLABELLED = -1
SOURCE_SPLITS = ("train", "test")
#: The split of the unlabelled reviews: read only by the teacher that labels
#: them for distillation, never by a labelled split, a statistic or a gate.
UNSUP_SPLIT = "unsup"
#: The labelled splits ImdbExampleGen writes: `train`, `eval` and `report`
#: come from `train/` (see `SplitRule`), `test` is the archive's own `test/`.
SPLITS = ("train", "eval", "report", "test")
#: What `SplitRule.split_of` returns for a review no split may hold.
EXCLUDED = ""
#: <split>/<label dir>/<file>, optionally below an `aclImdb/` prefix.
_MEMBER_RE = re.compile(r"^(?:.*/)?(train|test)/([^/]+)/([^/]+)$")
_FILE_RE = re.compile(r"^(\d+)_(\d+)\.txt$")
#: <split>/urls_<label dir>.txt: line i is the IMDB page of review i's movie.
_URLS_RE = re.compile(r"^(?:.*/)?(train|test)/urls_([a-z]+)\.txt$")
_MOVIE_RE = re.compile(r"/title/(tt\d+)")
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
    #: IMDB title id ("tt0453418") from the archive's urls files; "" if unknown.
    movie_id: str = ""

    @property
    def labelled(self) -> bool:
        return self.label != UNLABELLED

    @property
    def number(self) -> int:
        return int(self.review_id.rsplit("/", 1)[1])

    @property
    def split_group(self) -> str:
        """What the split keeps together: the movie when known, else the review."""
        return f"movie:{self.movie_id}" if self.movie_id else f"review:{self.review_id}"


@dataclasses.dataclass(frozen=True)
class SplitRule:
    """How `train/` is cut into the train, eval and report splits.

    - `eval` (early stopping, choosing between variants, the blessing gates)
      and `report` (the accuracy the project states; no decision reads it)
      each take `*_percent` of the hash buckets, the rest is `train`.
    - Reviews of one movie stay together when the archive maps reviews to
      movies (`urls_*.txt`), as the official train/test split does: a split
      by review would put reviews of one movie on both sides.
    - The archive's own `test/` is always `test`.
    - An unlabelled review (`train/unsup/`) goes to `unsup` when its movie
      falls in `train`, and is excluded otherwise: a teacher's label for a
      review of an `eval` or `report` movie would leak those movies into training.
    """

    eval_percent: int = 10
    report_percent: int = 10
    salt: str = "imdb-v1"
    group_by_movie: bool = True

    def __post_init__(self) -> None:
        if not 0 < self.eval_percent < 100:
            raise ValueError(f"eval_percent must be in (0, 100), got {self.eval_percent}")
        if not 0 <= self.report_percent < 100 - self.eval_percent:
            raise ValueError(f"report_percent must be in [0, {100 - self.eval_percent}), "
                             f"got {self.report_percent}")

    def split_of(self, review: Review) -> str:
        if review.source_split == "test":
            return "test"
        key = review.split_group if self.group_by_movie else f"review:{review.review_id}"
        bucket = hash_bucket(key, self.salt)
        if bucket < self.eval_percent:
            split = "eval"
        elif bucket < self.eval_percent + self.report_percent:
            split = "report"
        else:
            split = "train"
        if not review.labelled:
            return UNSUP_SPLIT if split == "train" else EXCLUDED
        return split


@dataclasses.dataclass
class ReadReport:
    """What was read and what was skipped, for the run summary."""

    reviews: int = 0
    skipped: Dict[str, int] = dataclasses.field(default_factory=dict)
    skipped_examples: Dict[str, List[str]] = dataclasses.field(default_factory=dict)
    has_test_split: bool = False
    #: Labelled reviews the archive's urls files mapped to a movie.
    with_movie: int = 0
    #: Reviews skipped unread for being over the size limit: (review id, movie id).
    oversized: List[Tuple[str, str]] = dataclasses.field(default_factory=list)

    def skip(self, reason: str, name: str) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1
        examples = self.skipped_examples.setdefault(reason, [])
        if len(examples) < 5:
            examples.append(name)

    @property
    def skipped_total(self) -> int:
        return sum(self.skipped.values())


def _classify_member(name: str, report: ReadReport,
                     unlabelled: bool = False) -> Optional[Tuple[str, str, int, int]]:
    """(split, label_dir, id, rating) of a review member, None if not a review.

    `train/unsup/<id>_0.txt` counts (rating 0) only when `unlabelled` is set.
    """
    match = _MEMBER_RE.match(name)
    if not match:
        return None
    split, label_dir, file_name = match.groups()
    if label_dir in _UNLABELLED_DIRS:
        file_match = _FILE_RE.match(file_name)
        if not unlabelled or split != "train" or not file_match:
            return None
        return split, label_dir, int(file_match.group(1)), 0
    if label_dir not in LABELS:
        report.skip("unknown label folder (expected pos/neg)", name)
        return None
    file_match = _FILE_RE.match(file_name)
    if not file_match or not 1 <= int(file_match.group(2)) <= 10:
        report.skip("file name is not <id>_<rating 1-10>.txt", name)
        return None
    return split, label_dir, int(file_match.group(1)), int(file_match.group(2))


#: The skip reason of a review over the size limit.
OVERSIZED = "review over the size limit (ingestion.max_review_bytes)"


def _oversized(size: int, limit: int, review_id: str, name: str, report: ReadReport) -> bool:
    """Whether a review file of `size` bytes is over `limit` (0: no limit); counts it if so."""
    if not limit or size <= limit:
        return False
    report.skip(OVERSIZED, f"{name} ({size:,} bytes)")
    report.oversized.append((review_id, ""))
    return True


def _decode(raw: bytes, name: str, report: ReadReport) -> Optional[str]:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        report.skip("not valid UTF-8", name)
        return None


def _movie_ids(raw: bytes) -> List[str]:
    """Line i of a urls file → the IMDB title id of review i ("" if unparsable)."""
    lines = raw.decode("utf-8", errors="replace").splitlines()
    return [match.group(1) if match else "" for match in map(_MOVIE_RE.search, lines)]


#: What the readers yield besides reviews: (split/label dir, movie ids by review number).
MovieIndex = Tuple[str, List[str]]


def _urls_key(name: str) -> Optional[str]:
    match = _URLS_RE.match(name)
    return f"{match.group(1)}/{match.group(2)}" if match else None


def has_test_reviews(data: str) -> Optional[bool]:
    """Whether `data` holds labelled reviews under `test/`; None when that cannot be known here.

    The official download has them; a local folder or archive is looked at
    (an archive is listed, not extracted: a few seconds); remote data is not.
    """
    if not data:
        return True
    if re.match(r"^[a-z][a-z0-9+.-]*://", data):
        return None
    path = Path(data).expanduser()
    if path.is_dir():
        try:
            root = _dataset_root(path)
        except DataError:
            return False
        return any((root / "test" / label).is_dir() for label in LABELS)
    if not path.is_file():
        return None
    try:
        with tarfile.open(path, "r|*") as archive:
            return any(member.isfile() and re.search(r"(^|/)test/(pos|neg)/[^/]+\.txt$", member.name)
                       for member in archive)
    except (tarfile.TarError, OSError, EOFError):
        return None  # ImdbExampleGen reports a broken archive with a clear error


def _iter_tarball(path: Path, report: ReadReport, unlabelled: bool = False,
                  max_review_bytes: int = 0) -> Iterator[object]:
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
                    urls_key = _urls_key(member.name)
                    if urls_key:
                        handle = archive.extractfile(member)
                        yield urls_key, _movie_ids(handle.read() if handle else b"")
                        continue
                    parsed = _classify_member(member.name, report, unlabelled)
                    if parsed is None:
                        continue
                    review_id = f"{parsed[0]}/{parsed[1]}/{parsed[2]}"
                    if _oversized(member.size, max_review_bytes, review_id, member.name, report):
                        continue  # never read: the stream skips past it
                    handle = archive.extractfile(member)
                    text = _decode(handle.read() if handle else b"", member.name, report)
                    if text is None:
                        continue
                    split, label_dir, number, rating = parsed
                    yield Review(f"{split}/{label_dir}/{number}", split, text,
                                 LABELS.get(label_dir, UNLABELLED), rating)
            while stream.read(1 << 20):
                pass
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile, OSError) as error:
        raise DataError(f"{path}: the archive is corrupt or truncated ({error})") from error


def _iter_directory(root: Path, report: ReadReport, unlabelled: bool = False,
                    max_review_bytes: int = 0) -> Iterator[object]:
    for split in SOURCE_SPLITS:
        split_dir = root / split
        if not split_dir.is_dir():
            continue
        for urls in sorted(split_dir.glob("urls_*.txt")):
            yield f"{split}/{urls.stem[len('urls_'):]}", _movie_ids(urls.read_bytes())
        for label_dir in sorted(p for p in split_dir.iterdir() if p.is_dir()):
            for path in sorted(label_dir.iterdir()):
                relative = f"{split}/{label_dir.name}/{path.name}"
                parsed = _classify_member(relative, report, unlabelled)
                if parsed is None:
                    continue
                review_id = f"{split}/{label_dir.name}/{parsed[2]}"
                if _oversized(path.stat().st_size, max_review_bytes, review_id, str(path), report):
                    continue
                text = _decode(path.read_bytes(), str(path), report)
                if text is None:
                    continue
                _, _, number, rating = parsed
                yield Review(f"{split}/{label_dir.name}/{number}", split,
                             text, LABELS.get(label_dir.name, UNLABELLED), rating)


def _dataset_root(directory: Path) -> Path:
    """The folder holding `train/`: the directory itself or its `aclImdb/`."""
    for candidate in (directory, directory / "aclImdb"):
        if (candidate / "train").is_dir():
            return candidate
    raise DataError(f"{directory}: no train/ folder (expected {directory}/aclImdb/train/pos, ...)")


def file_checksums(path: Path, algorithms: Sequence[str] = tuple(OFFICIAL_CHECKSUMS)) -> Dict[str, str]:
    """Hex digests of the file, one pass for all `algorithms` (hashlib names)."""
    hashes = {name: hashlib.new(name) for name in algorithms}
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            for digest in hashes.values():
                digest.update(block)
    return {name: digest.hexdigest() for name, digest in hashes.items()}


def download(url: str, cache_dir: Path, expected: Optional[Dict[str, str]] = None) -> Path:
    """Downloads `url` into `cache_dir` once, verified before it is used.

    Progress is logged every 10% (or every 16 MiB when the size is unknown).

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
            done, step = 0, max(total // 10, 1) if total else 16 << 20
            for block in iter(lambda: response.read(1 << 20), b""):
                out.write(block)
                if (done + len(block)) // step > done // step:
                    logging.info("Downloading %s: %d MiB%s", url, (done + len(block)) >> 20,
                                 f" of {total >> 20} MiB" if total else "")
                done += len(block)
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


def read_reviews(source: Path, report: ReadReport, unlabelled: bool = False,
                 max_review_bytes: int = 0) -> List[Review]:
    """Every labelled review in an archive or directory, in a stable order,
    each with its movie id when the archive has `urls_*.txt` (in the official
    tarball they come after the reviews, so the whole archive is read first).

    With `unlabelled`, the reviews of `train/unsup/` too (label `UNLABELLED`);
    they are not counted in `report.reviews`, which counts labelled reviews.
    A review file over `max_review_bytes` (0: no limit) is skipped unread and
    counted (`report.oversized`, with its movie id once the urls files are read).
    """
    items = (_iter_directory(_dataset_root(source), report, unlabelled, max_review_bytes)
             if source.is_dir() else _iter_tarball(source, report, unlabelled, max_review_bytes))
    reviews: List[Review] = []
    movies: Dict[str, List[str]] = {}
    for item in items:
        if isinstance(item, Review):
            reviews.append(item)
        else:
            key, ids = item
            movies[key] = ids
    for index, review in enumerate(reviews):
        ids = movies.get(review.review_id.rsplit("/", 1)[0], [])
        if review.number < len(ids) and ids[review.number]:
            reviews[index] = dataclasses.replace(review, movie_id=ids[review.number])
            report.with_movie += review.labelled
    for index, (review_id, _) in enumerate(report.oversized):
        folder, number = review_id.rsplit("/", 1)
        ids = movies.get(folder, [])
        if int(number) < len(ids):
            report.oversized[index] = (review_id, ids[int(number)])
    return reviews


def split_of_skipped(review_id: str, movie_id: str, rule: SplitRule) -> str:
    """The split a review that was skipped unread would have gone to."""
    source_split, folder, number = review_id.split("/")
    stub = Review(review_id, source_split, "", LABELS.get(folder, UNLABELLED), 0, movie_id)
    return rule.split_of(stub) or "none (unlabelled review of an eval/report movie)"


def hash_bucket(key: str, salt: str, buckets: int = 100) -> int:
    """A bucket in [0, buckets) that is the same on every run and machine."""
    digest = hashlib.sha256(f"{salt}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % buckets


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
