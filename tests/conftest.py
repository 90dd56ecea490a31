"""Shared fixtures: small aclImdb-shaped archives and the real training data."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Dict, List, Optional, Union

import pytest

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO_ROOT = Path(__file__).resolve().parents[1]
REAL_DATA_ENV = "IMDB_DATA"  # the one data variable of runs, compile and tests
REAL_DATA_DEFAULT = REPO_ROOT.parent / "shared" / "data" / "aclImdb_train.tar.gz"

POSITIVE = ["A brilliant, moving film.<br /><br />Loved every minute!",
            "Wonderful acting and a great story; highly recommended.",
            "One of the best movies I have seen this year. Superb."]
NEGATIVE = ["The worst film ever. A complete waste of time.",
            "Boring, dull and badly acted.<br />Avoid it.",
            "Terrible plot, awful dialogue; I walked out."]


def pytest_collection_modifyitems(config: pytest.Config, items: List[pytest.Item]) -> None:
    """Files with a `long` test first, the rest in their order: under pytest-xdist
    (`--dist loadfile --no-loadscope-reorder`, the Makefile's) the files that run
    pipelines for minutes start at once instead of ending the suite alone."""
    long_files = {item.path for item in items if item.get_closest_marker("long")}
    items.sort(key=lambda item: item.path not in long_files)


def cli_command(*args: str) -> List[str]:
    """`imdb-pipeline ARGS` as a user runs it, in this interpreter: the one way tests start the CLI."""
    return [sys.executable, "-m", "imdb_sentiment.cli", *args]


def run_cli(*args: str, timeout: float = 600, stdin: Union[bytes, str, None] = None,
            text: bool = True) -> subprocess.CompletedProcess:
    """Runs `imdb-pipeline ARGS` to the end, capturing what it prints."""
    return subprocess.run(cli_command(*args), input=stdin, capture_output=True, text=text,
                          timeout=timeout)


def movie_url(movie: int) -> str:
    return f"http://www.imdb.com/title/tt{movie:07d}/usercomments"


def make_members(count: int = 20, test_split: bool = False, unsup: bool = False,
                 reviews_per_movie: int = 0) -> Dict[str, bytes]:
    """Archive members in the official layout: aclImdb/<split>/<label>/<id>_<rating>.txt.

    With `reviews_per_movie`, `urls_<label>.txt` files map review i to movie
    i // reviews_per_movie (after the reviews, as in the official tarball).
    """
    members: Dict[str, bytes] = {"aclImdb/README": b"fixture", "aclImdb/imdb.vocab": b"the\n"}
    splits = ["train"] + (["test"] if test_split else [])
    for split in splits:
        for i in range(count):
            members[f"aclImdb/{split}/pos/{i}_{7 + i % 4}.txt"] = POSITIVE[i % 3].encode()
            members[f"aclImdb/{split}/neg/{i}_{1 + i % 4}.txt"] = NEGATIVE[i % 3].encode()
        if reviews_per_movie:
            for label, offset in (("pos", 0), ("neg", 10_000)):
                lines = [movie_url(offset + i // reviews_per_movie) for i in range(count)]
                members[f"aclImdb/{split}/urls_{label}.txt"] = "\n".join(lines).encode() + b"\n"
    if unsup:
        members["aclImdb/train/unsup/0_0.txt"] = b"no label here"
    return members


def write_archive(path: Path, members: Dict[str, bytes], truncate_to: Optional[int] = None) -> Path:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    payload = buffer.getvalue()
    path.write_bytes(payload if truncate_to is None else payload[:truncate_to])
    return path


@pytest.fixture
def small_archive(tmp_path: Path) -> Path:
    return write_archive(tmp_path / "aclImdb_small.tar.gz", make_members())


def write_tfma_metrics(uri: Path, by_split: Dict[str, Dict[str, float]],
                       model_name: str = "candidate") -> Path:
    """An Evaluator output as TFMA writes it: `metrics-*.tfrecord` of MetricsForSlice protos
    (TFMA 0.46 `writers/metrics_plots_and_validations_writer.py`), one overall slice per split."""
    import tensorflow as tf
    from tensorflow_model_analysis.proto import metrics_for_slice_pb2

    uri.mkdir(parents=True, exist_ok=True)
    with tf.io.TFRecordWriter(str(uri / "metrics-00000-of-00001.tfrecord")) as writer:
        for split, metrics in by_split.items():
            record = metrics_for_slice_pb2.MetricsForSlice()
            record.slice_key.single_slice_keys.add(column="data_split", bytes_value=split.encode())
            for name, value in metrics.items():
                entry = record.metric_keys_and_values.add()
                entry.key.name, entry.key.model_name = name, model_name
                entry.value.double_value.value = value
            writer.write(record.SerializeToString())
    return uri


def real_data_path() -> Path:
    """The real training archive, or a skip that says where it was looked for."""
    path = Path(os.environ.get(REAL_DATA_ENV, REAL_DATA_DEFAULT))
    if not path.exists():
        pytest.skip(f"real IMDB data not found at {path} (set {REAL_DATA_ENV} to the "
                    "aclImdb training archive to run this test)")
    return path


def write_span_archives(source: Path, out_dir: Path, spans: int, movies_per_span: int,
                        salt: str = "spans") -> list:
    """Span archives cut from a real aclImdb archive by movie, the way new data
    arrives in the world: span k holds every labelled review of its movies, and
    no movie is in two spans. Each archive keeps the official layout (reviews
    under train/pos|neg, `urls_*.txt` with the movie of each review number).
    Returns {span number: [review ids]} in span order.
    """
    from imdb_sentiment.components import imdb_data

    reviews = imdb_data.read_reviews(source, imdb_data.ReadReport())
    by_movie: Dict[str, list] = {}
    for review in reviews:
        if review.labelled and review.source_split == "train" and review.movie_id:
            by_movie.setdefault(review.movie_id, []).append(review)
    movies = sorted(by_movie, key=lambda movie: imdb_data.hash_bucket(movie, salt, 1 << 62))
    out_dir.mkdir(parents=True, exist_ok=True)
    contents = []
    for span in range(1, spans + 1):
        chosen = movies[(span - 1) * movies_per_span:span * movies_per_span]
        members: Dict[str, bytes] = {"aclImdb/README": b"span fixture"}
        urls: Dict[str, Dict[int, str]] = {"pos": {}, "neg": {}}
        for movie in chosen:
            for review in by_movie[movie]:
                folder = "pos" if review.label else "neg"
                members[f"aclImdb/train/{folder}/{review.number}_{review.rating}.txt"] = \
                    review.text.encode()
                urls[folder][review.number] = f"http://www.imdb.com/title/{movie}/usercomments"
        for folder, numbers in urls.items():
            lines = [numbers.get(i, "") for i in range(max(numbers) + 1)] if numbers else []
            members[f"aclImdb/train/urls_{folder}.txt"] = "\n".join(lines).encode() + b"\n"
        write_archive(out_dir / f"imdb-{span}.tar.gz", members)
        contents.append([r.review_id for movie in chosen for r in by_movie[movie]])
    return contents
