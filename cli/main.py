"""`imdb-pipeline`: run the pipeline locally, query and explain a model.

Exit status (stable, for scripts):
  0  success (for `run`: a model was blessed and pushed)
  1  unexpected failure (traceback in the log file)
  2  usage error, or input data that cannot be used (message says why)
  3  `run` finished but the model was not blessed, so nothing was pushed
  4  the pipeline home is in use by another run
  5  a fault of the machine: disk full, permissions, the metadata store
130  interrupted (Ctrl-C); 143  terminated (SIGTERM): a later run resumes from the cache
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from imdb_sentiment.trainer import features

from imdb_sentiment.pipeline import config as config_lib
from imdb_sentiment.local.runner import CPU_THREAD_MODES, Terminated

EXIT_OK, EXIT_FAILURE, EXIT_BAD_INPUT, EXIT_NOT_BLESSED, EXIT_LOCKED = 0, 1, 2, 3, 4
#: A fault of the machine, not of the data or the code: a full disk, a read-only or
#: unwritable home, a metadata store that cannot be opened.
EXIT_ENVIRONMENT = 5
#: Interrupted by Ctrl-C (SIGINT) or by SIGTERM: the shell's 128 + signal number.
EXIT_INTERRUPTED, EXIT_TERMINATED = 130, 143


def _terminate_on(stop: threading.Event):
    """A SIGTERM handler: remember the request, and raise `Terminated` where the run is."""

    def handler(signum, frame) -> None:
        stop.set()
        raise Terminated(f"received signal {signum}")

    return handler


def _after_termination(error: BaseException, stop: threading.Event) -> BaseException:
    """The run's failure as the CLI reports it: once SIGTERM has arrived, any failure is
    the termination's. The signal also reaches Beam's worker processes, and their deaths
    can surface as the component's own error before the handler's exception does."""
    if not stop.is_set() or isinstance(error, Terminated):
        return error
    terminated = Terminated(f"received SIGTERM; then {type(error).__name__}: {first_line(error)}")
    terminated.__cause__ = error
    return terminated


def _quiet_tensorflow(cpp_log_level: str = "2") -> None:
    """Imports TensorFlow without its start-up noise on the terminal.

    TensorFlow 2.16's import writes "Unable to register cuFFT/cuDNN/cuBLAS
    factory" errors to fd 2 on every machine, GPU or not; a user's first
    sight of the tool must be its own output. They are held back while
    TensorFlow loads and shown only if the import itself fails.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", cpp_log_level)
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    if "tensorflow" in sys.modules:
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        try:
            import tensorflow  # noqa: F401
        except BaseException:
            os.dup2(saved, 2)
            held.seek(0)
            sys.stderr.write(held.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def first_line(error: BaseException, limit: int = 300) -> str:
    """An exception's message cut to its first line: errors raised through Beam
    carry whole tracebacks in their text, which belong in the log, not here."""
    lines = str(error).strip().splitlines() or [""]
    line = lines[0]
    return line if len(line) <= limit else line[:limit - 3] + "..."


def _error(message: str) -> None:
    sys.stderr.write(f"imdb-pipeline: error: {message}\n")


def build_config(args: argparse.Namespace) -> config_lib.PipelineConfig:
    """Profile, then environment, then flags: the one config of this run."""
    config = config_lib.profile_config(args.profile)
    data = args.data if args.data is not None else os.environ.get("IMDB_DATA", "")
    changes: Dict[str, Any] = {"data": data, "enable_cache": not args.no_cache,
                               "local_cpu_threads": args.cpu_threads}
    if args.beam_arg:
        changes["beam_pipeline_args"] = tuple(args.beam_arg)
    return config_lib.with_overrides(config.replace(**changes), args.set or ())


def _number(value: Any) -> str:
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else f"{value:.4f}"
    return str(value)


def _with_interval(entry: Optional[Dict[str, Any]], signed: bool = False) -> str:
    if not entry or entry.get("value") is None:
        return "-"
    value = f"{entry['value']:+.4f}" if signed else f"{entry['value']:.4f}"
    low, high = entry.get("ci95") or (None, None)
    if low is None or high is None:
        return value
    return f"{value} [{low:+.3f}, {high:+.3f}]" if signed else f"{value} [{low:.3f}, {high:.3f}]"


def accuracy_table(record: Dict[str, Any]) -> List[str]:
    """Accuracy of both models and their difference per split, with 95% intervals."""
    accuracy = record.get("accuracy") or {}
    if not accuracy:
        return []
    rows = [("accuracy [95% interval]", "reviews", "BiLSTM", "linear baseline", "BiLSTM - baseline")]
    from imdb_sentiment.components.evaluation_results import SPLIT_ROLES

    for split in sorted(accuracy, key=lambda s: list(SPLIT_ROLES).index(s) if s in SPLIT_ROLES else 9):
        by_role = accuracy[split]
        role = f"{split} ({SPLIT_ROLES[split]})" if split in SPLIT_ROLES else split
        rows.append((role, _number(by_role.get("reviews") or 0),
                     _with_interval(by_role.get("candidate")),
                     _with_interval(by_role.get("linear_baseline")),
                     _with_interval(by_role.get("difference"), True)))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["  " + "  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip()
            for row in rows]


def slice_table(record: Dict[str, Any], split: str, feature: str) -> List[str]:
    """Accuracy of both models on `split`, one row per value of `feature` (e.g. length)."""
    prefix = f"{feature}="
    candidate = (record.get("metrics") or {}).get(split) or {}
    baseline = (record.get("baseline_metrics") or {}).get(split) or {}
    names = [name for name in candidate if name.startswith(prefix)]
    if not names:
        return []

    def accuracy(metrics: Dict[str, Any]) -> str:
        value = metrics.get("binary_accuracy")
        return "-" if value is None else f"{value:.4f}"

    rows = [(f"{split} by {feature}", "reviews", "BiLSTM", "linear baseline")]
    for name in sorted(names):
        rows.append((name[len(prefix):], _number(candidate[name].get("example_count") or 0),
                     accuracy(candidate[name]), accuracy(baseline.get(name) or {})))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["  " + "  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip()
            for row in rows]


def _print_summary(record: Dict[str, Any], terminal) -> None:
    from imdb_sentiment.reporting.run_summary import data_notes

    write = lambda text="": terminal.write(text + "\n")  # noqa: E731
    write()
    write(f"Run {'finished' if record['succeeded'] else 'FAILED'} in {record['seconds']:.0f}s "
          f"(profile {record['profile']})")
    for component in record["components"]:
        seconds = component["seconds"]
        write(f"  {component['component']:<32} {component['status']:<9} "
              f"{'' if seconds is None else f'{seconds:7.1f}s'}")
    for line in accuracy_table(record):
        write(line)
    for split in ("report", "test"):  # the splits that decide nothing
        for line in slice_table(record, split, features.LENGTH_BUCKET):
            write(line)
    for sentence in [*data_notes(record), *(record.get("baseline_margin") or {}).values()]:
        write(f"  {sentence}")
    if record.get("blessed") is not None:
        write(f"  blessed: {'yes' if record['blessed'] else 'no'} ({record.get('blessing_reason')})")
    write(f"  pushed model: {record.get('pushed_model') or 'none'}")
    write(f"  log: {record['log_file']}")
    terminal.flush()


def command_run(args: argparse.Namespace) -> int:
    _quiet_tensorflow()
    from imdb_sentiment.components.spans import SpanError, select_spans
    from imdb_sentiment.local.runner import (
        RunLockedError, check_free_space, configure_cpu_threads, environment_problem, home_lock,
        output_to_log, prepared_config, run_pipeline, unchanged_since_last_run)

    try:
        config = build_config(args)
        threads = configure_cpu_threads(config.local_cpu_threads)
    except ValueError as error:
        _error(str(error))
        return EXIT_BAD_INPUT
    home = Path(args.home).expanduser().resolve()
    if home.exists() and not home.is_dir():
        _error(f"--home {home} is a file, not a directory")
        return EXIT_BAD_INPUT
    layout = config_lib.HomeLayout(home)
    log_path = layout.logs_dir / f"run-{time.strftime('%Y%m%d-%H%M%S')}.log"
    if config.data and "://" not in config.data:
        config = config.replace(data=str(Path(config.data).expanduser().resolve()))
    stop = threading.Event()
    signal.signal(signal.SIGTERM, _terminate_on(stop))
    failure: Optional[BaseException] = None
    try:
        with home_lock(home):
            try:
                selection = select_spans(config.data, config.ingestion.span_window)
            except SpanError as error:  # before any work: no run record is written
                _error(f"bad input data: {error}")
                return EXIT_BAD_INPUT
            # Prepared once here (the test-split look inside the data included);
            # run_pipeline's own preparation of it then changes nothing.
            config = prepared_config(config, home, selection)
            newest = (unchanged_since_last_run(layout.last_run, selection, config)
                      if selection.has_spans and not args.no_cache else None)
            if newest is not None:
                print(f"imdb-pipeline: no new data since span {newest} "
                      f"({config.data}); nothing to do", flush=True)
                return EXIT_OK
            check_free_space(home, config)
            print(f"imdb-pipeline: profile {config.profile}, home {home}\n"
                  f"  data: {config.data or 'official download'}"
                  + (f" ({selection.describe()})" if selection.has_spans else "")
                  + f"\n  log: {log_path}\n"
                  f"  TensorFlow threads: " + (f"intra-op {threads[0]}, inter-op {threads[1]}"
                                               if threads else "TensorFlow's defaults"),
                  flush=True)
            with output_to_log(log_path) as terminal:
                try:
                    record = run_pipeline(config, home, terminal, log_path, stop=stop,
                                          selection=selection)
                except BaseException as error:  # noqa: BLE001 - every failure gets one line and a code
                    _print_failed_run(layout.last_run, log_path, terminal)
                    failure = _after_termination(error, stop)
                else:
                    _print_summary(record, terminal)
                if not isinstance(failure, KeyboardInterrupt) and layout.last_run.exists():
                    _write_run_report(home, terminal)
    except RunLockedError as error:
        _error(str(error))
        return EXIT_LOCKED
    except OSError as error:  # the home itself: read-only, full, not ours
        problem = environment_problem(error, home)
        if problem is None:
            raise
        _error(problem)
        return EXIT_ENVIRONMENT
    if failure is not None:
        return _report_failure(failure, home, log_path)
    if not record.get("pushed_model"):
        _error(f"the model was not blessed, nothing was pushed: {record.get('blessing_reason')}")
        return EXIT_NOT_BLESSED
    return EXIT_OK


def _write_run_report(home: Path, terminal) -> None:
    """The run's HTML report; a report that cannot be written never fails the run."""
    from imdb_sentiment.reporting.run_report import write_report

    terminal.write("  writing the run report ...\n")
    terminal.flush()
    try:
        page = write_report(home)
    except Exception as error:  # noqa: BLE001 - the run's own outcome stands
        logging.exception("Run report failed")
        terminal.write(f"  report: not written ({first_line(error)}; see the log)\n")
    else:
        terminal.write(f"  report: {page}\n")
    terminal.flush()


def _print_failed_run(last_run: Path, log_path: Path, terminal) -> None:
    """The summary of this run if it recorded itself; never the previous run's."""
    try:
        record = json.loads(last_run.read_text())
    except (OSError, ValueError):
        record = None
    if record is not None and record.get("log_file") == str(log_path):
        _print_summary(record, terminal)
        return
    terminal.write("\nRun FAILED before it could record itself"
                   + (f"; {last_run} still holds the previous run (log: {record.get('log_file')})"
                      if record else "") + "\n")
    terminal.flush()


def _report_failure(error: BaseException, home: Path, log_path: Path) -> int:
    """One line on why a run failed, and its exit code (docs/operations.md)."""
    from imdb_sentiment.components.imdb_data import DataError

    from imdb_sentiment.local.runner import environment_problem

    problem = environment_problem(error, home)
    if problem is not None:
        _error(f"{problem}\n  (traceback in {log_path})" if log_path.exists() else problem)
        return EXIT_ENVIRONMENT
    data_error = _root_cause(error, DataError)
    if isinstance(data_error, DataError):
        _error(f"bad input data: {data_error}")
        return EXIT_BAD_INPUT
    if isinstance(error, KeyboardInterrupt):
        how = "terminated" if isinstance(error, Terminated) else "interrupted"
        _error(f"{how}; run the same command again to resume (completed components are cached)")
        return EXIT_TERMINATED if isinstance(error, Terminated) else EXIT_INTERRUPTED
    _error(f"{type(error).__name__}: {first_line(error)}\n  (traceback in {log_path})")
    return EXIT_FAILURE


def _root_cause(error: BaseException, wanted: type) -> BaseException:
    """The first exception of type `wanted` in the cause/context chain, else `error`."""
    seen = error
    while seen is not None:
        if isinstance(seen, wanted):
            return seen
        seen = seen.__cause__ or seen.__context__
    return error


def _read_reviews(args: argparse.Namespace) -> List[str]:
    reviews = list(args.reviews)
    if not reviews or reviews == ["-"]:
        raw = sys.stdin.buffer.read()
        text = raw.decode("utf-8", errors="replace")
        if "\ufffd" in text and b"\xef\xbf\xbd" not in raw:
            _error("warning: stdin is not valid UTF-8; undecodable bytes were replaced "
                   "(U+FFFD) and the reviews scored as they read")
        reviews = [line for line in text.splitlines() if line.strip()]
    if not reviews:
        raise ValueError("no reviews given (pass them as arguments or one per line on stdin)")
    return reviews


def _reviews_and_model(args: argparse.Namespace):
    """(reviews, loaded model), or None after reporting why not."""
    from imdb_sentiment.reporting import serving_client

    try:
        return _read_reviews(args), serving_client.load(args.model)
    except (ValueError, FileNotFoundError) as error:
        _error(str(error))
        return None


def command_predict(args: argparse.Namespace) -> int:
    _quiet_tensorflow()
    from imdb_sentiment.reporting import serving_client

    loaded = _reviews_and_model(args)
    if loaded is None:
        return EXIT_BAD_INPUT
    reviews, model = loaded
    for review, probability in zip(reviews, serving_client.predict(model, reviews)):
        label = features.CLASS_NAMES[int(probability >= 0.5)]
        preview = review if len(review) <= 60 else review[:57] + "..."
        if args.json:
            print(json.dumps({"label": label, "probability": round(probability, 6), "review": review}))
        else:
            print(f"{label}\t{probability:.4f}\t{preview}")
    return EXIT_OK


#: What `explain --out` writes, chosen by the file's extension.
EXPLAIN_FORMATS = (".html", ".htm", ".png")


def command_explain(args: argparse.Namespace) -> int:
    _quiet_tensorflow()
    from imdb_sentiment.reporting import explain as explain_lib
    from imdb_sentiment.reporting import serving_client

    out = Path(args.out)
    if out.suffix.lower() not in EXPLAIN_FORMATS:
        _error(f"--out {out}: write a {' or '.join(EXPLAIN_FORMATS)} file "
               f"(the format follows the extension)")
        return EXIT_BAD_INPUT
    if not out.parent.is_dir():
        _error(f"--out {out}: no directory {out.parent}")
        return EXIT_BAD_INPUT
    loaded = _reviews_and_model(args)
    if loaded is None:
        return EXIT_BAD_INPUT
    reviews, model = loaded
    explanations = serving_client.explain(model, reviews)
    if out.suffix.lower() == ".png":
        explain_lib.write_png(explanations, out)
    else:
        explain_lib.write_html(explanations, out)
    for item in explanations:
        top = ", ".join(f"{t} {w:.3f}" for t, w in item.top_tokens(5))
        print(f"{item.label}\t{item.probability:.4f}\ttop tokens: {top}")
    print(f"wrote {out}")
    return EXIT_OK


KUBEFLOW_COMMANDS = ("compile", "submit", "schedule")


def command_kubeflow(argv: Sequence[str]) -> int:
    """Hands `compile|submit|schedule ...` to `imdb_sentiment.kubeflow.runner` unchanged."""
    _quiet_tensorflow()
    from imdb_sentiment.kubeflow import runner  # imports KFP and TFX: only when asked

    return runner.main(list(argv))


def command_describe(args: argparse.Namespace) -> int:
    """Where a pushed version came from and how good it is (its assets.extra/lineage.json)."""
    _quiet_tensorflow()
    from imdb_sentiment.components import model_card

    from imdb_sentiment.reporting import serving_client

    try:
        lines = model_card.describe(str(serving_client.resolve_model_dir(args.model)))
    except (ValueError, FileNotFoundError) as error:
        _error(str(error))
        return EXIT_BAD_INPUT
    print("\n".join(lines))
    return EXIT_OK


def command_report(args: argparse.Namespace) -> int:
    """Rebuilds <home>/report/index.html from what the home's last run left."""
    _quiet_tensorflow()
    from imdb_sentiment.reporting.run_report import write_report

    home = Path(args.home).expanduser()
    try:
        page = write_report(home)
    except FileNotFoundError as error:
        _error(str(error))
        return EXIT_BAD_INPUT
    print(f"wrote {page}")
    return EXIT_OK


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="imdb-pipeline", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="run the TFX pipeline locally (Beam + SQLite metadata)")
    run.add_argument("--data", default=None,
                     help="aclImdb archive (.tar.gz), extracted folder or URL; default $IMDB_DATA, "
                          "else the official download (checksum-verified)")
    run.add_argument("--home", default=config_lib.DEFAULT_HOME,
                     help="directory for artifacts, metadata, pushed models and logs")
    run.add_argument("--profile", choices=config_lib.PROFILES, default="full")
    run.add_argument("--set", action="append", metavar="SECTION.NAME=VALUE",
                     help="override one config value, e.g. trainer.epochs=2 (repeatable)")
    run.add_argument("--beam-arg", action="append", metavar="ARG",
                     help="Beam pipeline argument (repeatable); default: multi-process direct runner")
    run.add_argument("--no-cache", action="store_true", help="rerun every component")
    run.add_argument("--cpu-threads", choices=CPU_THREAD_MODES, default="auto",
                     help="TensorFlow thread pools of the Trainer's process: auto = one thread "
                          "per op, two ops at once on machines with at most 2 cores; "
                          "default = TensorFlow's own")
    run.set_defaults(handler=command_run)

    for name, handler, help_text in (
            ("predict", command_predict, "label reviews with an exported or pushed model"),
            ("explain", command_explain, "show which words the model attended to")):
        sub = commands.add_parser(name, help=help_text)
        sub.add_argument("--model", required=True,
                         help="SavedModel directory, or a serving dir holding numbered versions")
        sub.add_argument("reviews", nargs="*", help="review texts; none or '-' reads stdin, one per line")
        if name == "predict":
            sub.add_argument("--json", action="store_true", help="one JSON object per line")
        else:
            sub.add_argument("--out", required=True,
                             help="output file: .html page or .png image (by extension)")
        sub.set_defaults(handler=handler)
    describe = commands.add_parser(
        "describe", help="print a pushed model's card: data checksum, commit, config, metrics")
    describe.add_argument("--model", required=True,
                          help="a pushed version directory, or the serving dir (newest version)")
    describe.set_defaults(handler=command_describe)
    report = commands.add_parser(
        "report", help="rebuild a run's HTML report (<home>/report/index.html)")
    report.add_argument("--home", default=config_lib.DEFAULT_HOME, help="the pipeline home of the run")
    report.set_defaults(handler=command_report)
    for name, help_text in (("compile", "write the Kubeflow Pipelines spec (.yaml KFP, .json Vertex)"),
                            ("submit", "compile, upload and start a run on Kubeflow Pipelines"),
                            ("schedule", "create or update a recurring run on Kubeflow Pipelines")):
        # Listed for --help; main() hands these to the Kubeflow runner before parsing.
        commands.add_parser(name, help=f"{help_text}; '{name} --help' for its flags")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    # Google's client libraries warn on every start that Python 3.10 is old;
    # TFX 1.16 needs 3.9-3.10, so the warning only buries the output.
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"google\.")
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in KUBEFLOW_COMMANDS:
        return command_kubeflow(argv)
    args = make_parser().parse_args(argv)
    if args.command in ("predict", "explain", "describe", "report"):
        # Before TensorFlow loads: its C++ log lines would bury the answer.
        _quiet_tensorflow(cpp_log_level="3")
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
