"""Data as spans, TFX's way: `{SPAN}` (optionally `{VERSION}`) in the data location.

`--data 'archives/imdb-{SPAN}.tar.gz'` or `--data 'data/span-{SPAN}/'` names
one archive or folder per span. A run ingests the newest span, or the last N
(`ingestion.span_window`). Matching follows TFX 1.16's own span resolution,
`tfx/components/example_gen/utils.py` (its glob and regex construction and its
path matcher are called, not copied): `{SPAN}`, `{SPAN:width}`, the date specs
`{YYYY}{MM}{DD}`, and `{VERSION}`, of which the newest per span is taken.

A location without a span spec is one span, number 0, as TFX treats it.

The selection carries a fingerprint of the chosen files (paths, sizes and
modification times), so a new archive written at the same location is new
data. It is resolved where the data is read: by the local runner before a
run, and on Kubeflow by the uncached `SpanResolver` step on the cluster.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from typing import List, Optional, Sequence, Tuple

#: Locations that name no file to fingerprint: the official download, a URL.
_UNFINGERPRINTED = re.compile(r"^https?://")


@dataclasses.dataclass(frozen=True)
class Span:
    number: int
    uri: str
    version: Optional[int] = None


@dataclasses.dataclass(frozen=True)
class SpanSelection:
    """The spans one run ingests, and a fingerprint of their content."""

    pattern: str
    spans: Tuple[Span, ...]
    fingerprint: str
    #: The span before the newest one, which the newest is checked against
    #: for drift (read for that alone when it is outside the window).
    previous: Optional[Span] = None

    @property
    def numbers(self) -> List[int]:
        return [span.number for span in self.spans]

    @property
    def newest(self) -> int:
        return max(self.numbers)

    @property
    def has_spans(self) -> bool:
        return has_span_spec(self.pattern)

    def describe(self) -> str:
        """'span 3', 'spans 2-3', or '' for data without spans."""
        return describe_numbers(self.numbers) if self.has_spans else ""

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "SpanSelection":
        record = json.loads(text)
        previous = record.get("previous")
        return cls(pattern=record["pattern"], fingerprint=record["fingerprint"],
                   spans=tuple(Span(**span) for span in record["spans"]),
                   previous=Span(**previous) if previous else None)


def describe_numbers(numbers: Sequence[int]) -> str:
    """'span 3' or 'spans 2-3' (a window is consecutive spans)."""
    return f"span {numbers[0]}" if len(numbers) == 1 else f"spans {numbers[0]}-{numbers[-1]}"


class SpanError(ValueError):
    """A span pattern that matches nothing, or that TFX's rules refuse."""


def has_span_spec(pattern: str) -> bool:
    from tfx.components.example_gen import utils

    return bool(re.search(utils.SPAN_FULL_REGEX, pattern)
                or any(spec in pattern for spec in utils.DATE_SPECS))


def available_spans(pattern: str) -> List[Span]:
    """Every span the pattern matches, the newest version of each, by span number."""
    from tfx.components.example_gen import utils
    from tfx.dsl.io import fileio
    from tfx.proto import example_gen_pb2

    split = example_gen_pb2.Input.Split(name="data", pattern=pattern.rstrip("/"))
    try:
        is_span, is_date, is_version = utils.verify_split_pattern_specs(split)
    except ValueError as error:
        raise SpanError(f"{pattern}: {error}") from None
    glob, regex = utils._create_matching_glob_and_regex(  # pylint: disable=protected-access
        uri="", split=split, is_match_span=is_span, is_match_date=is_date,
        is_match_version=is_version, range_config=None)
    newest: dict = {}
    for path in fileio.glob(glob):
        try:
            _, number, _, version = utils._find_matched_span_version_from_path(  # pylint: disable=protected-access
                path, regex, is_span, is_date, is_version)
        except ValueError:
            continue  # e.g. "imdb-latest.tar.gz" beside "imdb-3.tar.gz": not a span
        known = newest.get(number)
        if known is None or (version is not None and version > (known.version or -1)):
            newest[number] = Span(number=number, uri=path, version=version)
    return [newest[number] for number in sorted(newest)]


def fingerprint(uris: Sequence[str]) -> str:
    """A hash of each file's path, size and modification time (every file below a folder)."""
    from tfx.dsl.io import fileio

    digest = hashlib.sha256()
    for uri in uris:
        if _UNFINGERPRINTED.match(uri) or not uri:
            digest.update(f"{uri}\n".encode())
            continue
        if not fileio.exists(uri):
            raise SpanError(f"{uri}: no such file or directory")
        if fileio.isdir(uri):
            files = sorted(f"{root.rstrip('/')}/{name}" for root, _, names in fileio.walk(uri)
                           for name in names)
        else:
            files = [uri]
        for path in files:
            stat = fileio.stat(path)
            digest.update(f"{path}\t{stat.length}\t{stat.mtime_nsec}\n".encode())
    return digest.hexdigest()[:20]


def select_spans(data: str, window: int = 1) -> SpanSelection:
    """The newest `window` spans of `data` (a pattern), or `data` itself as span 0."""
    if window < 1:
        raise SpanError(f"span_window must be >= 1, got {window}")
    if not has_span_spec(data):
        return SpanSelection(pattern=data, spans=(Span(number=0, uri=data),),
                             fingerprint=fingerprint([data]))
    spans = available_spans(data)
    if not spans:
        raise SpanError(f"{data}: no span matches this pattern")
    chosen = tuple(spans[-window:])
    previous = spans[-2] if len(spans) > 1 else None
    read = [span.uri for span in chosen] + ([previous.uri] if previous not in chosen and previous
                                            else [])
    return SpanSelection(pattern=data, spans=chosen, fingerprint=fingerprint(read),
                         previous=previous)
