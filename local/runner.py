"""Runs the pipeline on this machine: LocalDagRunner, Beam, SQLite metadata.

The terminal shows one line per component (and per training epoch); all
other output, TensorFlow's and Beam workers' included, goes to
`<home>/logs/run-<time>.log`. At the end `<home>/last_run.json` records what
happened, whether the run succeeded or not.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import fcntl
import json
import logging
import os
import re
import shutil
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence, TextIO, Tuple

from absl import logging as absl_logging

from imdb_sentiment.pipeline.config import HomeLayout, PipelineConfig

LOCK_FILE = ".run.lock"


def direct_beam_args(workers: int) -> Tuple[str, ...]:
    """The DirectRunner's flags for a local run: `workers` processes, or Beam in this
    process for one. Without a dependency flag, TFX's Beam executors package TFX
    itself as an sdist for remote workers before every component
    (`make_beam_dependency_flags`, TFX 1.16's `tfx/utils/dependency_utils.py`); the
    direct runner's workers import the installed packages, so naming a container
    image, which it never starts, skips that packaging."""
    mode = ("--direct_running_mode=in_memory" if workers == 1
            else "--direct_running_mode=multi_processing")
    return (mode, f"--direct_num_workers={workers}",
            "--sdk_container_image=unused-by-the-direct-runner")


_COMPONENT_EVENT = re.compile(r"^Component (\S+) is (running|finished)\.$")
_EPOCH_EVENT = re.compile(r"^Trainer epoch (\{.*\})$")


CPU_THREAD_MODES = ("auto", "default")


def cpu_thread_setting(mode: str, cores: int) -> Optional[Tuple[int, int]]:
    """(intra-op, inter-op) threads for `local_cpu_threads`, or None for TF's defaults.

    On 2 cores the LSTM's small per-step ops lose more to an intra-op pool
    than they gain, while two inter-op threads run both directions at once.
    """
    if mode not in CPU_THREAD_MODES:
        raise ValueError(f"local_cpu_threads must be one of {', '.join(CPU_THREAD_MODES)}, "
                         f"not {mode!r}")
    if mode == "auto" and cores <= 2:
        return 1, 2
    return None


def configure_cpu_threads(mode: str) -> Optional[Tuple[int, int]]:
    """Applies `cpu_thread_setting` to this process; call before TF runs an op."""
    setting = cpu_thread_setting(mode, os.cpu_count() or 1)
    if setting is not None:
        import tensorflow as tf

        try:
            tf.config.threading.set_intra_op_parallelism_threads(setting[0])
            tf.config.threading.set_inter_op_parallelism_threads(setting[1])
        except RuntimeError:  # TensorFlow already initialised: keep its pools
            logging.warning("TensorFlow already running; thread pools left at its defaults")
            return None
    return setting


class RunLockedError(RuntimeError):
    """Another run holds the home directory."""


def atomic_write_text(path: Path, text: str) -> None:
    """Writes `path` whole or not at all: a temporary file in the same
    directory, flushed to disk, then renamed over it. A failed write (a full
    disk, say) leaves the previous file as it was."""
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(temporary)
        raise


class NotEnoughSpace(OSError):
    """The home's disk has less room than the run will need (checked up front)."""


def estimated_space_mb(config: PipelineConfig) -> int:
    """A generous estimate of what a run writes under its home, in MB: the
    examples and their transformed copy, and the model three times (export,
    evaluation copy, push), the folded export's two input tables included."""
    trainer = config.trainer
    reviews = 25_000 * config.ingestion.sample_percent / 100
    data_mb = reviews * 12 / 1000  # ~12 KB a review across raw, transformed and n-gram records
    table_floats = (trainer.vocab_size + 2) * (trainer.embedding_dim + 2 * 4 * trainer.lstm_units)
    model_mb = table_floats * 4 / 1e6 + trainer.ngram_vocab_size * 4 / 1e6
    return int(data_mb + 3 * model_mb) + 50


def check_free_space(home: Path, config: PipelineConfig) -> None:
    """Fails before any work when the home's disk cannot hold the run."""
    needed, free = estimated_space_mb(config), _free_megabytes(home)
    if 0 <= free < needed:
        raise NotEnoughSpace(errno.ENOSPC, f"the run needs about {needed} MB under {home} and "
                             f"{free} MB are free: free some space or pass --home on another "
                             "disk", str(home))


_STORE_BROKEN = ("database disk image is malformed", "file is not a database",
                 "file is encrypted or is not a database", "unable to open database")


def environment_problem(error: BaseException, home: Path) -> Optional[str]:
    """One line saying what is wrong with the machine and what to do, or None
    when `error` is not a fault of the machine (disk, permissions, the store)."""
    seen: Optional[BaseException] = error
    while seen is not None:
        if isinstance(seen, NotEnoughSpace):
            return seen.strerror
        if isinstance(seen, OSError) and seen.errno in (errno.ENOSPC, errno.EDQUOT):
            where = Path(seen.filename).parent if seen.filename else home
            return (f"no space left on the device of {where} ({_free_megabytes(home)} MB free "
                    f"under {home}): free some space or pass --home on another disk; completed "
                    "components stay cached")
        if isinstance(seen, OSError) and seen.errno == errno.EROFS:
            return (f"{seen.filename or home} is on a read-only file system: pass --home on a "
                    "writable disk")
        if isinstance(seen, OSError) and seen.errno in (errno.EACCES, errno.EPERM):
            return (f"{seen.filename or home} cannot be written (permission denied): fix its "
                    "permissions or pass another --home")
        text = str(seen).lower()
        broken = next((marker for marker in _STORE_BROKEN if marker in text), None)
        if broken:
            store = HomeLayout(home).metadata_path
            return (f"the metadata store {store} cannot be opened ({broken}); "
                    f"move it aside and run again: mv {store} {store}.broken (the cache is lost: "
                    "every component reruns)")
        seen = seen.__cause__ or seen.__context__
    return None


def _free_megabytes(path: Path) -> int:
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        return shutil.disk_usage(probe).free // (1 << 20)
    except OSError:
        return -1


def resolve_test_split(config: PipelineConfig, locations: Sequence[str] = ()) -> PipelineConfig:
    """`evaluation.test_split="auto"` becomes on or off, by looking at the data
    (`locations`: the spans a run reads; default `config.data`)."""
    if config.evaluation.test_split != "auto":
        return config
    from imdb_sentiment.components.imdb_data import has_test_reviews

    mode = "on" if any(has_test_reviews(uri) for uri in locations or [config.data]) else "off"
    return config.replace(evaluation=dataclasses.replace(config.evaluation, test_split=mode))


def configure_for_home(config: PipelineConfig, home: Path) -> PipelineConfig:
    """The config with every location under `home`."""
    layout = HomeLayout(home)
    return config.replace(pipeline_root=str(layout.pipeline_root),
                          serving_dir=str(layout.serving_dir),
                          download_cache_dir=str(layout.cache_dir))


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C so the run record is written and the lock released."""


class ComponentProgress(logging.Handler):
    """Turns TFX's 'Component X is running/finished.' log lines into progress.

    It also stops the run before the next component starts once `stop` is
    set: the CLI's SIGTERM handler raises `Terminated` wherever the main
    thread is, and library code that swallows the exception there must not
    make the run ignore a termination.
    """

    def __init__(self, terminal: TextIO, total: int, stop: Optional[threading.Event] = None):
        super().__init__(level=logging.INFO)
        self.terminal, self.total = terminal, total
        self.stop = stop
        self.started: Dict[str, float] = {}
        self.seconds: Dict[str, float] = {}
        self.current: Optional[str] = None

    def _say(self, text: str) -> None:
        self.terminal.write(text + "\n")
        self.terminal.flush()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a bad log record must not kill the run
            return
        match = _COMPONENT_EVENT.match(message)
        if match:
            node, event = match.groups()
            if event == "running":
                if self.stop is not None and self.stop.is_set():
                    raise Terminated(f"terminated before {node} started")
                self.current = node
                self.started[node] = time.perf_counter()
                self._say(f"[{len(self.started)}/{self.total}] {node} ...")
            else:
                started = self.started.get(node, time.perf_counter())
                self.seconds[node] = round(time.perf_counter() - started, 1)
                self.current = None
                self._say(f"      {node} done in {self.seconds[node]:.1f}s")
            return
        match = _EPOCH_EVENT.match(message)
        if match:
            epoch = json.loads(match.group(1))
            fitted = (f"accuracy {epoch.get('accuracy', float('nan')):.4f}"
                      if epoch.get("phase", "labelled") == "labelled"
                      else "distillation from the teacher's soft labels")
            self._say(f"      epoch {epoch['epoch']}: loss {epoch.get('loss', float('nan')):.4f}, "
                      f"{fitted}, eval accuracy {epoch.get('val_accuracy', float('nan')):.4f} "
                      f"({epoch['seconds']:.0f}s, {epoch['examples_per_second']:.0f} reviews/s)")


@contextlib.contextmanager
def home_lock(home: Path) -> Iterator[None]:
    """Holds an exclusive lock on `home` for the duration of a run."""
    home.mkdir(parents=True, exist_ok=True)
    handle = open(home / LOCK_FILE, "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise RunLockedError(f"{home} is in use by a running pipeline ({holder}); wait for it to "
                             "finish or use another --home") from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"pid {os.getpid()}")
    handle.flush()
    try:
        yield
    finally:
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()


@contextlib.contextmanager
def output_to_log(log_path: Path) -> Iterator[TextIO]:
    """Sends fds 1/2 and Python logging to `log_path`; yields the terminal.

    Redirecting the file descriptors (not just sys.stdout) also captures
    TensorFlow's C++ logging and the Beam worker processes, which inherit them.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved_out, saved_err = os.dup(1), os.dup(2)
    terminal = os.fdopen(os.dup(1), "w")
    log_file = open(log_path, "a", buffering=1)
    os.dup2(log_file.fileno(), 1)
    os.dup2(log_file.fileno(), 2)
    file_handler = logging.StreamHandler(log_file)
    file_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    previous_level = root.level
    root.addHandler(file_handler)
    root.setLevel(logging.INFO)
    # Through absl's flag, not logger.setLevel: TF's SavedModel export saves and
    # restores the flag's verbosity, which would clobber a level set directly.
    previous_verbosity = absl_logging.get_verbosity()
    absl_logging.set_verbosity(absl_logging.INFO)
    try:
        yield terminal
    finally:
        root.removeHandler(file_handler)
        root.setLevel(previous_level)
        absl_logging.set_verbosity(previous_verbosity)
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved_out, 1)
        os.dup2(saved_err, 2)
        os.close(saved_out)
        os.close(saved_err)
        log_file.close()
        terminal.flush()


