"""The run report: one page a person opens in a browser after a run.

`<home>/report/index.html`, rebuilt by `imdb-pipeline report --home DIR`, from
what the run left behind: `last_run.json`, the artifacts that ML Metadata
names for the latest executions, and the trained model itself. Every plot is
drawn by matplotlib from TFMA's, TFDV's or Keras's own numbers; the statistics
view beside it is TFDV's own renderer. Each section is built on its own: one
that cannot be drawn (a run that stopped early) says why, and the rest of the
page is still written.
"""

from __future__ import annotations

import glob
import html
import json
import logging
import math
import os
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from imdb_sentiment.components.evaluation_results import (SPLIT_ROLES, one_class, split_of,
                                                          wilson_interval)
from imdb_sentiment.pipeline.config import HomeLayout, PipelineConfig
from imdb_sentiment.trainer import features
from .run_summary import data_notes

#: The report's folder inside a pipeline home, and its page.
REPORT_DIR = "report"
INDEX = "index.html"
#: Confident mistakes shown with their attention.
MISTAKES_SHOWN = 5
MODEL_LABELS = {"candidate": "BiLSTM + attention", "linear_baseline": "linear baseline"}
_COLORS = {"candidate": "#1f77b4", "linear_baseline": "#ff7f0e"}


class Unavailable(Exception):
    """A section that the run's outputs cannot fill; its message is shown instead."""


# --- Reading what the run left -------------------------------------------------------------


class RunOutputs:
    """The latest run's record and artifact locations, read from one pipeline home."""

    def __init__(self, home: Path):
        self.home = home
        self.layout = HomeLayout(home)
        record_path = self.layout.last_run
        if not record_path.exists():
            raise FileNotFoundError(f"{home}: no last_run.json (has a run been made with --home {home}?)")
        self.record: Dict[str, Any] = json.loads(record_path.read_text())
        self._uris: Dict[Tuple[str, str], Optional[str]] = {}
        self._reader = None

    def uri(self, node_id: str, key: str) -> Optional[str]:
        """The URI of a node's latest output `key`, from the home's ML Metadata."""
        if (node_id, key) not in self._uris:
            self._uris[(node_id, key)] = self._lookup(node_id, key)
        return self._uris[(node_id, key)]

    def _lookup(self, node_id: str, key: str) -> Optional[str]:
        if not self.layout.metadata_path.exists():
            return None
        if self._reader is None:
            from tfx.orchestration.metadata import sqlite_metadata_connection_config

            from .run_summary import MetadataReader

            name = ((self.record.get("config") or {}).get("pipeline_name")
                    or PipelineConfig.pipeline_name)
            self._reader = MetadataReader(
                sqlite_metadata_connection_config(str(self.layout.metadata_path)), name)
        # Only this run's executions (cached ones included): never an older run's artifacts.
        artifact = self._reader.output(node_id, key, since_ms=int(self.record.get("started_ms") or 0))
        return artifact.uri if artifact is not None and os.path.exists(artifact.uri) else None


# --- Small HTML helpers --------------------------------------------------------------------


def _esc(value: Any) -> str:
    return html.escape(str(value))


def _number(value: Any, digits: int = 4) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return _esc(value)


def _interval(entry: Optional[Dict[str, Any]]) -> str:
    if not entry or entry.get("value") is None:
        return "–"
    low_high = entry.get("ci95")
    text = _number(entry["value"])
    return f"{text} [{low_high[0]:.3f}, {low_high[1]:.3f}]" if low_high and None not in low_high else text


