"""Kubeflow side, tested up to its boundaries; no cluster is involved anywhere.

- The compiled spec is checked with KFP's own SDK loader.
- The container entrypoint runs a real TFX executor (StatisticsGen) on an
  executor-input JSON shaped like the open-source KFP v2 launcher's, in this
  process's environment instead of a pod.
- `schedule` talks HTTP to a fake KFP API server on 127.0.0.1 that records
  the requests: the real kfp.Client builds and sends them.
- The manifests are parsed as Kubernetes objects; Docker is not available
  here, so the image itself is not built.
"""

from __future__ import annotations

import datetime as dt
import getpass
import json
import os
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest
import yaml

import kfp_backend
from conftest import REPO_ROOT

KUBEFLOW_DIR = REPO_ROOT / "kubeflow"
TARGET_ARGS = ["--image", "registry.example.com/imdb-sentiment:1.0",
               "--pipeline-root", "gs://bucket/tfx", "--data", "gs://bucket/aclImdb_v1.tar.gz",
               "--serving-dir", "gs://bucket/serving"]


from imdb_sentiment.kubeflow import entrypoint, runner  # noqa: E402


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    out = tmp_path_factory.mktemp("kfp")
    yaml_path, json_path = out / "pipeline.yaml", out / "pipeline.json"
    assert runner.main(["compile", "--output", str(yaml_path), *TARGET_ARGS,
                        "--node-selector", "cloud.google.com/gke-accelerator=nvidia-tesla-t4",
                        "--toleration", "nvidia.com/gpu:NoSchedule"]) == 0
    assert runner.main(["compile", "--output", str(json_path), *TARGET_ARGS]) == 0
    return yaml_path, json_path


def test_kfp_sdk_loads_the_spec_with_every_component_and_edge(compiled):
    from kfp import components

    from imdb_sentiment.pipeline.config import profile_config
    from imdb_sentiment.pipeline.pipeline import component_ids, create_pipeline

    yaml_path, _ = compiled
    spec = components.load_component_from_file(str(yaml_path)).pipeline_spec
    tasks = spec.root.dag.tasks
    built = component_ids(create_pipeline(profile_config("full")))
    assert len(tasks) == len(built)
    for component in built:
        assert any(t == component or t.startswith(component + "-") for t in tasks), component
    edges = {name: set(task.dependent_tasks) for name, task in tasks.items()}
    assert edges["SpanResolver"] == set()
    assert edges["ImdbExampleGen"] == {"SpanResolver"}  # by parameter value, not artifact
    assert edges["StatisticsGen"] == {"ImdbExampleGen"}
    assert edges["DataGate"] == {"ImdbExampleGen", "ExampleValidator", "StatisticsGen",
                                 "SchemaGen"}
    # Gated by an artifact: what trains reads the schema DataGate passed, not SchemaGen's.
    assert edges["Transform"] == {"ImdbExampleGen", "DataGate"}
    assert edges["TeacherLabels"] == {"ImdbExampleGen", "Transform"}  # distils by default
    assert edges["Trainer"] == {"Transform", "DataGate", "TeacherLabels"}
    assert edges["BaselineTrainer"] == {"Transform", "DataGate"}
    assert edges["Evaluator"] == {"ImdbExampleGen", "Trainer", "BaselineTrainer"}
    assert edges["ServedModelGate"] == {"ImdbExampleGen", "Trainer", "Evaluator"}
    assert edges["ModelCardGenerator"] == {"ImdbExampleGen", "Trainer", "Evaluator",
                                           "ServedModelGate"}
    assert edges["Pusher"] == {"ServedModelGate", "Trainer", "ModelCardGenerator"}