def machine_description() -> Dict[str, Any]:
    """The CPU model, core count and visible GPUs: results depend on them."""
    import tensorflow as tf

    from imdb_sentiment.trainer.devices import cpu_model_name

    return {"cpu": cpu_model_name(), "cores": os.cpu_count(),
            "gpus": [gpu.name for gpu in tf.config.list_physical_devices("GPU")]}


def build_run_record(reader: Any, config: PipelineConfig, *, started_ms: int, seconds: float,
                     error: Optional[BaseException], log_path: Path, running_node: Optional[str],
                     component_seconds: Dict[str, float],
                     component_ids: Sequence[str]) -> Dict[str, Any]:
    """The run record (`last_run.json`), from what MLMD (`reader`) says about this run.

    `running_node` is the component that was running when the run stopped: if
    MLMD has no execution for it, it failed before registering one.
    """
    from imdb_sentiment.reporting import run_summary

    components: List[Dict[str, Any]] = []
    for node_id in component_ids:
        state = run_summary.execution_state(reader, node_id, started_ms)
        if state is None and node_id == running_node:
            state = "failed"
        components.append({"component": node_id, "status": state or "not run",
                           "seconds": component_seconds.get(node_id)})
    record: Dict[str, Any] = {
        "profile": config.profile,
        "started_ms": started_ms,  # MLMD executions of this run were created after it
        "succeeded": error is None,
        "error": None if error is None else f"{type(error).__name__}: {error}",
        "seconds": round(seconds, 1),
        "log_file": str(log_path),
        "components": components,
    }
    try:
        record.update(run_summary.model_summary(reader, started_ms))
    except Exception as summary_error:  # noqa: BLE001 - never lose the record
        logging.error("Could not summarise the run: %s", traceback.format_exc())
        record["summary_error"] = str(summary_error)
    record["config"] = json.loads(config.to_json())
    record["code"] = package_fingerprint()
    record["machine"] = machine_description()
    return record


