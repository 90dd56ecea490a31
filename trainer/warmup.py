"""TF Serving warm-up requests, written into every exported model.

TF Serving replays `assets.extra/tf_serving_warmup_requests` when it loads a
version, before the version takes traffic, so the first real request after a
rollout does not pay for initialising tables and kernels. The format is TF
Serving's own (tensorflow/serving, `servables/tensorflow/saved_model_warmup_util.{h,cc}`
and `saved_model_warmup.cc`): a TFRecord file of `PredictionLog` protos, at
most 1,000 records; Predict, Classify, Regress and MultiInference logs are
replayed, streamed and session-run logs are refused.

`replay` runs the records through a loaded SavedModel the way TF Serving's
Predict and Classify handlers feed signatures, so a test can check that every
record is accepted without a TF Serving binary.
"""

from __future__ import annotations

import os
from typing import Dict, List, Sequence

import tensorflow as tf
from tensorflow_serving.apis import (classification_pb2, input_pb2, model_pb2, predict_pb2,
                                     prediction_log_pb2)

from . import features

#: tensorflow_serving/servables/tensorflow/saved_model_warmup_util.h: kRequestsFileName.
WARMUP_FILE = "tf_serving_warmup_requests"
ASSETS_EXTRA = features.ASSETS_EXTRA
#: saved_model_warmup_util.h: kMaxNumRecords.
MAX_RECORDS = 1000

#: Requests of different lengths and batch sizes: a padded batch runs as long
#: as its longest review, so both short and long reviews are warmed up.
SAMPLE_REVIEWS = (
    "Wonderful.",
    "A dull, predictable plot and wooden acting. I checked my watch every ten minutes.",
    "I went in expecting little and came out moved. The lead performance is subtle, the "
    "script never talks down to its audience, and the final scene stayed with me for days. "
    * 12,
)


def _example(text: str) -> tf.train.Example:
    return tf.train.Example(features=tf.train.Features(feature={
        features.TEXT: tf.train.Feature(bytes_list=tf.train.BytesList(value=[text.encode()]))}))


def warmup_records(reviews: Sequence[str] = SAMPLE_REVIEWS) -> List[prediction_log_pb2.PredictionLog]:
    """One batch of each size (1 and all `reviews`) per public signature.

    The model name is left empty: TF Serving's warm-up runs the request on the
    version being loaded and does not read it.
    """
    batches = [list(reviews[:1]), list(reviews)]
    records = []
    for batch in batches:
        serialized = [_example(text).SerializeToString() for text in batch]
        for signature, key, values in (("serving_default", "examples", serialized),
                                       ("explain", "text", [t.encode() for t in batch])):
            request = predict_pb2.PredictRequest(
                model_spec=model_pb2.ModelSpec(signature_name=signature))
            request.inputs[key].CopyFrom(tf.make_tensor_proto(values, dtype=tf.string))
            records.append(prediction_log_pb2.PredictionLog(
                predict_log=prediction_log_pb2.PredictLog(request=request)))
        classify = classification_pb2.ClassificationRequest(
            model_spec=model_pb2.ModelSpec(signature_name="classify"),
            input=input_pb2.Input(example_list=input_pb2.ExampleList(
                examples=[_example(text) for text in batch])))
        records.append(prediction_log_pb2.PredictionLog(
            classify_log=prediction_log_pb2.ClassifyLog(request=classify)))
    return records


def write_warmup_requests(export_dir: str) -> str:
    """Writes `assets.extra/tf_serving_warmup_requests` into a SavedModel directory."""
    records = warmup_records()
    if len(records) > MAX_RECORDS:
        raise ValueError(f"TF Serving reads at most {MAX_RECORDS} warm-up records, not {len(records)}")
    directory = os.path.join(export_dir, ASSETS_EXTRA)
    tf.io.gfile.makedirs(directory)
    path = os.path.join(directory, WARMUP_FILE)
    with tf.io.TFRecordWriter(path) as writer:
        for record in records:
            writer.write(record.SerializeToString())
    return path


def read_warmup_requests(export_dir: str) -> List[prediction_log_pb2.PredictionLog]:
    """The records as TF Serving parses them (a parse failure raises)."""
    path = os.path.join(export_dir, ASSETS_EXTRA, WARMUP_FILE)
    records = []
    for raw in tf.data.TFRecordDataset(path).as_numpy_iterator():
        record = prediction_log_pb2.PredictionLog()
        record.ParseFromString(raw)
        records.append(record)
    return records


def replay(export_dir: str) -> Dict[str, int]:
    """Runs every record through the SavedModel's signatures; returns counts per signature.

    Predict: each named input tensor goes to the signature's input of that
    name. Classify: the examples are serialized into the signature's single
    string input (tensorflow_serving/servables/tensorflow/classifier.cc).
    """
    loaded = tf.saved_model.load(export_dir)
    counts: Dict[str, int] = {}
    for record in read_warmup_requests(export_dir):
        kind = record.WhichOneof("log_type")
        if kind == "predict_log":
            request = record.predict_log.request
            inputs = {key: tf.constant(tf.make_ndarray(proto)) for key, proto in request.inputs.items()}
        elif kind == "classify_log":
            request = record.classify_log.request
            examples = [e.SerializeToString() for e in request.input.example_list.examples]
            signature = loaded.signatures[request.model_spec.signature_name or "serving_default"]
            (key,) = signature.structured_input_signature[1]
            inputs = {key: tf.constant(examples)}
        else:
            raise ValueError(f"TF Serving does not replay {kind} warm-up records")
        name = request.model_spec.signature_name or "serving_default"
        outputs = loaded.signatures[name](**inputs)
        if not outputs:
            raise ValueError(f"signature {name} returned nothing")
        counts[name] = counts.get(name, 0) + 1
    return counts