def test_image_gpu_and_env_are_where_they_belong(compiled):
    yaml_path, json_path = compiled
    documents = list(yaml.safe_load_all(yaml_path.read_text()))
    executors = documents[0]["deploymentSpec"]["executors"]
    containers = {label: e["container"] for label, e in executors.items() if "container" in e}
    from imdb_sentiment.pipeline.config import profile_config
    from imdb_sentiment.pipeline.pipeline import component_ids, create_pipeline

    # One container per component of the built pipeline; no resolver (open-source KFP runs none).
    assert len(containers) == len(component_ids(create_pipeline(profile_config("full"))))
    for label, container in containers.items():
        assert container["image"] == "registry.example.com/imdb-sentiment:1.0"
        assert container["command"] == runner.ENTRYPOINT
        accelerator = container.get("resources", {}).get("accelerator")
        env = {e["name"]: e["value"] for e in container.get("env", [])}
        if label == "Trainer_executor":
            assert accelerator == {"type": "nvidia.com/gpu", "count": "1"}
            assert container["resources"]["cpuLimit"] == 4.0
            assert "CUDA_VISIBLE_DEVICES" not in env
        else:
            assert accelerator is None, label
            assert env["CUDA_VISIBLE_DEVICES"] == "-1", label
        assert "--json_serialized_inputs_spec_args" in container["args"]
    trainer_platform = documents[1]["platforms"]["kubernetes"]["deploymentSpec"]["executors"][
        "Trainer_executor"]
    assert trainer_platform["nodeSelector"]["labels"] == {
        "cloud.google.com/gke-accelerator": "nvidia-tesla-t4"}
    assert trainer_platform["tolerations"] == [
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    job = json.loads(json_path.read_text())
    assert job["pipelineSpec"]["deploymentSpec"]["executors"]["Trainer_executor"]["container"][
        "resources"]["accelerator"]["count"] == "1"
    assert job["runtimeConfig"]["gcsOutputDirectory"] == "gs://bucket/tfx"


def test_no_local_path_user_or_secret_leaks_into_the_spec(compiled):
    for path in compiled:
        text = path.read_text()
        for local in {str(REPO_ROOT), str(Path.home()), os.getcwd(), "site-packages",
                      f"/home/{getpass.getuser()}"}:
            assert local not in text, local
        assert not re.search(r"(token|password|secret)[\"']?\s*[:=]\s*[\"']?\w{8,}", text, re.I)
        assert "/opt/imdb-sentiment/pipeline/schema" in text  # the image's copy of the schema
        assert "text_profile.json" not in text  # the reference profile goes in by content...
        assert "median_words" in text  # ...which is here


def test_compile_refuses_local_locations(tmp_path):
    args = ["compile", "--output", str(tmp_path / "p.yaml"), "--image", "i:1",
            "--pipeline-root", str(tmp_path), "--serving-dir", "gs://b/s"]
    assert runner.main(args) == 2
    assert not (tmp_path / "p.yaml").exists()


@pytest.mark.parametrize("flag,value,accepted", [
    ("--data", "s3://bucket/imdb.tar.gz", False),          # no s3 file system in the image
    ("--data", "gs://bucket/imdb-{SPAN}.tar.gz", True),
    ("--data", "https://example.com/aclImdb_v1.tar.gz", True),
    ("--serving-dir", "s3://bucket/serving", False),
    ("--serving-dir", "minio://bucket/serving", False),
    ("--pipeline-root", "s3://bucket/tfx", True),           # the launcher moves artifacts
    ("--pipeline-root", "minio://bucket/tfx", True),
    ("--pipeline-root", "azure://bucket/tfx", False),
])
def test_only_schemes_the_image_or_the_launcher_can_use_are_accepted(tmp_path, capsys, flag, value,
                                                                    accepted):
    """The image reads GCS alone through TensorFlow (tensorflow-io-gcs-filesystem in
    constraints.txt; no tensorflow-io), while the launcher moves artifacts from gs://,
    s3:// and minio:// (launcher_v2.go `LocalPathForURI`, KFP 2.17.0)."""
    constraints = (REPO_ROOT / "constraints.txt").read_text()
    assert "tensorflow-io-gcs-filesystem==" in constraints
    assert not re.search(r"^tensorflow-io==", constraints, re.MULTILINE)
    args = dict(zip(TARGET_ARGS[::2], TARGET_ARGS[1::2]), **{flag: value})
    code = runner.main(["compile", "--output", str(tmp_path / "p.yaml"),
                        *[item for pair in args.items() for item in pair]])
    assert (code == 0) is accepted, capsys.readouterr()
    if not accepted:
        assert "must start with" in capsys.readouterr().err


@pytest.mark.parametrize("given,expected", [
    ("0 2 * * *", "0 0 2 * * *"),
    ("*/15 * * * *", "0 */15 * * * *"),
    ("0 0 2 * * *", "0 0 2 * * *"),
    ("30 6 * * 1-5", "0 30 6 * * 1-5"),
])
def test_cron_five_fields_become_kfp_six(given, expected):
    assert runner.to_kfp_cron(given) == expected


@pytest.mark.parametrize("bad", ["0 2 * *", "61 * * * *", "0 24 * * *", "* * * 13 *", "a b c d e",
                                 "0 5-2 * * *", "0 */0 * * *", "1 2 3 4 5 6 7"])
def test_malformed_cron_is_rejected(bad):
    with pytest.raises(ValueError):
        runner.to_kfp_cron(bad)


def test_next_runs_of_a_daily_and_a_weekday_schedule():
    start = dt.datetime(2026, 11, 20, 12, 0, 0)  # a Friday
    assert runner.next_runs("0 0 2 * * *", start) == [
        dt.datetime(2026, 11, 21, 2), dt.datetime(2026, 11, 22, 2), dt.datetime(2026, 11, 23, 2)]
    assert runner.next_runs("0 30 6 * * 1-5", start) == [
        dt.datetime(2026, 11, 23, 6, 30), dt.datetime(2026, 11, 24, 6, 30),
        dt.datetime(2026, 11, 25, 6, 30)]


# --------------------------------------------------------------------------
# A fake KFP API server: records every request, answers like KFP v2beta1.
# --------------------------------------------------------------------------
def _filter_name(query) -> str:
    predicate = json.loads(query["filter"][0])["predicates"][0]
    return predicate.get("string_value") or predicate["stringValue"]


class FakeKfp(BaseHTTPRequestHandler):
    state: dict = {}

    def log_message(self, *args):  # keep test output clean
        pass

    def _reply(self, payload, status=200):
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _record(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        url = urlparse(self.path)
        self.state["requests"].append((self.command, url.path, parse_qs(url.query), body))
        return url, body

    def do_GET(self):
        url, _ = self._record()
        query = parse_qs(url.query)
        if url.path.endswith("/healthz"):
            return self._reply({"multi_user": False})
        if url.path == "/apis/v2beta1/pipelines":
            name = _filter_name(query)
            found = [p for p in self.state["pipelines"] if p["display_name"] == name]
            return self._reply({"pipelines": found, "total_size": len(found)})
        if url.path == "/apis/v2beta1/experiments":
            name = _filter_name(query)
            found = [e for e in self.state["experiments"] if e["display_name"] == name]
            return self._reply({"experiments": found, "total_size": len(found)})
        if url.path == "/apis/v2beta1/recurringruns":
            # Pages of at most two, whatever page_size asks: a client must follow tokens.
            runs = list(self.state["recurring"].values())
            start = int((query.get("page_token") or ["0"])[0] or 0)
            page = {"recurringRuns": runs[start:start + 2]}
            if start + 2 < len(runs):
                page["next_page_token"] = str(start + 2)  # as kfp_server_api maps it
            return self._reply(page)
        return self._reply({"error": f"unexpected GET {url.path}"}, 404)

    def _refuse_spec(self, spec) -> bool:
        """The API server's upload rules (kfp_backend.upload_violations, v2_template.go)."""
        problems = kfp_backend.upload_violations(spec)
        if problems:
            self._reply({"error_message": problems[0], "code": 3}, 400)
        return bool(problems)

    def do_POST(self):
        url, body = self._record()
        query = parse_qs(url.query)
        if url.path.startswith("/apis/v2beta1/pipelines/upload"):
            uploaded = body.split(b"\r\n\r\n", 1)[1].rsplit(b"\r\n--", 1)[0]
            if self._refuse_spec(list(yaml.safe_load_all(uploaded))[0]):
                return None
        if url.path == "/apis/v2beta1/runs":
            run = json.loads(body)
            # The SDK sends {pipeline_spec, platform_spec} when there is a platform spec.
            run["pipeline_spec"] = run["pipeline_spec"].get("pipeline_spec", run["pipeline_spec"])
            if self._refuse_spec(run["pipeline_spec"]):
                return None
            self.state["runs"].append(run)
            return self._reply({**run, "run_id": f"run{len(self.state['runs'])}"})
        if url.path == "/apis/v2beta1/pipelines/upload":
            pipeline = {"pipeline_id": f"p{len(self.state['pipelines']) + 1}",
                        "display_name": query["name"][0]}
            self.state["pipelines"].append(pipeline)
            return self._reply(pipeline)
        if url.path == "/apis/v2beta1/pipelines/upload_version":
            self.state["versions"] += 1
            return self._reply({"pipeline_id": query["pipelineid"][0],
                                "pipeline_version_id": f"v{self.state['versions']}",
                                "display_name": query["name"][0]})
        if url.path == "/apis/v2beta1/experiments":
            experiment = {**json.loads(body), "experiment_id": "e1"}
            self.state["experiments"].append(experiment)
            return self._reply(experiment)
        if url.path == "/apis/v2beta1/recurringruns":
            recurring = {**json.loads(body), "recurring_run_id": f"r{len(self.state['requests'])}"}
            self.state["recurring"][recurring["recurring_run_id"]] = recurring
            return self._reply(recurring)
        return self._reply({"error": f"unexpected POST {url.path}"}, 404)

    def do_DELETE(self):
        url, _ = self._record()
        self.state["recurring"].pop(url.path.rsplit("/", 1)[1], None)
        return self._reply({})


@pytest.fixture
def fake_kfp():
    FakeKfp.state = {"requests": [], "pipelines": [], "experiments": [], "recurring": {},
                     "versions": 0, "runs": []}
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeKfp)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", FakeKfp.state
    server.shutdown()


def test_schedule_sends_the_converted_cron_and_pinned_version_then_updates_by_name(
        fake_kfp, compiled, tmp_path, capsys):
    host, state = fake_kfp
    yaml_path, _ = compiled
    args = ["schedule", "--host", host, "--package", str(yaml_path), "--cron", "0 2 * * *",
            "--name", "nightly"]
    assert runner.main(args) == 0
    printed = capsys.readouterr().out
    assert "KFP '0 0 2 * * *'" in printed and printed.count(" 02:00:00 UTC") == 3
    created = [json.loads(b) for m, p, _, b in state["requests"]
               if m == "POST" and p == "/apis/v2beta1/recurringruns"]
    assert len(created) == 1
    request = created[0]
    assert request["trigger"]["cron_schedule"]["cron"] == "0 0 2 * * *"
    assert request["display_name"] == "nightly"
    assert request["no_catchup"] is True and int(request["max_concurrency"]) == 1
    assert request["pipeline_version_reference"] == {"pipeline_id": "p1", "pipeline_version_id": "v1"}
    assert request["experiment_id"] == "e1" and request["mode"] == "ENABLE"

    assert runner.main(args) == 0  # same name again: replaced, not duplicated
    assert len(state["recurring"]) == 1
    (only,) = state["recurring"].values()
    assert only["pipeline_version_reference"]["pipeline_version_id"] == "v2"
    assert any(m == "DELETE" for m, *_ in state["requests"])
    assert len(state["pipelines"]) == 1  # second upload is a new version of the same pipeline


def test_schedule_replaces_a_same_named_schedule_on_a_later_page(fake_kfp, compiled):
    host, state = fake_kfp
    yaml_path, _ = compiled
    for index in range(5):  # three pages; the same-named schedule is on the last
        name = "nightly" if index == 4 else f"other-{index}"
        state["recurring"][f"old{index}"] = {"recurring_run_id": f"old{index}", "display_name": name}
    assert runner.main(["schedule", "--host", host, "--package", str(yaml_path), "--cron", "@daily",
                        "--name", "nightly"]) == 0
    names = sorted(r["display_name"] for r in state["recurring"].values())
    assert names == ["nightly", "other-0", "other-1", "other-2", "other-3"]
    assert "old4" not in state["recurring"]
    (created,) = [r for r in state["recurring"].values() if r["display_name"] == "nightly"]
    assert created["trigger"]["cron_schedule"]["cron"] == "0 0 0 * * *"
    assert created["runtime_config"]["pipeline_root"] == "gs://bucket/tfx"


def test_submit_sends_the_pipeline_root_with_the_run(fake_kfp, compiled, capsys):
    host, state = fake_kfp
    yaml_path, _ = compiled
    assert runner.main(["submit", "--host", host, "--package", str(yaml_path)]) == 0
    (run,) = state["runs"]
    assert run["runtime_config"]["pipeline_root"] == "gs://bucket/tfx"  # from defaultPipelineRoot
    assert run["pipeline_spec"]["schemaVersion"] == "2.1.0"
    assert "started run run1" in capsys.readouterr().out
    # kfp's client sets one caching option on every task unless told None: SpanResolver,
    # the gate and the Pusher must stay uncached in what reaches the server.
    tasks = run["pipeline_spec"]["root"]["dag"]["tasks"]
    caching = {name: task.get("cachingOptions", {}).get("enableCache", False)
               for name, task in tasks.items()}
    assert not any(caching[name] for name in ("SpanResolver", "ServedModelGate", "Pusher")), caching
    assert caching["Transform"] and caching["Trainer"]


def test_the_fake_server_refuses_a_2_0_0_spec_as_the_real_one_does(fake_kfp, compiled, tmp_path,
                                                                   capsys):
    host, state = fake_kfp
    yaml_path, _ = compiled
    old = tmp_path / "old.yaml"
    old.write_text(yaml_path.read_text().replace("schemaVersion: 2.1.0", "schemaVersion: 2.0.0"))
    assert runner.main(["submit", "--host", host, "--package", str(old)]) == 1
    error = capsys.readouterr().err
    assert "KFP only supports schema version 2.1.0" in error and "Traceback" not in error
    assert state["runs"] == []


def test_malformed_cron_never_contacts_the_server(fake_kfp, compiled):
    host, state = fake_kfp
    yaml_path, _ = compiled
    assert runner.main(["schedule", "--host", host, "--package", str(yaml_path),
                        "--cron", "0 2 * *"]) == 2
    assert state["requests"] == []


# --------------------------------------------------------------------------
# Entrypoint repairs (the whole pipeline through it: test_kfp_conformance.py).
# --------------------------------------------------------------------------
def test_entrypoint_drops_executor_logs_types_empty_inputs_and_maps_local_paths(tmp_path, monkeypatch):
    monkeypatch.setenv(entrypoint.LOCAL_ROOT_ENV, str(tmp_path))
    declared = {"instanceSchema": "title: tfx.Examples\ntype: object\n"}
    request = {
        "inputs": {"artifacts": {"examples": {"artifacts": [
            {"uri": "gs://b/tfx/ImdbExampleGen/1/examples", "type": {"instanceSchema": ""}}]}}},
        "outputs": {"artifacts": {
            "statistics": {"artifacts": [{"uri": "minio://mlpipeline/v2/s/statistics",
                                          "type": {"instanceSchema": "title: tfx.ExampleStatistics"}}]},
            "executor-logs": {"artifacts": [{"uri": "gs://b/logs",
                                             "type": {"schemaTitle": "system.Artifact"}}]}},
            "outputFile": str(tmp_path / "out.json")}}
    fixes, remote_of = entrypoint.repair_executor_input(
        request, {"artifacts": {"examples": {"artifactType": declared}}}, local_paths=True)
    assert "executor-logs" not in request["outputs"]["artifacts"]
    examples = request["inputs"]["artifacts"]["examples"]["artifacts"][0]
    assert examples["type"] == declared
    assert examples["uri"] == str(tmp_path / "gcs/b/tfx/ImdbExampleGen/1/examples")
    statistics = request["outputs"]["artifacts"]["statistics"]["artifacts"][0]["uri"]
    assert statistics == str(tmp_path / "minio/mlpipeline/v2/s/statistics")
    assert Path(statistics).is_dir()  # outputs exist before TFX writes into them
    assert remote_of[statistics] == "minio://mlpipeline/v2/s/statistics"
    (tmp_path / "out.json").write_text(json.dumps({"artifacts": {"statistics": {"artifacts": [
        {"uri": statistics, "metadata": {"span": 0}}]}}}))
    assert entrypoint.restore_remote_uris(str(tmp_path / "out.json"), remote_of) == 1
    written = json.loads((tmp_path / "out.json").read_text())
    assert written["artifacts"]["statistics"]["artifacts"][0]["uri"] == (
        "minio://mlpipeline/v2/s/statistics")


def test_manifests_are_kubernetes_objects_of_the_expected_kinds():
    documents = list(yaml.safe_load_all((KUBEFLOW_DIR / "manifests" / "tf-serving.yaml").read_text()))
    kinds = {d["kind"]: d for d in documents}
    assert set(kinds) == {"ServiceAccount", "Deployment", "Service"}
    # The Deployment names a ServiceAccount the manifest defines.
    assert kinds["Deployment"]["spec"]["template"]["spec"]["serviceAccountName"] == kinds[
        "ServiceAccount"]["metadata"]["name"]
    deployment, service = kinds["Deployment"], kinds["Service"]
    assert deployment["apiVersion"] == "apps/v1" and service["apiVersion"] == "v1"
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"grpc": 8500, "http": 8501}
    assert container["readinessProbe"]["httpGet"]["path"] == "/v1/models/imdb_sentiment"
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"] == pod_labels
    assert service["spec"]["selector"] == deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"] is True
    # The measured serving thread setting, no more concurrent ops than CPUs.
    flags = dict(arg.lstrip("-").split("=", 1) for arg in container["args"])
    # tensorflow/serving's entrypoint (tf_serving_entrypoint.sh) sets these from
    # MODEL_NAME and MODEL_BASE_PATH; passing them again would duplicate them.
    assert not {"model_name", "model_base_path", "port", "rest_api_port"} & set(flags)
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["MODEL_NAME"] == "imdb_sentiment" and env["MODEL_BASE_PATH"].startswith("gs://")
    assert flags["tensorflow_intra_op_parallelism"] == "1"
    assert int(flags["tensorflow_inter_op_parallelism"]) <= int(container["resources"]["limits"]["cpu"])


