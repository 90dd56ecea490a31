"""Shared benchmark plumbing: the pipeline's split and tokenisation, in memory.

Benchmarks read the archive directly (same hash split as ImdbExampleGen, same
`normalize` as the Transform graph) so they can vary the vocabulary, the
sequence length and the padding side, which the pipeline fixes per run.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from imdb_sentiment.components import imdb_data  # noqa: E402
from imdb_sentiment.pipeline.config import IngestionConfig  # noqa: E402
from imdb_sentiment.trainer import features, preprocessing  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO_ROOT.parent / "shared" / "data" / "aclImdb_train.tar.gz"
RESULTS_DIR = REPO_ROOT / "benchmarks" / "results"

Split = Tuple[List[List[str]], np.ndarray]


def finished_run_parser(description: str) -> argparse.ArgumentParser:
    """Arguments of a benchmark that reads a finished local run: its home and profile."""
    parser = argparse.ArgumentParser(description=description,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--home", type=Path, required=True, help="pipeline home of a finished run")
    parser.add_argument("--profile", default="full", help="profile the run used")
    return parser


def machine_info() -> Dict[str, str]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT,
                                capture_output=True, text=True).stdout.strip()
    except OSError:
        commit = ""
    return {"cpu": cpu, "cores": str(os.cpu_count()), "python": platform.python_version(),
            "tensorflow": tf.__version__, "commit": commit,
            "gpus": str(len(tf.config.list_physical_devices("GPU")))}


def tokenize(texts: Sequence[str]) -> List[List[str]]:
    """The Transform graph's normalisation and split, untruncated."""
    return preprocessing.word_lists(texts)


RawSplit = Tuple[List[str], np.ndarray]


def load_raw_splits(data: Path, sample_percent: int = 100,
                    ingestion: IngestionConfig = IngestionConfig(),
                    splits: Sequence[str] = ("train", "eval")) -> Tuple[RawSplit, ...]:
    """Review texts and labels of `splits`, split exactly as the pipeline does.

    Benchmarks that choose (variants, epochs) read `train` and `eval` only;
    the `report` split is read by nothing that decides.
    """
    rule = ingestion.split_rule()
    texts: Dict[str, List[str]] = {split: [] for split in splits}
    labels: Dict[str, List[int]] = {split: [] for split in splits}
    unlabelled = imdb_data.UNSUP_SPLIT in splits  # unsup reviews of train movies, label -1
    for review in imdb_data.read_reviews(data, imdb_data.ReadReport(), unlabelled=unlabelled):
        if not imdb_data.in_sample(review, sample_percent, rule.salt):
            continue
        split = rule.split_of(review)
        if split in texts:
            texts[split].append(review.text)
            labels[split].append(review.label)
    return tuple((texts[s], np.array(labels[s], np.float32)) for s in splits)


def load_splits(data: Path, sample_percent: int = 100) -> Tuple[Split, ...]:
    """(train, eval) token lists and labels, split and normalised as the pipeline does."""
    return tuple((tokenize(texts), labels)
                 for texts, labels in load_raw_splits(data, sample_percent))


def load_unlabelled_texts(archive: Path) -> List[str]:
    """The `train/unsup/` reviews of an archive (no label: never a labelled split)."""
    import tarfile

    texts = []
    with tarfile.open(archive, "r|gz") as stream:
        for member in stream:
            if member.isfile() and "/train/unsup/" in member.name and member.name.endswith(".txt"):
                texts.append(stream.extractfile(member).read().decode("utf-8", errors="replace"))
    return texts


def build_vocabulary(token_lists: Sequence[Sequence[str]], size: int, min_frequency: int) -> Dict[str, int]:
    """Token → id (1..V), most frequent first, as TF Transform's top-k."""
    counts = collections.Counter(t for tokens in token_lists for t in tokens)
    kept = [t for t, c in sorted(counts.items(), key=lambda tc: (-tc[1], tc[0])) if c >= min_frequency]
    return {token: i + 1 for i, token in enumerate(kept[:size])}


def encode(token_lists: Sequence[Sequence[str]], vocabulary: Dict[str, int], max_length: int,
           padding: str = "post", head: int = 0) -> np.ndarray:
    """Ids of the tokens the model sees (the last `max_length`, or the first
    `head` and the rest from the end, as `preprocessing.truncate`), 0-padded
    on the `padding` side."""
    oov = features.oov_id(len(vocabulary))
    out = np.zeros((len(token_lists), max_length), np.int64)
    for row, tokens in enumerate(token_lists):
        kept = tokens if len(tokens) <= max_length else (
            list(tokens[:head]) + list(tokens[len(tokens) - (max_length - head):]) if head
            else tokens[-max_length:])
        ids = [vocabulary.get(t, oov) for t in kept]
        if padding == "post":
            out[row, :len(ids)] = ids
        else:
            out[row, max_length - len(ids):] = ids
    return out


def child_result(script: str, *args: str) -> Dict:
    """Runs `script ARGS` in a fresh interpreter (a measurement that must start cold,
    such as a trace or thread-pool settings) and returns the JSON of its last line."""
    result = subprocess.run([sys.executable, script, *args], capture_output=True, text=True,
                            check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def write_result(name: str, payload: Dict) -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps({"machine": machine_info(), **payload}, indent=2))
    return path


def table(rows: Sequence[Dict], columns: Sequence[str]) -> str:
    widths = [max(len(c), *(len(str(r.get(c, ""))) for r in rows)) for c in columns]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths)),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(str(r.get(c, "")).ljust(w) for c, w in zip(columns, widths)) for r in rows]
    return "\n".join(lines)