def table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    head = "".join(f"<th>{_esc(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _figure(out_dir: Path, name: str, draw: Callable[[Any], None], size: Tuple[float, float],
            caption: str) -> str:
    """Draws with matplotlib (headless) into `name`.png and returns its <figure>."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure = plt.figure(figsize=size, dpi=100)
    try:
        draw(figure)
        figure.tight_layout()
        figure.savefig(out_dir / f"{name}.png")
    finally:
        plt.close(figure)
    return (f'<figure><img src="{name}.png" alt="{_esc(caption)}">'
            f"<figcaption>{_esc(caption)}</figcaption></figure>")


# --- Sections ------------------------------------------------------------------------------


def summary_section(outputs: RunOutputs, out_dir: Path) -> str:
    record = outputs.record
    status = "succeeded" if record.get("succeeded") else f"failed: {record.get('error')}"
    blessed = record.get("blessed")
    verdict = ("blessed and pushed to " + _esc(record.get("pushed_model"))
               if blessed and record.get("pushed_model") else
               "blessed" if blessed else "not blessed, nothing pushed" if blessed is False else
               "not decided (the run stopped before the gate)")
    ingestion = record.get("ingestion") or {}
    machine = record.get("machine") or {}
    facts = [
        ("Run", f"profile <b>{_esc(record.get('profile'))}</b>, {status}, "
                f"{_number(record.get('seconds'), 0)} s"),
        ("Model", f"{verdict}. {_esc(record.get('blessing_reason') or '')}"),
        ("Data", f"{_esc(ingestion.get('source', '–'))}, SHA-256 "
                 f"<code>{_esc(ingestion.get('sha256', '–'))}</code>; split by "
                 f"{_esc(ingestion.get('grouped_by', '–'))}"),
        *[("Note", _esc(note)) for note in data_notes(record)],
        *[("Against the baseline", _esc(sentence))
          for sentence in (record.get("baseline_margin") or {}).values()],
        ("Machine", f"{_esc(machine.get('cpu', '–'))}, {_esc(machine.get('cores', '–'))} cores, "
                    f"GPUs: {_esc(', '.join(machine.get('gpus') or []) or 'none')}"),
        ("Log", f"<code>{_esc(record.get('log_file', '–'))}</code>"),
    ]
    rows = []
    for split, entry in sorted((record.get("accuracy") or {}).items(), key=_split_order):
        rows.append([f"<b>{_esc(split)}</b>", _esc(SPLIT_ROLES.get(split, "")),
                     _number(entry.get("reviews"), 0), _interval(entry.get("candidate")),
                     _interval(entry.get("linear_baseline")),
                     _interval(entry.get("difference"))])
    accuracy = table(["split", "role", "reviews", "BiLSTM accuracy [95%]",
                      "linear baseline [95%]", "difference [paired 95%]"], rows) if rows else (
        "<p>No evaluation: the run stopped before the Evaluator.</p>")
    return ("<dl>" + "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in facts) + "</dl>"
            + "<h3>Accuracy per split</h3>" + accuracy
            + "<p class=note>Intervals are Wilson 95% intervals. Only the eval split decides "
              "anything (the epoch, the blessing); report and test numbers are read after.</p>")


def training_section(outputs: RunOutputs, out_dir: Path) -> str:
    history = outputs.record.get("training") or {}
    epochs = history.get("epochs") or []
    if not epochs:
        raise Unavailable("no training history: the Trainer did not finish in this run")
    baseline = (outputs.record.get("baseline_training") or {}).get("epochs") or []
    best = (history.get("best_epoch") or {}).get("epoch")

    def draw(figure):
        numbers = [e["epoch"] for e in epochs]
        blue, orange = _COLORS["candidate"], _COLORS["linear_baseline"]
        for index, metric in enumerate(("loss", "accuracy")):
            axes = figure.add_subplot(1, 2, index + 1)
            axes.plot(numbers, [e.get(metric) for e in epochs], "o--", color=blue, alpha=0.5,
                      label="BiLSTM train")
            axes.plot(numbers, [e.get(f"val_{metric}") for e in epochs], "o-", color=blue,
                      label="BiLSTM eval")
            if baseline:
                axes.plot([e["epoch"] for e in baseline], [e.get(f"val_{metric}") for e in baseline],
                          "s-", color=orange, label="linear baseline eval")
            if best:
                axes.axvline(best, color="grey", linestyle=":", label=f"BiLSTM restored epoch {best}")
            axes.set_xlabel("epoch")
            axes.xaxis.get_major_locator().set_params(integer=True)
            axes.set_title(metric)
            axes.grid(alpha=0.3)
            axes.legend(fontsize=8)

    figure = _figure(out_dir, "training_curves", draw, (10, 3.8),
                     "Training curves: loss and accuracy per epoch on train and eval; the dotted "
                     "line marks the epoch whose weights were kept.")
    rows = [[e["epoch"], _number(e.get("loss")), _number(e.get("accuracy")),
             _number(e.get("val_loss")), _number(e.get("val_accuracy")),
             _number(e.get("seconds"), 1), _number(e.get("examples_per_second"), 1)]
            for e in epochs]
    device = history.get("device") or {}
    return (figure + table(["epoch", "train loss", "train accuracy", "eval loss",
                            "eval accuracy", "seconds", "reviews/s"], rows)
            + f"<p class=note>Trained with {_esc(history.get('policy', '–'))} precision on "
              f"{_esc(device.get('cpu', '–'))} ({_esc(len(device.get('gpus') or []))} GPUs); "
              f"{_esc(history.get('train_examples', '–'))} training reviews.</p>")


def _split_order(item: Tuple[str, Any]) -> Tuple[int, str]:
    order = list(SPLIT_ROLES)
    return (order.index(item[0]) if item[0] in order else len(order), item[0])


def _auc(metrics: Dict[str, Any]) -> str:
    """AUC, or a dash on a one-class slice (every rating slice), where it is undefined."""
    if one_class(metrics):
        return "– (one class)"
    return _number(metrics.get("auc"))


def _slice_sort_key(name: str) -> Tuple[int, Any]:
    if name == "overall":
        return (0, "")
    feature, _, value = name.partition("=")
    return (1, (feature, int(value) if value.isdigit() else value))


def slices_section(outputs: RunOutputs, out_dir: Path) -> str:
    record = outputs.record
    metrics, baseline = record.get("metrics") or {}, record.get("baseline_metrics") or {}
    if not metrics:
        raise Unavailable("no evaluation: the run stopped before the Evaluator")
    parts = []
    for split, _ in sorted(metrics.items(), key=_split_order):
        names = sorted(metrics[split], key=_slice_sort_key)
        rows, bars = [], []
        for name in names:
            ours, theirs = metrics[split][name], baseline.get(split, {}).get(name, {})
            count = ours.get("example_count") or 0
            accuracy = ours.get("binary_accuracy")
            rows.append([_esc(name), _number(count, 0), _number(accuracy),
                         _number(theirs.get("binary_accuracy")), _auc(ours), _auc(theirs)])
            if accuracy is not None and count:
                bars.append((name, count, accuracy, theirs.get("binary_accuracy")))

        def draw(figure, bars=bars):
            axes = figure.add_subplot(1, 1, 1)
            positions = list(range(len(bars)))
            for offset, role, index in ((-0.2, "candidate", 2), (0.2, "linear_baseline", 3)):
                values = [b[index] if b[index] is not None else float("nan") for b in bars]
                errors = [[], []]
                for bar, value in zip(bars, values):
                    low, high = wilson_interval(value, bar[1]) if value == value else (value, value)
                    errors[0].append(max(value - low, 0.0))
                    errors[1].append(max(high - value, 0.0))
                axes.barh([p + offset for p in positions], values, height=0.4, xerr=errors,
                          color=_COLORS[role], label=MODEL_LABELS[role], capsize=2)
            axes.set_yticks(positions, [f"{b[0]} ({b[1]:.0f})" for b in bars], fontsize=8)
            axes.invert_yaxis()
            low = min(min(b[2] for b in bars), min(b[3] or 1.0 for b in bars))
            axes.set_xlim(max(0.0, low - 0.1), 1.0)
            axes.set_xlabel("accuracy (95% Wilson interval)")
            axes.legend(fontsize=8, loc="lower right")
            axes.grid(axis="x", alpha=0.3)

        parts.append(
            f"<h3>{_esc(split)} <small>({_esc(SPLIT_ROLES.get(split, ''))})</small></h3>"
            + _figure(out_dir, f"slices_{split}", draw, (9, 0.35 * len(bars) + 1.2),
                      f"Accuracy by slice on {split}, both models; reviews per slice in brackets.")
            + table(["slice", "reviews", "BiLSTM accuracy", "linear accuracy", "BiLSTM AUC",
                     "linear AUC"], rows))
    return "".join(parts)


def read_plots(evaluation_uri: str) -> Dict[str, Dict[str, Dict[str, Any]]]:
    """TFMA's plots for each split's overall slice: {split: {model: {kind: rows}}}."""
    import tensorflow_model_analysis as tfma

    plots: Dict[str, Dict[str, Dict[str, Any]]] = {}
    for plots_for_slice in tfma.load_plots(evaluation_uri):
        keys = plots_for_slice.slice_key.single_slice_keys
        split = split_of(plots_for_slice.slice_key)
        if split is None or len(keys) != 1:  # only a split's own, unsliced plots
            continue
        for item in plots_for_slice.plot_keys_and_values:
            model = item.key.model_name or "candidate"
            target = plots.setdefault(split, {}).setdefault(model, {})
            value = item.value
            if value.HasField("calibration_histogram_buckets"):
                target["calibration"] = [
                    (b.total_weighted_refined_prediction.value / b.num_weighted_examples.value,
                     b.total_weighted_label.value / b.num_weighted_examples.value,
                     b.num_weighted_examples.value)
                    for b in value.calibration_histogram_buckets.buckets
                    if b.num_weighted_examples.value > 0]
            if value.HasField("confusion_matrix_at_thresholds"):
                target["pr_curve"] = [
                    (m.recall, m.precision) for m in value.confusion_matrix_at_thresholds.matrices
                    if m.true_positives + m.false_positives > 0]
    return plots


def evaluation_plots_section(outputs: RunOutputs, out_dir: Path) -> str:
    evaluation_uri = outputs.uri("Evaluator", "evaluation")
    if evaluation_uri is None:
        raise Unavailable("no TFMA evaluation in this home")
    plots = read_plots(evaluation_uri)
    metrics = outputs.record.get("metrics") or {}
    baseline = outputs.record.get("baseline_metrics") or {}
    parts = []
    for split in [s for s in ("eval", "report", "test") if s in plots]:
        by_model = plots[split]

        def matrix_at_half(source):
            rows = (source.get(split, {}).get("overall", {}) or {}).get(
                "confusion_matrix_at_thresholds") or []
            return next((r for r in rows if abs((r.get("threshold") or 0) - 0.5) < 1e-6), None)

        matrices = {"candidate": matrix_at_half(metrics), "linear_baseline": matrix_at_half(baseline)}

        def draw(figure, by_model=by_model, matrices=matrices):
            calibration = figure.add_subplot(1, 4, 1)
            calibration.plot([0, 1], [0, 1], color="grey", linestyle=":", label="perfect")
            pr = figure.add_subplot(1, 4, 2)
            for model, kinds in by_model.items():
                label, color = MODEL_LABELS.get(model, model), _COLORS.get(model)
                if kinds.get("calibration"):
                    predicted, observed, _ = zip(*kinds["calibration"])
                    calibration.plot(predicted, observed, "o-", color=color, label=label)
                if kinds.get("pr_curve"):
                    recall, precision = zip(*kinds["pr_curve"])
                    pr.plot(recall, precision, color=color, label=label)
            if not any(kinds.get("pr_curve") for kinds in by_model.values()):
                pr.text(0.5, 0.5, "no ConfusionMatrixPlot\nin this evaluation", ha="center")
            calibration.set(title="calibration (10 buckets)", xlabel="mean predicted P(positive)",
                            ylabel="fraction positive", xlim=(0, 1), ylim=(0, 1))
            pr.set(title="precision-recall", xlabel="recall", ylabel="precision")
            for axes in (calibration, pr):
                axes.grid(alpha=0.3)
                if axes.get_legend_handles_labels()[0]:
                    axes.legend(fontsize=7)
            for index, role in enumerate(("candidate", "linear_baseline")):
                axes = figure.add_subplot(1, 4, 3 + index)
                matrix = matrices[role]
                if not matrix:
                    axes.set_axis_off()
                    continue
                cells = [[matrix["true_negatives"], matrix["false_positives"]],
                         [matrix["false_negatives"], matrix["true_positives"]]]
                axes.imshow(cells, cmap="Blues")
                for row in range(2):
                    for column in range(2):
                        axes.text(column, row, f"{cells[row][column]:.0f}", ha="center",
                                  va="center", color="black", fontsize=11,
                                  bbox={"facecolor": "white", "alpha": 0.7, "lw": 0})
                axes.set_xticks([0, 1], ["negative", "positive"])
                axes.set_yticks([0, 1], ["negative", "positive"])
                axes.set(title=f"{MODEL_LABELS[role]} at 0.5", xlabel="predicted", ylabel="true")

        parts.append(f"<h3>{_esc(split)} <small>({_esc(SPLIT_ROLES.get(split, ''))})</small></h3>"
                     + _figure(out_dir, f"evaluation_{split}", draw, (16, 4),
                               f"{split}: calibration, precision-recall curve and confusion "
                               f"matrices at threshold 0.5, from TFMA's CalibrationPlot, "
                               f"ConfusionMatrixPlot and ConfusionMatrixAtThresholds."))
    if not parts:
        raise Unavailable("the evaluation holds no plots")
    return "".join(parts)


def _feature_stats(dataset, name: str):
    return next((f for f in dataset.features if list(f.path.step) == [name]), None)


def data_section(outputs: RunOutputs, out_dir: Path) -> str:
    statistics_uri = outputs.uri("StatisticsGen", "statistics")
    checks = dict(outputs.record.get("data_checks") or {})
    oversized = checks.pop("oversized_skipped", None) or {}
    parts = []
    if checks:
        rows = []
        for split, check in checks.items():
            drift = check.get("drift_from_train") or check.get("drift_from_reference") or {}
            rows.append([_esc(split), _number(check.get("reviews"), 0), _number(check.get("empty"), 0),
                         _number(check.get("median_words"), 0), _number(drift.get("length_jsd")),
                         _number(drift.get("vocabulary_jsd"))])
        parts.append("<h3>DataGate findings</h3>" + table(
            ["split", "reviews", "empty", "median words", "length JSD", "vocabulary JSD"], rows)
            + "<p class=note>Jensen-Shannon divergences of each split's length and vocabulary "
              "distributions from train's (train's from the curated reference profile).</p>"
            + ("<p class=note>Skipped at ingestion for their size, never profiled: "
               + _esc(", ".join(f"{k} {v}" for k, v in sorted(oversized.items()))) + ".</p>"
               if oversized else ""))
    if statistics_uri is None:
        if not parts:
            raise Unavailable("no statistics and no DataGate findings in this home")
        return "".join(parts)
    import tensorflow_data_validation as tfdv

    statistics = {}
    for path in sorted(glob.glob(os.path.join(statistics_uri, "Split-*", "FeatureStats.pb"))):
        split = Path(path).parent.name[len("Split-"):]
        statistics[split] = tfdv.load_stats_binary(path).datasets[0]
    if not statistics:
        raise Unavailable(f"no FeatureStats.pb under {statistics_uri}")

    def shares(dataset, name):
        stats = _feature_stats(dataset, name)
        if stats is None:
            return {}
        buckets = stats.string_stats.rank_histogram.buckets or []
        total = sum(b.sample_count for b in buckets) or 1
        return {b.label: b.sample_count / total for b in buckets}

    def draw(figure):
        for index, name in enumerate((features.LENGTH_BUCKET, features.RATING)):
            axes = figure.add_subplot(1, 2, index + 1)
            splits = list(statistics)
            if name == features.RATING:
                values = {s: _rating_shares(statistics[s]) for s in splits}
            else:
                values = {s: shares(statistics[s], name) for s in splits}
            labels = sorted({label for v in values.values() for label in v},
                            key=lambda x: int(x.split("-")[0]) if name == features.RATING else x)
            width = 0.8 / max(len(splits), 1)
            for position, split in enumerate(splits):
                axes.bar([i + position * width for i in range(len(labels))],
                         [values[split].get(label, 0.0) for label in labels], width, label=split)
            axes.set_xticks([i + 0.4 - width / 2 for i in range(len(labels))], labels,
                            fontsize=7, rotation=20 if name != features.RATING else 0)
            axes.set(title=f"{name} share per split", ylabel="share of reviews")
            axes.legend(fontsize=7, loc="upper center", ncol=len(splits))
            axes.grid(axis="y", alpha=0.3)

    rows = []
    for split, dataset in statistics.items():
        text = _feature_stats(dataset, features.TEXT)
        label = _feature_stats(dataset, features.LABEL)
        rows.append([_esc(split), _number(dataset.num_examples, 0),
                     _number(label.num_stats.mean if label else None, 3),
                     _number(text.string_stats.avg_length if text else None, 0)])
    parts.append("<h3>TFDV statistics</h3>"
                 + _figure(out_dir, "data_distributions", draw, (12, 3.6),
                           "Length quartiles and star ratings per split, from StatisticsGen's "
                           "statistics.")
                 + table(["split", "reviews", "share positive", "mean characters"], rows))
    facets = _write_tfdv_view(statistics, out_dir)
    if facets:
        parts.append(f'<p>TFDV\'s own statistics view (Facets Overview), train against eval: '
                     f'<a href="{facets}">{facets}</a>. It loads Facets from the web, so it '
                     f'needs a network connection.</p>')
    return "".join(parts)


def _rating_shares(dataset) -> Dict[str, float]:
    """Share of reviews per star rating, from TFDV's standard histogram of `rating`.

    Each bucket is labelled by the whole ratings it holds ("7", or "3-4").
    """
    stats = _feature_stats(dataset, features.RATING)
    if stats is None:
        return {}
    for histogram in stats.num_stats.histograms:
        if histogram.type != histogram.STANDARD:
            continue
        total = sum(b.sample_count for b in histogram.buckets) or 1
        shares: Dict[str, float] = {}
        last = len(histogram.buckets) - 1
        for index, bucket in enumerate(histogram.buckets):
            ratings = [r for r in range(math.ceil(bucket.low_value), math.floor(bucket.high_value) + 1)
                       if r < bucket.high_value or index == last]
            if bucket.sample_count >= 0.5 and ratings:  # TFDV spreads fractions into empty bins
                label = str(ratings[0]) if len(ratings) == 1 else f"{ratings[0]}-{ratings[-1]}"
                shares[label] = shares.get(label, 0.0) + bucket.sample_count / total
        return shares
    return {}


def _write_tfdv_view(statistics: Dict[str, Any], out_dir: Path) -> Optional[str]:
    from tensorflow_data_validation.utils import display_util
    from tensorflow_metadata.proto.v0 import statistics_pb2

    if "train" not in statistics:
        return None

    def as_list(dataset):
        return statistics_pb2.DatasetFeatureStatisticsList(datasets=[dataset])

    other = "eval" if "eval" in statistics else None
    page = display_util.get_statistics_html(
        as_list(statistics["train"]), as_list(statistics[other]) if other else None,
        lhs_name="train", rhs_name=other or "")
    name = "statistics.html"
    (out_dir / name).write_text(f"<!doctype html><html><head><meta charset='utf-8'>"
                                f"<title>TFDV statistics</title></head><body>{page}</body></html>",
                                encoding="utf-8")
    return name


def timings_section(outputs: RunOutputs, out_dir: Path) -> str:
    components = outputs.record.get("components") or []
    if not components:
        raise Unavailable("no components recorded")
    timed = [(c["component"], c["seconds"]) for c in components if c.get("seconds")]

    def draw(figure):
        axes = figure.add_subplot(1, 1, 1)
        axes.barh([name for name, _ in timed], [seconds for _, seconds in timed], color="#4c72b0")
        axes.invert_yaxis()
        axes.set_xlabel("seconds")
        axes.grid(axis="x", alpha=0.3)

    figure = _figure(out_dir, "component_seconds", draw, (8, 0.3 * len(timed) + 1),
                     "Wall time per component.") if timed else ""
    rows = [[_esc(c["component"]), _esc(c["status"]), _number(c.get("seconds"), 1)]
            for c in components]
    return figure + table(["component", "status", "seconds"], rows)


def read_split_reviews(examples_uri: str, split: str) -> List[Dict[str, Any]]:
    """The raw reviews of one split, as ImdbExampleGen wrote them."""
    from imdb_sentiment.components.example_files import split_examples, text_of

    reviews = []
    for example in split_examples(examples_uri, split):
        feature = example.features.feature
        reviews.append({
            "text": text_of(example, features.TEXT),
            "label": int(feature[features.LABEL].int64_list.value[0]),
            "rating": (int(feature[features.RATING].int64_list.value[0])
                       if features.RATING in feature else None),
            "review_id": (feature[features.REVIEW_ID].bytes_list.value[0].decode()
                          if features.REVIEW_ID in feature else ""),
        })
    if not reviews:
        raise Unavailable(f"no {split} examples under {examples_uri}")
    return reviews


def confident_mistakes(reviews: Sequence[Dict[str, Any]], probabilities: Sequence[float],
                       count: int = MISTAKES_SHOWN) -> List[Tuple[Dict[str, Any], float]]:
    """The `count` wrong predictions made with the most confidence, most confident first."""
    wrong = [(review, p) for review, p in zip(reviews, probabilities)
             if int(p >= 0.5) != review["label"]]
    return sorted(wrong, key=lambda item: -abs(item[1] - 0.5))[:count]


def mistakes_section(outputs: RunOutputs, out_dir: Path) -> str:
    from . import explain as explain_lib
    from . import serving_client

    model_uri = outputs.uri("Trainer", "model")
    examples_uri = outputs.uri("ImdbExampleGen", "examples")
    if model_uri is None or examples_uri is None:
        raise Unavailable("no trained model or no examples in this home")
    reviews = read_split_reviews(examples_uri, "eval")
    model = serving_client.load(os.path.join(model_uri, "Format-Serving"))
    probabilities = serving_client.predict(model, [r["text"] for r in reviews])
    mistakes = confident_mistakes(reviews, probabilities)
    if not mistakes:
        return "<p>The BiLSTM made no mistake on the eval split.</p>"
    wrong = sum(int(p >= 0.5) != review["label"] for review, p in zip(reviews, probabilities))
    explanations = serving_client.explain(model, [review["text"] for review, _ in mistakes])
    parts = [f"<p>The {len(mistakes)} eval reviews the trained BiLSTM got wrong with the most "
             f"confidence (of {wrong} mistakes in {len(reviews)} reviews), each with the "
             f"attention that <code>imdb-pipeline explain</code> draws: tokens shaded by "
             f"their weight, relative to the review's largest.</p>"]
    for index, ((review, probability), explanation) in enumerate(zip(mistakes, explanations), 1):
        name = f"mistake_{index}.png"
        explain_lib.write_png([explanation], out_dir / name)
        truth = features.CLASS_NAMES[review["label"]]
        parts.append(f"<figure class=mistake><figcaption>{index}. {_esc(review['review_id'])}: "
                     f"rated {_esc(review['rating'])}/10, truly {truth}; the model said "
                     f"P(positive) = {probability:.3f}.</figcaption><img src='{name}' "
                     f"alt='attention over mistake {index}'></figure>")
    return "".join(parts)


SECTIONS: Tuple[Tuple[str, str, Callable[[RunOutputs, Path], str]], ...] = (
    ("summary", "Summary", summary_section),
    ("training", "Training", training_section),
    ("slices", "Metrics by split and slice", slices_section),
    ("evaluation", "Calibration, precision-recall and confusion matrices", evaluation_plots_section),
    ("data", "Data", data_section),
    ("timings", "Component timings", timings_section),
    ("mistakes", "Most confident mistakes on eval", mistakes_section),
)

_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 72rem; margin: 2rem auto; padding: 0 1rem;
       color: #111; }
h1 { margin-bottom: 0.2rem; } h2 { border-bottom: 2px solid #ddd; padding-top: 1rem; }
nav a { margin-right: 1rem; }
table { border-collapse: collapse; margin: 0.6rem 0; font-size: 0.9rem; }
th, td { border: 1px solid #ccc; padding: 0.25rem 0.6rem; text-align: left; }
th { background: #f3f3f3; }
figure { margin: 1rem 0; } figure img { max-width: 100%; border: 1px solid #eee; }
figcaption, .note { color: #555; font-size: 0.85rem; }
dt { font-weight: bold; float: left; width: 6rem; clear: left; } dd { margin: 0 0 0.4rem 7rem; }
.unavailable { color: #a33; }
small { color: #666; font-weight: normal; }
"""


