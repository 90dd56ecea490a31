"""The model card and lineage record that travel inside every pushed version.

A pushed SavedModel alone does not say where it came from; MLMD does, but
only on the machine that ran the pipeline. So ModelCardGenerator
(`components/model_card_generator.py`) writes three files that the Pusher
stages into the version's `assets.extra/` (which TF Serving ignores) before
the version becomes visible:

- `lineage.json`: machine-readable facts: the archive's SHA-256 and review
  counts per split, the git commit (and whether the tree was dirty), library
  versions, the full resolved configuration, the device, the training curve,
  metrics overall and per slice for every evaluated split, the run id and
  the MLMD ids of the executions and artifacts involved.
- `model_card.json`: the same for people, in the Model Card Toolkit's JSON
  schema v0.0.2 (tensorflow/model-card-toolkit at commit 4161ebb,
  `model_card_toolkit/schema/v0.0.2/model_card.schema.json`). The toolkit
  itself pins TFMA < 0.42 and cannot install beside TFX 1.16, so the card is
  written here.
- `model_card.html`: the card rendered as a page.

`imdb-pipeline describe --model DIR` prints a summary of any pushed version.
"""

from __future__ import annotations

import datetime as dt
import html
import json
import os
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any, Dict, List, Optional

import tensorflow as tf

from imdb_sentiment.trainer import features
from .evaluation_results import SPLIT_ROLES, margin_sentence, one_class

LINEAGE_FILE = "lineage.json"
CARD_FILE = "model_card.json"
HTML_FILE = "model_card.html"
CARD_FILES = (LINEAGE_FILE, CARD_FILE, HTML_FILE)
ASSETS_EXTRA = features.ASSETS_EXTRA
#: The trainer's record inside the model (trainer/train.py writes it).
TRAINING_FILE = features.TRAINING_HISTORY_FILE
SCHEMA_VERSION = "0.0.2"
#: Set in a container image, which has no .git, to the commit it was built from.
COMMIT_ENV = "IMDB_SOURCE_COMMIT"
LIBRARIES = ("imdb-sentiment", "tfx", "tensorflow", "tensorflow-transform",
             "tensorflow-model-analysis", "tensorflow-data-validation", "apache-beam")


def source_revision(source_dir: Optional[Path] = None) -> Dict[str, Any]:
    """The git commit of the code that ran, and whether its tree had local changes."""
    if os.environ.get(COMMIT_ENV):
        return {"commit": os.environ[COMMIT_ENV], "dirty": None, "source": COMMIT_ENV}
    directory = source_dir or Path(__file__).resolve().parents[1]

    def git(*args: str) -> Optional[str]:
        try:
            done = subprocess.run(["git", "-C", str(directory), *args], capture_output=True,
                                  text=True, timeout=20)
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if commit is None:
        return {"commit": None, "dirty": None, "source": "no git checkout"}
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": bool(status) if status is not None else None, "source": "git"}


def library_versions() -> Dict[str, Optional[str]]:
    versions: Dict[str, Optional[str]] = {}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def read_json(path: str) -> Optional[Dict[str, Any]]:
    if not tf.io.gfile.exists(path):
        return None
    with tf.io.gfile.GFile(path) as handle:
        return json.load(handle)


def build_lineage(*, ingestion: Optional[Dict[str, Any]], training: Optional[Dict[str, Any]],
                  evaluation: Dict[str, Any], config: Dict[str, Any], run: Dict[str, Any],
                  gate: Dict[str, Any]) -> Dict[str, Any]:
    """The machine-readable record; every argument is plain JSON."""
    ingestion = ingestion or {}
    training = training or {}
    return {
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "data": {"source": ingestion.get("source"), "sha256": ingestion.get("sha256"),
                 "splits": ingestion.get("splits"), "split_rule": ingestion.get("split_rule"),
                 "grouped_by": ingestion.get("grouped_by"),
                 "length_buckets": ingestion.get("length_buckets"),
                 # The spans read ([{number, uri, version}]; span 0: data without spans).
                 "spans": ingestion.get("spans"),
                 "data_fingerprint": ingestion.get("data_fingerprint")},
        "code": {**source_revision(), "libraries": library_versions()},
        "config": config,
        "training": {"device": training.get("device"), "seconds": training.get("seconds"),
                     "epochs": training.get("epochs"), "best_epoch": training.get("best_epoch"),
                     "hparams": training.get("hparams")},
        "evaluation": {"split_roles": {s: SPLIT_ROLES.get(s, "") for s in evaluation.get("metrics", {})},
                       **evaluation},
        "gate": gate,
        "run": run,
    }


