"""What the Evaluator costs with and without the test split, or TFMA's guessed model type, side by side.

Runs TFX's own Evaluator executor, with the pipeline's own EvalConfig, on the
artifacts a finished local run left in its home (the examples, the BiLSTM and
the linear baseline), once per variant and repeat, alternating. Each run
writes to a fresh temporary directory; the home is only read.

  python benchmarks/evaluator_cost.py --home <a finished run's home> --repeats 2

Variants: `off` evaluates eval and report; `on` adds the archive's test split
(the home's archive must have one). A variant ending in `:auto` leaves the
models' `model_type` unset, as the pipeline did before commit cec6e87: TFMA
then loads each model once more to guess its type, and revives a Keras
SavedModel with Keras (only an export with Keras' layer traces revives).
"""

from __future__ import annotations

import dataclasses
import statistics
import sys
import tempfile
import time
from typing import Dict, List, Optional

import common  # noqa: F401  (sets TF env before TensorFlow loads)

from imdb_sentiment.pipeline import pipeline as pipeline_lib
from imdb_sentiment.pipeline.config import profile_config
from imdb_sentiment.local.runner import direct_beam_args
from imdb_sentiment.reporting.run_report import RunOutputs


def run_evaluator(outputs: RunOutputs, variant: str, profile: str, beam_args: List[str]) -> float:
    """Seconds for one Evaluator execution, as the pipeline would configure it."""
    import json

    from tfx.components.evaluator import executor as evaluator_executor
    from tfx.dsl.components.base import base_beam_executor
    from tfx.types import artifact_utils, standard_artifacts
    from tfx.utils import proto_utils

    test_split, _, model_type = variant.partition(":")
    base = profile_config(profile)
    config = base.replace(evaluation=dataclasses.replace(base.evaluation, test_split=test_split))
    splits = list(pipeline_lib.evaluated_splits(config))
    examples = standard_artifacts.Examples()
    examples.uri = outputs.uri("ImdbExampleGen", "examples")
    examples.split_names = artifact_utils.encode_split_names(["train", "eval", "report", "test"])
    model, baseline = standard_artifacts.Model(), standard_artifacts.Model()
    model.uri = outputs.uri("Trainer", "model")
    baseline.uri = outputs.uri("BaselineTrainer", "model")
    eval_config = pipeline_lib.eval_config(config)
    if model_type == "auto":
        for spec in eval_config.model_specs:
            spec.ClearField("model_type")
    with tempfile.TemporaryDirectory() as scratch:
        evaluation, blessing = standard_artifacts.ModelEvaluation(), standard_artifacts.ModelBlessing()
        evaluation.uri, blessing.uri = f"{scratch}/evaluation", f"{scratch}/blessing"
        context = base_beam_executor.BaseBeamExecutor.Context(
            beam_pipeline_args=list(beam_args), tmp_dir=f"{scratch}/tmp", unique_id="bench")
        started = time.perf_counter()
        evaluator_executor.Executor(context).Do(
            {"examples": [examples], "model": [model], "baseline_model": [baseline]},
            {"evaluation": [evaluation], "blessing": [blessing]},
            {"eval_config": proto_utils.proto_to_json(eval_config),
             "example_splits": json.dumps(splits)})
        return time.perf_counter() - started


def main(argv: Optional[List[str]] = None) -> int:
    parser = common.finished_run_parser(__doc__)
    parser.add_argument("--variants", default="off,on",
                        help="comma-separated: off, on, off:auto, on:auto")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args(argv)
    outputs = RunOutputs(args.home)
    missing = [n for n in ("ImdbExampleGen", "Trainer", "BaselineTrainer")
               if outputs.uri(n, "examples" if n == "ImdbExampleGen" else "model") is None]
    if missing:
        print(f"{args.home}: no artifacts of {', '.join(missing)}", file=sys.stderr)
        return 2
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    seconds: Dict[str, List[float]] = {v: [] for v in variants}
    beam_args = list(direct_beam_args(profile_config(args.profile).local_beam_workers))
    for repeat in range(args.repeats):
        for variant in variants:
            elapsed = run_evaluator(outputs, variant, args.profile, beam_args)
            seconds[variant].append(round(elapsed, 1))
            print(f"repeat {repeat + 1}, {variant}: {elapsed:.1f} s", flush=True)
    rows = [{"variant": v, "runs_s": seconds[v], "median_s": round(statistics.median(seconds[v]), 1)}
            for v in variants]
    print()
    print(common.table(rows, ["variant", "runs_s", "median_s"]))
    if {"on", "off"} <= set(variants):
        cost = statistics.median(seconds["on"]) - statistics.median(seconds["off"])
        print(f"\nthe test split costs the Evaluator {cost:.1f} s (difference of medians)")
    path = common.write_result("evaluator_cost", {"home": str(args.home), "rows": rows})
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