def test_dockerfile_runs_as_non_root_from_the_tfx_base_image():
    dockerfile = (KUBEFLOW_DIR / "Dockerfile").read_text()
    assert re.search(r"^FROM gcr\.io/tfx-oss-public/tfx:1\.16\.0$", dockerfile, re.M)
    users = re.findall(r"^USER (\S+)$", dockerfile, re.M)
    assert users and users[-1] not in ("root", "0")
    assert "--constraint constraints.txt" in dockerfile
    assert runner.IMAGE_PROJECT_DIR in dockerfile


def test_compile_takes_config_overrides_like_a_local_run(tmp_path):
    path = tmp_path / "pipeline.yaml"
    assert runner.main(["compile", "--output", str(path), *TARGET_ARGS,
                        "--set", "evaluation.test_split=on", "--set", "trainer.epochs=2"]) == 0
    tasks = list(yaml.safe_load_all(path.read_text()))[0]["root"]["dag"]["tasks"]

    def constant(task: str, name: str):
        return tasks[task]["inputs"]["parameters"][name]["runtimeValue"]["constant"]

    recorded = json.loads(constant("ModelCardGenerator", "pipeline_config"))
    assert recorded["evaluation"]["test_split"] == "on" and recorded["trainer"]["epochs"] == 2
    assert json.loads(constant("Evaluator", "example_splits")) == ["eval", "report", "test"]
    assert constant("ImdbExampleGen", "require_test") == 1
    assert runner.main(["compile", "--output", str(path), *TARGET_ARGS,
                        "--set", "trainer.no_such_field=1"]) != 0