#: The metrics the card shows per slice, for each model.
CARD_METRICS = ("binary_accuracy", "auc", "calibration")
#: What the calibration number is, for a reader of the card.
CALIBRATION_NOTE = ("calibration is TFMA's mean prediction ÷ mean label: 1.0 means the model "
                    "predicts positive as often, on average, as reviews are positive; above 1.0 "
                    "it leans positive, below it negative")


def _slice_metrics(values: Dict[str, Any]) -> Dict[str, float]:
    """The card's metrics of one slice; AUC left out where it is undefined (one class)."""
    shown = {metric: values[metric] for metric in CARD_METRICS
             if isinstance(values.get(metric), (int, float))}
    if one_class(values):
        shown.pop("auc", None)
    return shown


def _metric_rows(lineage: Dict[str, Any]) -> List[Dict[str, Any]]:
    rows = []
    evaluation = lineage.get("evaluation") or {}
    for model, key in (("BiLSTM", "metrics"), ("linear baseline", "baseline_metrics")):
        for split, slices in (evaluation.get(key) or {}).items():
            for slice_name, values in slices.items():
                for metric, value in _slice_metrics(values).items():
                    rows.append({"type": f"{metric} ({model})", "value": value,
                                 "slice": f"{split}" + ("" if slice_name == "overall"
                                                        else f", {slice_name}")})
    for split, entry in (evaluation.get("accuracy") or {}).items():
        difference = (entry or {}).get("difference") or {}
        if difference.get("value") is None:
            continue
        ci95 = difference.get("ci95")
        # Schema v0.0.2 has no interval field: the interval goes in the type's words.
        interval = f"; paired 95% interval {ci95[0]:+.4f} to {ci95[1]:+.4f}" if ci95 else ""
        rows.append({"type": f"binary_accuracy difference (BiLSTM − linear baseline{interval})",
                     "value": difference["value"], "slice": split})
    return rows


def _limitations(lineage: Dict[str, Any]) -> List[Dict[str, str]]:
    hparams = (lineage.get("training") or {}).get("hparams") or {}
    limits = [
        "Trained on English movie reviews from IMDB (aclImdb); other domains and languages "
        "are out of scope.",
        f"Reads at most {hparams.get('max_sequence_length', '?')} tokens of a review"
        + (f": its first {hparams['head_tokens']} and the rest from its end."
           if hparams.get("head_tokens") else ": the last ones (the verdict is usually there)."),
        "Trained on polar reviews only (ratings 1-4 and 7-10); mixed reviews (5-6) were never "
        "seen.",
    ]
    for split in ("report", "eval"):
        sentence = margin_sentence(
            ((lineage.get("evaluation") or {}).get("accuracy") or {}).get(split), split)
        if sentence:
            limits.append(sentence[0].upper() + sentence[1:] + ".")
            break
    report = ((lineage.get("evaluation") or {}).get("metrics") or {}).get("report") or {}
    by_length = {name: v.get("binary_accuracy") for name, v in report.items()
                 if name.startswith(features.LENGTH_BUCKET) and v.get("binary_accuracy") is not None}
    if by_length:
        weakest = min(by_length, key=by_length.get)
        strongest = max(by_length, key=by_length.get)
        limits.append(f"Accuracy varies with length on the report split: "
                      f"{weakest.split('=', 1)[1]} reads {by_length[weakest]:.3f}, "
                      f"{strongest.split('=', 1)[1]} reads {by_length[strongest]:.3f}.")
    return [{"description": text} for text in limits]