def prepared_config(config: PipelineConfig, home: Path, selection: Any) -> PipelineConfig:
    """The config a local run uses: locations under `home`, `test_split` resolved."""
    return resolve_test_split(configure_for_home(config, home),
                              [span.uri for span in selection.spans])


def unchanged_since_last_run(last_run: Path, selection: Any, config: PipelineConfig) -> Optional[int]:
    """The newest span of the last run when nothing has changed since it
    (same spans, same data fingerprint, same configuration, same code), else None.
    `config` is the prepared one (`prepared_config`), as the record holds it.

    Only for data given as spans: a scheduled run on a `{SPAN}` pattern that
    finds no new span has nothing to do. A failed last run does not count.
    """
    if not selection.has_spans or not last_run.exists():
        return None
    try:
        record = json.loads(last_run.read_text())
    except (OSError, ValueError):
        return None
    ingestion = record.get("ingestion") or {}
    same = (record.get("succeeded")
            and [span["number"] for span in ingestion.get("spans") or []] == selection.numbers
            and ingestion.get("data_fingerprint") == selection.fingerprint
            and record.get("config") == json.loads(config.to_json())
            and record.get("code") == package_fingerprint())
    return selection.newest if same else None


def package_fingerprint() -> str:
    """A hash of the source of every package a local run executes (the DAG and its
    config, the components, the trainer, this runner): a code change is a change."""
    from imdb_sentiment import components, local, pipeline, trainer
    from imdb_sentiment.pipeline.config import source_fingerprint

    return source_fingerprint(*(Path(package.__file__).parent
                                for package in (pipeline, components, trainer, local)))