#: The flags tensorflow/serving's model server defines (`tensorflow::Flag("...")` in
#: tensorflow_serving/model_servers/main.cc, read at commit 9d981c5).
TF_SERVING_FLAGS = set(
    "port grpc_socket_path rest_api_port rest_api_num_threads rest_api_timeout_in_ms "
    "rest_api_enable_cors_support enable_batching batching_parameters_file model_config_file "
    "model_config_file_poll_wait_seconds model_name model_base_path num_load_threads "
    "num_unload_threads max_num_load_retries load_retry_interval_micros "
    "file_system_poll_wait_seconds flush_filesystem_caches tensorflow_session_parallelism "
    "tensorflow_intra_op_parallelism tensorflow_inter_op_parallelism use_alts_credentials "
    "platform_config_file saved_model_tags grpc_channel_arguments grpc_max_threads "
    "enable_model_warmup num_request_iterations_for_warmup version prefer_tflite_model "
    "enable_profiler thread_pool_factory_config_file mixed_precision skip_initialize_tpu "
    "enable_grpc_healthcheck_service".split())


def test_the_serving_manifest_passes_only_tf_serving_flags_and_bounds_requests():
    documents = list(yaml.safe_load_all((KUBEFLOW_DIR / "manifests" / "tf-serving.yaml").read_text()))
    container = next(d for d in documents if d["kind"] == "Deployment")[
        "spec"]["template"]["spec"]["containers"][0]
    flags = dict(arg.lstrip("-").split("=", 1) for arg in container["args"])
    assert set(flags) <= TF_SERVING_FLAGS, set(flags) - TF_SERVING_FLAGS
    # server.cc parses "key=value,key=value" and passes integers to gRPC as integers.
    channel = dict(pair.split("=", 1) for pair in flags["grpc_channel_arguments"].split(","))
    assert 0 < int(channel["grpc.max_receive_message_length"]) <= 64 << 20
    assert 0 < int(flags["rest_api_timeout_in_ms"]) <= 60_000