def build_model_card(lineage: Dict[str, Any], model_name: str) -> Dict[str, Any]:
    """The Model Card Toolkit v0.0.2 document for `lineage`."""
    code, data = lineage.get("code") or {}, lineage.get("data") or {}
    splits = data.get("splits") or {}
    counts = ", ".join(f"{name} {info.get('reviews')}" for name, info in splits.items())
    commit = code.get("commit") or "unknown"
    read = [span for span in data.get("spans") or [] if span.get("number")]
    spans = (f" Spans {', '.join(str(s['number']) for s in read)} "
             f"({', '.join(s['uri'] for s in read)})." if read else "")
    dirty = " (with uncommitted changes)" if code.get("dirty") else ""
    return {
        "schema_version": SCHEMA_VERSION,
        "model_details": {
            "name": model_name,
            "overview": "Sentiment of an English movie review: P(positive) from a BiLSTM with "
                        "Bahdanau attention over its tokens.",
            "documentation": f"Trained by the imdb_sentiment TFX pipeline at commit {commit}{dirty}, "
                             f"run {(lineage.get('run') or {}).get('pipeline_run_id')}. "
                             "lineage.json beside this card holds the full record.",
            "version": {"name": str((lineage.get("run") or {}).get("pipeline_run_id") or ""),
                        "date": (lineage.get("created") or "")[:10]},
        },
        "model_parameters": {
            "model_architecture": "Embedding, bidirectional LSTM, additive (Bahdanau) attention "
                                  "and max-pooling, sigmoid output; TF Transform graph inside.",
            "data": [{"name": f"IMDB Large Movie Review Dataset ({data.get('source')})",
                      "link": "https://ai.stanford.edu/~amaas/data/sentiment/",
                      "description": f"SHA-256 {data.get('sha256')}; reviews per split: {counts}; "
                                     f"split by {data.get('grouped_by')}.{spans}"}],
            "input_format": "serving_default: serialized tf.Examples with a `text` feature; "
                            "explain: raw review strings.",
            "output_format": "probability: P(review is positive), one float per review.",
        },
        "quantitative_analysis": {"performance_metrics": _metric_rows(lineage)},
        "considerations": {
            "users": [{"description": "Applications that score English movie reviews through "
                                      "TF Serving; ML engineers using the pipeline as a template."}],
            "use_cases": [{"description": "Sorting or summarising review sentiment; not for "
                                          "decisions about people."}],
            "limitations": _limitations(lineage),
        },
    }


def _split_key(split: str) -> tuple:
    order = list(SPLIT_ROLES)
    return (order.index(split) if split in order else len(order), split)


def _slice_key(name: str) -> tuple:
    """overall first, then by feature, numbers in numeric order (rating=2 before rating=10)."""
    feature, _, value = name.partition("=")
    return (name != "overall", feature, int(value) if value.isdigit() else 0, value)


def _cell(value: Any, digits: int = 4) -> str:
    return "–" if not isinstance(value, (int, float)) else f"{value:.{digits}f}"


def _interval_cell(entry: Optional[Dict[str, Any]], signed: bool = False) -> str:
    if not entry or entry.get("value") is None:
        return "–"
    value, ci95 = entry["value"], entry.get("ci95") or []
    text = f"{value:+.4f}" if signed else f"{value:.4f}"
    return text + (f" [{ci95[0]:+.4f}, {ci95[1]:+.4f}]" if signed and len(ci95) == 2 else
                   f" [{ci95[0]:.4f}, {ci95[1]:.4f}]" if len(ci95) == 2 else "")


