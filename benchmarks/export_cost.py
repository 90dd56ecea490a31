"""What exporting the serving model costs, phase by phase, with and without Keras' layer traces.

Loads the trained weights and the Transform graph of a finished run, then
exports the serving model as the Trainer does, alternating
`keras_traces=True` (Keras also traces every layer's call functions into
the SavedModel, so it can be revived without the code) and `False` (layer
configs only, what the Trainer writes; the signatures are the same).
Prints the median seconds of each phase, then of loading the
export as TFMA's `tf_generic` loader and `imdb-pipeline predict` do, and
checks both exports give the same probabilities.

  python benchmarks/export_cost.py --home pipeline_home --rounds 3
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional

import common  # noqa: F401  (sets TF env before TensorFlow loads)
import numpy as np
import tensorflow as tf
import tf_keras as keras

from export_variants import load_trained_run
from imdb_sentiment.reporting import serving_client
from imdb_sentiment.pipeline.config import profile_config
from imdb_sentiment.trainer import signatures
from imdb_sentiment.trainer.warmup import write_warmup_requests

SAMPLE = ["A moving, brilliant film with a superb cast.", "Dull, long and badly acted.",
          "I expected more, but the ending made up for it."]


def timed_export(trained: keras.Model, tft_output, hparams, vocabulary_size: int,
                 export_dir: str, keras_traces: bool) -> Dict[str, float]:
    """`signatures.export_serving_model`, one phase at a time."""
    seconds: Dict[str, float] = {}
    start = time.perf_counter()
    model = signatures.float32_twin(trained, hparams, vocabulary_size)
    seconds["twin"] = time.perf_counter() - start
    start = time.perf_counter()
    concrete = signatures.build_signatures(model, tft_output, hparams)
    seconds["trace signatures"] = time.perf_counter() - start
    start = time.perf_counter()
    model.save(export_dir, save_format="tf", signatures=concrete, include_optimizer=False,
               save_traces=keras_traces)
    seconds["save"] = time.perf_counter() - start
    start = time.perf_counter()
    signatures.finalize_saved_model(export_dir)
    write_warmup_requests(export_dir)
    seconds["finalize + warm-up"] = time.perf_counter() - start
    seconds["total"] = sum(seconds.values())
    return seconds


def main(argv: Optional[List[str]] = None) -> int:
    parser = common.finished_run_parser(__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)

    hparams = profile_config(args.profile).trainer
    trained, tft_output, vocabulary_size = load_trained_run(args.home, args.profile)
    sample = serving_client.serialize_reviews(SAMPLE)

    runs: Dict[bool, List[Dict[str, float]]] = {True: [], False: []}
    probabilities: Dict[bool, np.ndarray] = {}
    with tempfile.TemporaryDirectory() as scratch:
        for round_index in range(args.rounds):
            for keras_traces in (True, False) if round_index % 2 == 0 else (False, True):
                export_dir = str(Path(scratch) / f"{keras_traces}-{round_index}" / "1")
                runs[keras_traces].append(timed_export(trained, tft_output, hparams,
                                                       vocabulary_size, export_dir, keras_traces))
                print(f"  keras_traces={keras_traces}: {runs[keras_traces][-1]}", flush=True)
                start = time.perf_counter()
                loaded = tf.saved_model.load(export_dir)
                runs[keras_traces][-1]["load (tf.saved_model.load)"] = time.perf_counter() - start
                probabilities[keras_traces] = loaded.signatures[signatures.SERVING_SIGNATURE](
                    examples=sample)["probability"].numpy()
                if not keras_traces:  # the configs alone must revive the Keras model
                    keras.models.load_model(export_dir, compile=False)
    phases = list(runs[True][0])
    rows = [{"phase": phase,
             **{f"traces {'on' if on else 'off'} (median s)":
                round(statistics.median(r[phase] for r in runs[on]), 1) for on in (True, False)}}
            for phase in phases]
    print()
    print(common.table(rows, list(rows[0])))
    difference = float(np.max(np.abs(probabilities[True] - probabilities[False])))
    print(f"largest probability difference between the two exports: {difference:.1e}")
    path = common.write_result("export_cost", {"home": str(args.home), "rounds": args.rounds,
                                               "runs": {str(k): v for k, v in runs.items()},
                                               "max_probability_difference": difference})
    print(f"wrote {path}")
    return 0 if difference < 1e-6 else 1


if __name__ == "__main__":
    sys.exit(main())
