"""The compiled spec and the entrypoint against open-source Kubeflow Pipelines' own rules.

The rules and the driver/launcher behaviour are encoded in `kfp_backend.py`
from kubeflow/pipelines' backend source at release 2.17.0 (each function cites
its file). What is proven here: the API server would accept the upload, the
Argo compiler would compile it, the driver could resolve every input, and
every step of the pipeline runs through `kubeflow/entrypoint.py` on the
executor input the driver builds, with the launcher's download and upload
simulated file by file over a local bucket. What is not: a real cluster,
Argo, ML Metadata, object-store credentials and TF Serving.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

import kfp_backend
from conftest import REPO_ROOT, make_members, write_archive

from imdb_sentiment.kubeflow import entrypoint, runner

ROOT = "gs://bucket/tfx"
TARGET = ["--image", "registry.example.com/imdb-sentiment:1.0", "--pipeline-root", ROOT,
          "--data", "gs://bucket/aclImdb_v1.tar.gz", "--serving-dir", "gs://bucket/serving"]


def compile_spec(tmp_path: Path, profile: str = "full", suffix: str = ".yaml", *settings: str) -> dict:
    path = tmp_path / f"pipeline-{profile}{suffix}"
    sets = [arg for setting in settings for arg in ("--set", setting)]
    assert runner.main(["compile", "--profile", profile, "--output", str(path), *TARGET, *sets]) == 0
    if suffix == ".json":
        return json.loads(path.read_text())
    return list(yaml.safe_load_all(path.read_text()))[0]


@pytest.fixture(scope="module")
def spec(tmp_path_factory):
    return compile_spec(tmp_path_factory.mktemp("kfp"))


def test_the_api_server_accepts_the_upload(spec):
    assert kfp_backend.upload_violations(spec) == []
    assert spec["schemaVersion"] == "2.1.0"


def test_the_argo_compiler_compiles_it(spec):
    assert kfp_backend.compiler_violations(spec) == []


def test_the_driver_resolves_every_parameter_and_parameters_are_typed(spec):
    assert kfp_backend.driver_violations(spec) == []
    for component in spec["components"].values():
        for definition in (component.get("inputDefinitions", {}).get("parameters") or {}).values():
            assert definition.get("parameterType"), component


def test_the_pipeline_root_travels_with_the_spec(spec):
    assert spec["defaultPipelineRoot"] == ROOT


def test_steps_that_depend_on_storage_or_the_serving_directory_are_never_cached(spec):
    tasks = spec["root"]["dag"]["tasks"]
    for name in ("SpanResolver", "ServedModelGate", "Pusher"):
        assert tasks[name]["cachingOptions"] == {"enableCache": False}
    assert tasks["Trainer"]["cachingOptions"]["enableCache"] is True


def test_the_rules_refuse_what_the_backend_refuses(tmp_path, monkeypatch):
    """The checks fail on the spec main compiled before this change: schema
    2.0.0 with `constantValue` parameters, and a resolver task."""
    from tfx import v1 as tfx

    original = tfx.orchestration.experimental.KubeflowV2DagRunnerConfig

    def schema_2_0(**kwargs):
        return original(**{**kwargs, "use_pipeline_spec_2_1": False})

    monkeypatch.setattr(tfx.orchestration.experimental, "KubeflowV2DagRunnerConfig", schema_2_0)
    old = compile_spec(tmp_path)
    assert any("schema version 2.1.0" in p for p in kfp_backend.upload_violations(old))
    assert any("without `constant`" in p for p in kfp_backend.driver_violations(old))
    with_resolver = json.loads(json.dumps(old))
    with_resolver["deploymentSpec"]["executors"]["Trainer_executor"] = {
        "resolver": {"outputArtifactQueries": {}}}
    assert kfp_backend.compiler_violations(with_resolver) == [
        "Trainer: resolver executors not implemented"]


def test_open_source_steps_use_the_launcher_local_paths_and_vertex_steps_do_not(spec, tmp_path):
    for executor in spec["deploymentSpec"]["executors"].values():
        args = executor["container"]["args"]
        assert args[0] == entrypoint.LOCAL_PATHS_FLAG
        assert args.count("--json_serialized_inputs_spec_args") == 1  # TFX passes it once
    vertex = compile_spec(tmp_path, suffix=".json")["pipelineSpec"]
    for executor in vertex["deploymentSpec"]["executors"].values():
        assert entrypoint.LOCAL_PATHS_FLAG not in executor["container"]["args"]


def test_accelerators_are_named_per_backend(spec, tmp_path):
    resources = spec["deploymentSpec"]["executors"]["Trainer_executor"]["container"]["resources"]
    assert resources["accelerator"] == {"type": "nvidia.com/gpu", "count": "1"}
    vertex = compile_spec(tmp_path, suffix=".json")["pipelineSpec"]
    accelerator = vertex["deploymentSpec"]["executors"]["Trainer_executor"]["container"][
        "resources"]["accelerator"]
    assert accelerator["type"] == "NVIDIA_TESLA_T4" and accelerator["type"] in runner.VERTEX_ACCELERATORS
    bad = tmp_path / "bad.json"
    assert runner.main(["compile", "--output", str(bad), *TARGET, "--vertex-accelerator",
                        "nvidia.com/gpu"]) == 2
    assert not bad.exists()


# --------------------------------------------------------------------------
# Every step, as the driver and launcher would run it.
# --------------------------------------------------------------------------
def _topological(tasks: dict) -> list:
    done, order = set(), []
    while len(order) < len(tasks):
        for name, task in sorted(tasks.items()):
            if name not in done and set(task.get("dependentTasks", [])) <= done:
                done.add(name)
                order.append(name)
    return order


def _set_constant(spec: dict, task: str, parameter: str, value) -> None:
    spec["root"]["dag"]["tasks"][task]["inputs"]["parameters"][parameter]["runtimeValue"][
        "constant"] = value


def test_without_distillation_the_spec_has_no_teacher_and_still_passes_the_rules(tmp_path):
    """The smoke profile does not distil: no TeacherLabels task, no soft labels
    into the Trainer, and the spec is still one the backend accepts. (The
    entrypoint run below distils, so it goes through every step of both.)"""
    spec = compile_spec(tmp_path, "smoke", ".yaml")
    tasks = spec["root"]["dag"]["tasks"]
    assert len(tasks) == 13 and "TeacherLabels" not in tasks
    assert "soft_labels" not in tasks["Trainer"]["inputs"].get("artifacts", {})
    assert (kfp_backend.upload_violations(spec), kfp_backend.compiler_violations(spec),
            kfp_backend.driver_violations(spec)) == ([], [], [])


@pytest.mark.slow
def test_every_step_runs_through_the_entrypoint_on_what_the_driver_sends(tmp_path, monkeypatch):
    """The smoke profile with distillation, step by step: each in a fresh 'pod'
    whose /gcs is a local directory, inputs downloaded from and outputs uploaded
    to a local bucket file by file, as launcher_v2.go does. Distilling adds
    TeacherLabels and the Trainer's extra input, on an archive with unlabelled
    reviews, so every step of the pipeline without it runs here too."""
    spec = compile_spec(tmp_path, "smoke", ".yaml", "trainer.distill_epochs=1", "trainer.epochs=2")
    members = make_members(count=60, reviews_per_movie=1)
    for i in range(60):
        members[f"aclImdb/train/unsup/{i}_0.txt"] = f"an unlabelled review {i}".encode()
    archive = write_archive(tmp_path / "aclImdb.tar.gz", members)
    serving = tmp_path / "serving"
    # Locations outside the pipeline root are read by TensorFlow itself on a
    # cluster (gs://); here local directories stand in for them.
    _set_constant(spec, "SpanResolver", "data", str(archive))
    _set_constant(spec, "ImdbExampleGen", "data", str(archive))
    _set_constant(spec, "ImdbExampleGen", "sample_percent", 100)  # the fixture is small already
    _set_constant(spec, "SchemaGen", "schema_file", str(REPO_ROOT / "pipeline" / "schema" /
                                                         "schema.pbtxt"))
    _set_constant(spec, "ServedModelGate", "serving_dir", str(serving / "imdb_sentiment"))
    # Six fixture sentences are no IMDB text: the text checks would (rightly) stop the run.
    _set_constant(spec, "DataGate", "reference_profile", "")
    _set_constant(spec, "DataGate", "limits", json.dumps(
        {"max_empty_fraction": 1.0, "max_length_drift": 1.0, "max_vocabulary_drift": 1.0}))
    destination = json.loads(spec["root"]["dag"]["tasks"]["Pusher"]["inputs"]["parameters"][
        "push_destination"]["runtimeValue"]["constant"])
    destination["filesystem"]["base_directory"] = str(serving / "imdb_sentiment")
    _set_constant(spec, "Pusher", "push_destination", json.dumps(destination))

    bucket = kfp_backend.Bucket(tmp_path / "bucket")
    pod = tmp_path / "pod"
    monkeypatch.setenv(entrypoint.LOCAL_ROOT_ENV, str(pod))
    published: dict = {}
    parameters: dict = {}
    order = _topological(spec["root"]["dag"]["tasks"])
    assert order.index("SpanResolver") < order.index("ImdbExampleGen") and order[-1] == "Pusher"
    assert len(order) == 14 and "TeacherLabels" in order
    for task in order:
        kfp_backend.run_step(spec, task, ROOT, bucket, pod, published, entrypoint.main, parameters)
    selection = json.loads(parameters["SpanResolver"]["selection"])
    assert selection["spans"] == [{"number": 0, "uri": str(archive), "version": None}]

    # ML Metadata keeps remote URIs, never the pod's local paths, in URIs and in properties.
    for outputs in published.values():
        for artifact in outputs.values():
            assert artifact["reported_uri"] in (None, artifact["uri"]), artifact
            assert str(pod) not in json.dumps(artifact["metadata"]), artifact
    assert published["ServedModelGate"]["blessing"]["metadata"]["current_model"].startswith(
        "gs://bucket/tfx/Trainer/")
    # No zero-byte "directory" objects: the next step's download never breaks.
    assert not [k for k in bucket.keys("") if k.endswith("/")]
    model_files = bucket.keys(kfp_backend.blob_key(published["Trainer"]["model"]["uri"]))
    assert any(k.endswith("Format-Serving/saved_model.pb") for k in model_files)
    assert published["Evaluator"]["blessing"]["metadata"].get("blessed") == 1
    assert published["ServedModelGate"]["blessing"]["metadata"].get("blessed") == 1
    versions = [p for p in (serving / "imdb_sentiment").iterdir() if p.name.isdigit()]
    assert len(versions) == 1 and (versions[0] / "saved_model.pb").exists()
    # The lineage inside the pushed model names the KFP run the driver resolved.
    lineage_text = (versions[0] / "assets.extra" / "lineage.json").read_text()
    lineage = json.loads(lineage_text)
    assert lineage["run"]["pipeline_run_id"] == kfp_backend.RUN_PLACEHOLDERS[runner.KFP_RUN_ID]
    assert str(pod) not in lineage_text  # no pod path in what the model carries
    assert published["Pusher"]["pushed_model"]["metadata"].get("pushed") == 1
    # The teacher labelled the unsup split, and the Trainer read it.
    report = json.loads(published["TeacherLabels"]["soft_labels"]["metadata"]["teacher_report"])
    assert report["unlabelled_reviews"] > 0
    assert bucket.keys(kfp_backend.blob_key(published["TeacherLabels"]["soft_labels"]["uri"]))


def test_a_zero_byte_directory_marker_breaks_the_launcher_download(tmp_path):
    """Why the entrypoint never lets TensorFlow write to the object store:
    its GCS file system leaves `dir/` markers, and DownloadBlob makes them files."""
    bucket = kfp_backend.Bucket(tmp_path / "bucket")
    bucket.put("tfx/Trainer/1/model/Format-Serving/", b"")
    bucket.put("tfx/Trainer/1/model/Format-Serving/saved_model.pb", b"graph")
    with pytest.raises(NotADirectoryError):
        kfp_backend.download(bucket, tmp_path / "pod" / "model", "tfx/Trainer/1/model")
    clean = kfp_backend.Bucket(tmp_path / "clean")
    clean.put("tfx/Trainer/1/model/Format-Serving/saved_model.pb", b"graph")
    kfp_backend.download(clean, tmp_path / "pod2" / "model", "tfx/Trainer/1/model")
    assert (tmp_path / "pod2" / "model" / "Format-Serving" / "saved_model.pb").read_bytes() == b"graph"


def test_entrypoint_refuses_an_untyped_input_it_cannot_type():
    request = {"inputs": {"artifacts": {"mystery": {"artifacts": [
        {"uri": "gs://b/x", "type": {"instanceSchema": ""}}]}}}, "outputs": {"artifacts": {}}}
    with pytest.raises(ValueError, match="input mystery: .* not a TFX type"):
        entrypoint.repair_executor_input(request, {"artifacts": {}}, local_paths=True)


def test_local_paths_follow_the_launcher():
    assert entrypoint.local_path("gs://b/tfx/x", "/") == "/gcs/b/tfx/x"
    assert entrypoint.local_path("minio://mlpipeline/v2/x", "/") == "/minio/mlpipeline/v2/x"
    assert entrypoint.local_path("s3://b/x", "/r") == "/r/s3/b/x"
    assert entrypoint.local_path("/already/local", "/") == "/already/local"


# --------------------------------------------------------------------------
# New data on Kubeflow: the cache keys, computed as KFP computes them.
# --------------------------------------------------------------------------
def test_the_span_producer_is_named_by_its_task_and_feeds_example_gen_by_value(spec):
    tasks = spec["root"]["dag"]["tasks"]
    source = tasks["ImdbExampleGen"]["inputs"]["parameters"]["selection"]["taskOutputParameter"]
    assert source == {"producerTask": "SpanResolver", "outputParameterKey": "selection"}
    assert "SpanResolver" in tasks["ImdbExampleGen"]["dependentTasks"]
    assert not tasks["ImdbExampleGen"]["inputs"].get("artifacts")  # nothing keyed by artifact id
    # TFX 1.16 alone writes "SpanResolver_task", which the driver cannot find.
    broken = json.loads(json.dumps(spec))
    broken["root"]["dag"]["tasks"]["ImdbExampleGen"]["inputs"]["parameters"]["selection"][
        "taskOutputParameter"]["producerTask"] = "SpanResolver_task"
    assert kfp_backend.driver_violations(broken) == [
        "ImdbExampleGen.selection: producer task, SpanResolver_task, not in tasks"]


@pytest.mark.slow
def test_cache_keys_follow_the_spans_new_data_misses_and_unchanged_data_hits(tmp_path, monkeypatch):
    """Three scheduled runs on `imdb-{SPAN}.tar.gz`: span 1 alone, span 1 again
    (nothing new), then span 2 added. SpanResolver runs every time (uncached)
    through the entrypoint; ImdbExampleGen's and StatisticsGen's cache
    fingerprints are computed from what the driver would send them."""
    spec = compile_spec(tmp_path, "smoke", ".yaml")
    data = tmp_path / "data"
    data.mkdir()
    _set_constant(spec, "SpanResolver", "data", str(data / "imdb-{SPAN}.tar.gz"))
    monkeypatch.setenv(entrypoint.LOCAL_ROOT_ENV, str(tmp_path / "pod"))
    bucket = kfp_backend.Bucket(tmp_path / "bucket")

    def fingerprints(run: int) -> dict:
        published, parameters = {}, {}
        kfp_backend.run_step(spec, "SpanResolver", ROOT, bucket, tmp_path / "pod", published,
                             entrypoint.main, parameters)
        example_gen = kfp_backend.executor_input(spec, "ImdbExampleGen", ROOT, published,
                                                 "/tmp/out.json", parameters)
        key = kfp_backend.cache_fingerprint(spec, "ImdbExampleGen", example_gen)
        # On a hit the driver hands on the cached execution's artifacts
        # (driver/cache.go `reuseCachedOutputs`): same key, same artifact names.
        produced[key] = produced.get(key, f"artifacts/{len(produced) + 1}")
        published["ImdbExampleGen"] = {"examples": {"name": produced[key],
                                                    "uri": f"{ROOT}/ImdbExampleGen/{run}/examples"}}
        statistics = kfp_backend.executor_input(spec, "StatisticsGen", ROOT, published,
                                                "/tmp/out.json", parameters)
        return {"ImdbExampleGen": key,
                "StatisticsGen": kfp_backend.cache_fingerprint(spec, "StatisticsGen", statistics),
                "spans": [s["number"] for s in json.loads(parameters["SpanResolver"]["selection"])[
                    "spans"]]}

    produced: dict = {}
    write_archive(data / "imdb-1.tar.gz", make_members(count=10))
    first = fingerprints(1)
    again = fingerprints(2)
    write_archive(data / "imdb-2.tar.gz", make_members(count=12))
    newer = fingerprints(3)
    write_archive(data / "imdb-2.tar.gz", make_members(count=14))  # span 2 replaced in place
    replaced = fingerprints(4)
    assert first["spans"] == again["spans"] == [1] and newer["spans"] == replaced["spans"] == [2]
    assert replaced["ImdbExampleGen"] != newer["ImdbExampleGen"]
    assert again == first  # nothing new: every step is served from the cache
    assert newer["ImdbExampleGen"] != first["ImdbExampleGen"]
    assert newer["StatisticsGen"] != first["StatisticsGen"]  # and so is everything after it