def _summary_table(lineage: Dict[str, Any]) -> str:
    """Per split: both accuracies and the paired difference, with 95% intervals."""
    e = html.escape
    accuracy = (lineage.get("evaluation") or {}).get("accuracy") or {}
    rows = "".join(
        f"<tr><td>{e(split)}</td><td>{e(SPLIT_ROLES.get(split, ''))}</td>"
        f"<td>{_interval_cell(entry.get('candidate'))}</td>"
        f"<td>{_interval_cell(entry.get('linear_baseline'))}</td>"
        f"<td>{_interval_cell(entry.get('difference'), signed=True)}</td></tr>"
        for split, entry in sorted(accuracy.items(), key=lambda item: _split_key(item[0]))
        if entry)
    return ("<table><tr><th>split</th><th>role</th><th>BiLSTM accuracy</th><th>linear baseline "
            "accuracy</th><th>BiLSTM − baseline (paired)</th></tr>" + rows + "</table>"
            if rows else "<p>No evaluation was recorded.</p>")


def _slice_tables(lineage: Dict[str, Any]) -> str:
    """One table per split, one row per slice (the Model Card Toolkit groups by slice)."""
    e = html.escape
    evaluation = lineage.get("evaluation") or {}
    ours, theirs = evaluation.get("metrics") or {}, evaluation.get("baseline_metrics") or {}
    parts = []
    for split in sorted(ours, key=_split_key):
        rows = []
        for name in sorted(ours[split], key=_slice_key):
            values = ours[split][name]
            mine = _slice_metrics(values)
            other = _slice_metrics((theirs.get(split) or {}).get(name) or {})
            auc_note = " (one class)" if one_class(values) else ""
            rows.append(f"<tr><td>{e(name)}</td><td>{_cell(values.get('example_count'), 0)}</td>"
                        f"<td>{_cell(mine.get('binary_accuracy'))}</td>"
                        f"<td>{_cell(other.get('binary_accuracy'))}</td>"
                        f"<td>{_cell(mine.get('auc'))}{auc_note}</td>"
                        f"<td>{_cell(other.get('auc'))}{auc_note}</td>"
                        f"<td>{_cell(mine.get('calibration'), 3)}</td>"
                        f"<td>{_cell(other.get('calibration'), 3)}</td></tr>")
        parts.append(f"<h3>{e(split)} <small>({e(SPLIT_ROLES.get(split, ''))})</small></h3>"
                     "<table><tr><th rowspan=2>slice</th><th rowspan=2>reviews</th>"
                     "<th colspan=2>accuracy</th><th colspan=2>AUC</th><th colspan=2>calibration"
                     "</th></tr><tr>" + "<th>BiLSTM</th><th>linear</th>" * 3 + "</tr>"
                     + "".join(rows) + "</table>")
    return "".join(parts)


def render_html(card: Dict[str, Any], lineage: Dict[str, Any]) -> str:
    """The card as a self-contained page: the Model Card Toolkit's sections, metrics
    grouped by split and slice (model_card.json holds the same numbers as a list)."""
    e = html.escape
    details, parameters = card["model_details"], card["model_parameters"]
    epochs = (lineage.get("training") or {}).get("epochs") or []
    curve = "".join("<tr>" + "".join(f"<td>{e(str(epoch.get(k, '')))}</td>" for k in
                                     ("epoch", "phase", "loss", "accuracy", "val_loss",
                                      "val_accuracy"))
                    + "</tr>" for epoch in epochs)
    limits = "".join(f"<li>{e(item['description'])}</li>"
                     for item in card["considerations"]["limitations"])
    uses = "".join(f"<li>{e(item['description'])}</li>"
                   for key in ("users", "use_cases") for item in card["considerations"][key])
    gate = lineage.get("gate") or {}
    verdict = (f"<p>Gate: {'blessed' if gate.get('blessed') else 'not blessed'}: "
               f"{e(str(gate.get('reason') or ''))}.</p>" if gate else "")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Model card: {e(details['name'])}</title>