def write_report(home: Path) -> Path:
    """Writes `<home>/report/index.html` (and its images) and returns the page's path."""
    home = Path(home)
    outputs = RunOutputs(home)
    out_dir = home / REPORT_DIR
    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in out_dir.glob("*.png"):
        stale.unlink()
    body = []
    for anchor, title, build in SECTIONS:
        try:
            content = build(outputs, out_dir)
        except Unavailable as missing:
            content = f"<p class=unavailable>Not available: {_esc(missing)}.</p>"
        except Exception as error:  # noqa: BLE001 - one broken section must not lose the page
            logging.exception("Run report: section %s failed", anchor)
            content = (f"<p class=unavailable>This section could not be drawn: "
                       f"{_esc(type(error).__name__)}: {_esc(error)}.</p>")
        body.append(f'<section id="{anchor}"><h2>{_esc(title)}</h2>{content}</section>')
    nav = "".join(f'<a href="#{anchor}">{_esc(title)}</a>' for anchor, title, _ in SECTIONS)
    page = (f"<!doctype html><html lang=en><head><meta charset=utf-8>"
            f"<title>IMDB sentiment run report</title><style>{_STYLE}</style></head><body>"
            f"<h1>IMDB sentiment pipeline: run report</h1>"
            f"<p class=note>Pipeline home <code>{_esc(home.resolve())}</code>. Rebuild with "
            f"<code>imdb-pipeline report --home {_esc(home)}</code>.</p>"
            f"<nav>{nav}</nav>{''.join(body)}</body></html>")
    index = out_dir / INDEX
    index.write_text(page, encoding="utf-8")
    return index
