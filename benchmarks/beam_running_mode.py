"""Beam's DirectRunner in one process or in worker processes, on a smoke run.

Runs `imdb-pipeline run --profile smoke` on the real archive, alternating the
two running modes (`direct_beam_args(1)` in memory, `direct_beam_args(2)`
two worker processes), each in a fresh home with the cache off, and reports
the median seconds of each Beam component (StatisticsGen, Transform,
Evaluator) and of the whole run, with their ratio.

    python benchmarks/beam_running_mode.py --repeats 2
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import DEFAULT_DATA, table, write_result

from imdb_sentiment.local.runner import direct_beam_args

BEAM_COMPONENTS = ("StatisticsGen", "Transform", "Evaluator")
MODES = {"in_memory": 1, "multi_processing": 2}


def one_run(data: Path, workers: int) -> dict:
    with tempfile.TemporaryDirectory() as home:
        command = [sys.executable, "-m", "imdb_sentiment.cli", "run", "--profile", "smoke",
                   "--data", str(data), "--home", home, "--no-cache",
                   *[f"--beam-arg={arg}" for arg in direct_beam_args(workers)]]
        start = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        wall = time.perf_counter() - start
        record = json.loads((Path(home) / "last_run.json").read_text())
    seconds = {c["component"]: c["seconds"] for c in record["components"]}
    return {"run": wall, **{name: seconds[name] for name in BEAM_COMPONENTS}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    runs = {mode: [] for mode in MODES}
    for _ in range(args.repeats):
        for mode, workers in MODES.items():
            runs[mode].append(one_run(args.data, workers))
            print(mode, runs[mode][-1], flush=True)
    rows = []
    for column in ("run", *BEAM_COMPONENTS):
        medians = {mode: statistics.median(r[column] for r in runs[mode]) for mode in MODES}
        rows.append({"seconds (median)": column, **{m: round(v, 1) for m, v in medians.items()},
                     "in_memory / multi_processing": round(
                         medians["in_memory"] / medians["multi_processing"], 2)})
    print(table(rows, list(rows[0])))
    write_result("beam_running_mode", {"repeats": args.repeats, "runs": runs, "medians": rows})


if __name__ == "__main__":
    main()