<style>body{{font-family:sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem}}
table{{border-collapse:collapse;margin:.5rem 0}}td,th{{border:1px solid #ccc;padding:.2rem .5rem;
text-align:left}}th{{background:#f3f3f3}}small,.note{{color:#555}}</style></head><body>
<h1>Model card: {e(details['name'])}</h1><p>{e(details['overview'])}</p>
<p class=note>{e(details['documentation'])}</p>
<h2>Model details</h2><p>{e(parameters['model_architecture'])}</p>
<p>Input: {e(parameters['input_format'])} Output: {e(parameters['output_format'])}</p>
<h2>Data</h2><p>{e(parameters['data'][0]['name'])}: {e(parameters['data'][0]['description'])}</p>
<h2>Quantitative analysis</h2>{verdict}{_summary_table(lineage)}
<p class=note>Intervals are 95%: Wilson for an accuracy, paired (review by review) for the
difference. AUC is left out of a slice that holds one class only; {e(CALIBRATION_NOTE)}.</p>
{_slice_tables(lineage)}
<h3>Training curve</h3><table><tr><th>epoch</th><th>phase</th><th>loss</th><th>accuracy</th>
<th>eval loss</th><th>eval accuracy</th></tr>{curve}</table>
<h2>Considerations</h2><ul>{uses}</ul><h3>Limitations</h3><ul>{limits}</ul>
</body></html>
"""


def write_card_files(directory: str, lineage: Dict[str, Any], model_name: str) -> List[str]:
    """Writes lineage.json, model_card.json and model_card.html into `directory`."""
    card = build_model_card(lineage, model_name)
    tf.io.gfile.makedirs(directory)
    contents = {LINEAGE_FILE: json.dumps(lineage, indent=2, default=str),
                CARD_FILE: json.dumps(card, indent=2), HTML_FILE: render_html(card, lineage)}
    paths = []
    for name, text in contents.items():
        path = os.path.join(directory, name)
        with tf.io.gfile.GFile(path, "w") as handle:
            handle.write(text)
        paths.append(path)
    return paths


def describe(model_dir: str) -> List[str]:
    """A few lines on where a pushed version came from and how good it is."""
    lineage = read_json(os.path.join(model_dir, ASSETS_EXTRA, LINEAGE_FILE))
    if lineage is None:
        raise FileNotFoundError(f"{model_dir}: no {ASSETS_EXTRA}/{LINEAGE_FILE} (not a version "
                                "pushed by this pipeline, or pushed before model cards existed)")
    data, code, run = lineage["data"], lineage["code"], lineage["run"]
    training = lineage.get("training") or {}
    device = training.get("device") or {}
    lines = [
        f"model: {model_dir}",
        f"data: {data.get('source')} sha256 {data.get('sha256')}",
        "  reviews: " + ", ".join(f"{k} {v.get('reviews')}" for k, v in (data.get("splits") or {}).items()),
        f"code: commit {code.get('commit')}" + (" (dirty tree)" if code.get("dirty") else "")
        + f"; tfx {code['libraries'].get('tfx')}, tensorflow {code['libraries'].get('tensorflow')}",
        f"trained on: {', '.join(device.get('gpus') or []) or device.get('cpu')}; "
        f"best epoch {(training.get('best_epoch') or {}).get('epoch')} "
        f"of {len(training.get('epochs') or [])}",
        f"run: {run.get('pipeline_run_id')} (MLMD card execution {run.get('card_execution_id')})",
    ]
    for split, entry in ((lineage.get("evaluation") or {}).get("accuracy") or {}).items():
        candidate, baseline = entry.get("candidate") or {}, entry.get("linear_baseline") or {}
        if candidate:
            lines.append(f"accuracy on {split} ({SPLIT_ROLES.get(split, '')}): "
                         f"{candidate['value']:.4f} {candidate.get('ci95')}"
                         + (f", linear baseline {baseline['value']:.4f}" if baseline else ""))
    gate = lineage.get("gate") or {}
    lines.append(f"gate: {'blessed' if gate.get('blessed') else 'not blessed'}: {gate.get('reason')}")
    return lines