def run_pipeline(config: PipelineConfig, home: Path, terminal: TextIO,
                 log_path: Path, stop: Optional[threading.Event] = None,
                 selection: Any = None) -> Dict[str, Any]:
    """Runs the pipeline and returns the run record (also written to last_run.json).

    The record is written even when a component fails; the exception is then
    re-raised for the CLI to report. Once `stop` is set, no further component
    starts (`ComponentProgress`).
    """
    # Imported here so that `imdb-pipeline --help` stays fast.
    from tfx.orchestration.local.local_dag_runner import LocalDagRunner
    from tfx.orchestration.metadata import sqlite_metadata_connection_config

    from imdb_sentiment.components.serving_layout import newest_version
    from imdb_sentiment.reporting import run_summary
    from imdb_sentiment.pipeline.pipeline import component_ids, create_pipeline

    layout = HomeLayout(home)
    from imdb_sentiment.components.spans import select_spans

    selection = selection or select_spans(config.data, config.ingestion.span_window)
    config = prepared_config(config, home, selection)
    connection = sqlite_metadata_connection_config(str(layout.metadata_path))
    served = newest_version(config.model_serving_dir)
    pipeline = create_pipeline(
        config, data_fingerprint=selection.fingerprint,
        served_version=os.path.basename(served) if served else "",
        metadata_connection_config=connection,
        beam_pipeline_args=(config.beam_pipeline_args
                            or direct_beam_args(config.local_beam_workers)))
    ids = component_ids(pipeline)
    progress = ComponentProgress(terminal, total=len(ids), stop=stop)
    logging.getLogger().addHandler(progress)
    started_ms = int(time.time() * 1000)
    started = time.perf_counter()
    error: Optional[BaseException] = None
    try:
        LocalDagRunner().run(pipeline)
    except BaseException as exc:  # noqa: BLE001 - recorded, then re-raised
        error = exc
        logging.error("Pipeline failed:\n%s", traceback.format_exc())
    finally:
        logging.getLogger().removeHandler(progress)

    record = build_run_record(
        run_summary.MetadataReader(connection, config.pipeline_name), config,
        started_ms=started_ms, seconds=time.perf_counter() - started, error=error,
        log_path=log_path, running_node=progress.current, component_seconds=progress.seconds,
        component_ids=ids)
    atomic_write_text(layout.last_run, json.dumps(record, indent=2))
    if error is not None:
        raise error
    return record
