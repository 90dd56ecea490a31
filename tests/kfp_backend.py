"""The open-source Kubeflow Pipelines backend's rules and behaviour, for tests.

No cluster can run here, so what the backend does to a compiled spec and to a
step is written down from its source: kubeflow/pipelines at release 2.17.0
(commit of the tag, read with `git show 2.17.0:<path>`). Each function names
the file it follows. Nothing here is the project's code path: tests hold the
project's spec and entrypoint against it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Any, Dict, List, Optional

from google.protobuf import json_format

RELEASE = "2.17.0"
SCHEMA_VERSION = "2.1.0"
#: backend/src/apiserver/template/v2_template.go
NAME_PATTERN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")


def upload_violations(spec: Dict[str, Any]) -> List[str]:
    """Why the API server would refuse the spec on upload ([] = accepted).

    backend/src/apiserver/template/v2_template.go (`NewV2SpecTemplate`): the
    document must unmarshal as a PipelineSpec with protojson (unknown fields
    rejected), have schema version 2.1.0, a pipeline name matching the
    pattern, and a root component.
    """
    from kfp.pipeline_spec import pipeline_spec_pb2

    problems = []
    try:
        json_format.ParseDict(spec, pipeline_spec_pb2.PipelineSpec())
    except json_format.ParseError as error:
        problems.append(f"invalid v2 pipeline spec: {error}")
    if spec.get("schemaVersion") != SCHEMA_VERSION:
        problems.append(f"KFP only supports schema version 2.1.0, but the pipeline spec has "
                        f"version {spec.get('schemaVersion')}")
    name = (spec.get("pipelineInfo") or {}).get("name", "")
    if not name or not NAME_PATTERN.search(name):
        problems.append("invalid v2 pipeline spec: name is empty or malformed")
    if not spec.get("root"):
        problems.append("invalid v2 pipeline spec: root component is empty")
    return problems


def compiler_violations(spec: Dict[str, Any]) -> List[str]:
    """Why the Argo compiler would refuse to compile the run ([] = compiles).

    backend/src/v2/compiler/argocompiler/dag.go (`task`): a task whose
    executor is a resolver fails ("resolver executors not implemented";
    argo.go `Resolver`: "resolver not implemented yet"); an importer task may
    not carry `triggerPolicy.condition`.
    """
    problems = []
    executors = spec.get("deploymentSpec", {}).get("executors", {})
    labels = {name: component.get("executorLabel") for name, component in spec["components"].items()}
    for task_name, task in spec["root"]["dag"]["tasks"].items():
        executor = executors.get(labels.get(task["componentRef"]["name"]), {})
        if "resolver" in executor:
            problems.append(f"{task_name}: resolver executors not implemented")
        if "importer" in executor and task.get("triggerPolicy", {}).get("condition"):
            problems.append(f"{task_name}: triggerPolicy.condition on importer task is not supported")
    return problems


def driver_violations(spec: Dict[str, Any]) -> List[str]:
    """Task inputs the v2 driver cannot resolve ([] = all resolvable).

    backend/src/v2/driver/resolve.go (`resolveInputParameter`): a parameter is
    a component input, an upstream task's output, or a
    `runtimeValue.constant`; the 2.0 form `runtimeValue.constantValue` is not
    one of them. An upstream output (`resolveUpstreamParameters`) is looked up among the
    DAG's tasks by `producerTask`: "producer task, %v, not in tasks".
    """
    problems = []
    tasks = spec["root"]["dag"]["tasks"]
    for task_name, task in tasks.items():
        for name, parameter in (task.get("inputs", {}).get("parameters") or {}).items():
            runtime = parameter.get("runtimeValue")
            if runtime is not None and "constant" not in runtime:
                problems.append(f"{task_name}.{name}: runtimeValue without `constant` "
                                f"({sorted(runtime)})")
            upstream = parameter.get("taskOutputParameter")
            if upstream is not None and upstream.get("producerTask") not in tasks:
                problems.append(f"{task_name}.{name}: producer task, "
                                f"{upstream.get('producerTask')}, not in tasks")
    return problems


def output_uri(pipeline_root: str, task: str, salt: str, name: str) -> str:
    """backend/src/v2/driver/driver.go (`provisionOutputs`): <root>/<task>/<salt>/<name>."""
    return f"{pipeline_root.rstrip('/')}/{task}/{salt}/{name}"


#: What the driver puts for a constant that is exactly one of these (resolve.go).
RUN_PLACEHOLDERS = {"{{$.pipeline_job_uuid}}": "run-uuid-0001",
                    "{{$.pipeline_job_name}}": "imdb-sentiment-run"}


def executor_input(spec: Dict[str, Any], task_name: str, pipeline_root: str,
                   published: Dict[str, Dict[str, Dict[str, Any]]], output_file: str,
                   parameters_out: Optional[Dict[str, Dict[str, Any]]] = None) -> Dict[str, Any]:
    """The ExecutorInput the driver hands a step.

    - Parameters: the task's `runtimeValue.constant`s, and upstream output
      parameters by value (resolve.go, `resolveUpstreamParameters`: the
      producer execution's output parameters, from `parameters_out`).
    - Output parameters: one `outputFile` each under /tmp/kfp/outputs
      (driver.go `provisionOutputs`).
    - Input artifacts: the upstream outputs as published to ML Metadata, read
      back with the type schema recorded at publish time, empty for typed
      outputs (metadata/client.go `ToRuntimeArtifact`: InstanceSchema).
    - Output artifacts: a URI under the pipeline root, typed as declared,
      plus the `executor-logs` output of type `system.Artifact` that
      `PUBLISH_LOGS=true` (the default) adds (driver.go `provisionOutputs`).
    - `outputFile`: where the step writes its ExecutorOutput.
    """
    task = spec["root"]["dag"]["tasks"][task_name]
    component = spec["components"][task["componentRef"]["name"]]
    parameters = {}
    for name, value in (task.get("inputs", {}).get("parameters") or {}).items():
        if "taskOutputParameter" in value:
            upstream = value["taskOutputParameter"]
            parameters[name] = (parameters_out or {})[upstream["producerTask"]][
                upstream["outputParameterKey"]]
        else:
            constant = value["runtimeValue"]["constant"]
            # Placeholders the driver substitutes (resolve.go `resolveInputParameter`).
            parameters[name] = RUN_PLACEHOLDERS.get(constant, constant) if isinstance(
                constant, str) else constant
    inputs = {}
    for name, source in (task.get("inputs", {}).get("artifacts") or {}).items():
        upstream = source["taskOutputArtifact"]
        artifact = published[upstream["producerTask"]][upstream["outputArtifactKey"]]
        inputs[name] = {"artifacts": [{**artifact, "type": {"instanceSchema": ""}}]}
    outputs = {name: {"artifacts": [{
        "name": name, "uri": output_uri(pipeline_root, task_name, "salt1", name),
        "type": definition["artifactType"]}]}
        for name, definition in component.get("outputDefinitions", {}).get("artifacts", {}).items()}
    outputs["executor-logs"] = {"artifacts": [{
        "name": "executor-logs", "uri": output_uri(pipeline_root, task_name, "salt1", "executor-logs"),
        "type": {"schemaTitle": "system.Artifact"}}]}
    output_parameters = {name: {"outputFile": f"/tmp/kfp/outputs/{name}"}
                         for name in component.get("outputDefinitions", {}).get("parameters", {})}
    return {"inputs": {"artifacts": inputs, "parameterValues": parameters},
            "outputs": {"artifacts": outputs, "outputFile": output_file,
                        **({"parameters": output_parameters} if output_parameters else {})}}


def cache_fingerprint(spec: Dict[str, Any], task_name: str, request: Dict[str, Any]) -> str:
    """The fingerprint KFP caches a task under.

    backend/src/v2/driver/cache.go (`getFingerPrint`): the key holds the
    resolved input parameter *values*, the input artifacts' *names* (so a new
    upstream artifact is a miss, and a cached upstream, which hands on its
    earlier artifacts (`reuseCachedOutputs`), is a hit), the output specs
    with their URIs wiped, the output parameter types, and the container's
    command + args as written in the spec (placeholders unresolved) and image.
    backend/src/v2/cacheutils/cache.go (`GenerateCacheKey`,
    `GenerateFingerPrint`): sha256 of the key as protojson, re-marshalled by
    Go's encoding/json (map keys sorted, no spaces).
    """
    import hashlib

    task = spec["root"]["dag"]["tasks"][task_name]
    component = spec["components"][task["componentRef"]["name"]]
    container = spec["deploymentSpec"]["executors"][component["executorLabel"]]["container"]
    inputs, outputs = request["inputs"], request["outputs"]
    key: Dict[str, Any] = {
        "inputArtifactNames": {
            name: {"artifactNames": [a["name"] for a in listed["artifacts"]]}
            for name, listed in inputs.get("artifacts", {}).items()},
        "inputParameterValues": dict(inputs.get("parameterValues", {})),
        "outputArtifactsSpec": {
            name: {key: value for key, value in listed["artifacts"][0].items() if key != "uri"}
            for name, listed in outputs.get("artifacts", {}).items() if listed["artifacts"]},
        "outputParametersSpec": {
            name: spec_["parameterType"]
            for name, spec_ in component.get("outputDefinitions", {}).get("parameters", {}).items()},
        "containerSpec": {"image": container["image"],
                          "cmdArgs": [*container.get("command", []), *container.get("args", [])]},
    }
    key = {name: value for name, value in key.items() if value}  # protojson drops empty fields
    text = json.dumps(key, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    for char, escaped in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026")):
        text = text.replace(char, escaped)  # encoding/json's HTML escaping
    return hashlib.sha256(text.encode()).hexdigest()


def local_path_for_uri(uri: str, root: Path) -> Path:
    """backend/src/v2/component/launcher_v2.go (`LocalPathForURI`), below `root`."""
    for scheme, prefix in (("gs://", "gcs"), ("minio://", "minio"), ("s3://", "s3")):
        if uri.startswith(scheme):
            return root / prefix / uri[len(scheme):]
    raise ValueError(f"failed to generate local path for URI {uri}: unsupported storage scheme")


class Bucket:
    """An object store: keys to bytes, no directories (a directory on disk)."""

    def __init__(self, root: Path):
        self.root = root

    def keys(self, prefix: str) -> List[str]:
        base = self.root
        found = []
        for path in base.rglob("*"):
            if path.is_file():
                key = path.relative_to(base).as_posix()
                if path.name == ".marker":  # a zero-byte "dir/" object
                    key = path.parent.relative_to(base).as_posix() + "/"
                if key.startswith(prefix):
                    found.append(key)
        return sorted(found)

    def put(self, key: str, data: bytes) -> None:
        path = self.root / (key.rstrip("/") + "/.marker" if key.endswith("/") else key)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)

    def get(self, key: str) -> bytes:
        return (self.root / (key.rstrip("/") + "/.marker" if key.endswith("/") else key)).read_bytes()


def upload(bucket: Bucket, local_dir: Path, key: str) -> int:
    """objectstore.UploadBlob: every *file* below the local path, none if it does
    not exist (launcher_v2.go tolerates that: "We allow components to not
    produce output files"). Empty directories are not carried."""
    if not local_dir.exists():
        return 0
    if local_dir.is_file():
        bucket.put(key, local_dir.read_bytes())
        return 1
    count = 0
    for path in local_dir.rglob("*"):
        if path.is_file():
            bucket.put(f"{key}/{path.relative_to(local_dir).as_posix()}", path.read_bytes())
            count += 1
    return count


def download(bucket: Bucket, local_dir: Path, key: str) -> None:
    """objectstore.DownloadBlob: each object under the prefix becomes a file at
    the matching local path (parents made with MkdirAll). A zero-byte "dir/"
    marker becomes a *file*, which makes MkdirAll fail for what lies below it."""
    for object_key in bucket.keys(key):
        if not (object_key == key or object_key.startswith(key.rstrip("/") + "/")):
            continue
        relative = object_key[len(key):].strip("/")
        target = local_dir / relative if relative else local_dir
        if target.parent.exists() and not target.parent.is_dir():
            raise NotADirectoryError(f"failed to create local directory {target.parent}")
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.is_dir():
            raise IsADirectoryError(f"unable to open local file {target} for writing")
        target.write_bytes(bucket.get(object_key))


def blob_key(uri: str) -> str:
    return uri.split("://", 1)[1].split("/", 1)[1]


def run_step(spec: Dict[str, Any], task_name: str, pipeline_root: str, bucket: Bucket,
             pod_root: Path, published: Dict[str, Dict[str, Dict[str, Any]]], run_entrypoint,
             parameters_out: Optional[Dict[str, Dict[str, Any]]] = None) -> Dict:
    """One step as the launcher runs it: a fresh pod filesystem, inputs
    downloaded, the container's command run, outputs uploaded, the output
    metadata read back (launcher_v2.go `Execute`). Returns what it published;
    its output parameters go to `parameters_out[task_name]`: the output
    metadata's `parameterValues` first (launcher_v2.go `collectOutputParameters`)."""
    if pod_root.exists():
        shutil.rmtree(pod_root)
    pod_root.mkdir(parents=True)
    output_file = pod_root / "tmp" / "kfp_outputs" / "output_metadata.json"
    output_file.parent.mkdir(parents=True)
    request = executor_input(spec, task_name, pipeline_root, published, str(output_file),
                             parameters_out)
    for artifact_list in request["inputs"]["artifacts"].values():
        for artifact in artifact_list["artifacts"]:
            download(bucket, local_path_for_uri(artifact["uri"], pod_root), blob_key(artifact["uri"]))
    executor = spec["deploymentSpec"]["executors"][spec["components"][
        spec["root"]["dag"]["tasks"][task_name]["componentRef"]["name"]]["executorLabel"]]
    args = [json.dumps(request) if arg == "{{$}}" else arg
            for arg in executor["container"]["args"]]
    run_entrypoint(args)
    written = json.loads(output_file.read_text()) if output_file.exists() else {}
    result = {}
    for name, artifact_list in request["outputs"]["artifacts"].items():
        artifact = artifact_list["artifacts"][0]
        upload(bucket, local_path_for_uri(artifact["uri"], pod_root), blob_key(artifact["uri"]))
        reported = (written.get("artifacts", {}).get(name, {}).get("artifacts") or [{}])[0]
        result[name] = {"name": name, "uri": artifact["uri"],
                        "metadata": {**(artifact.get("metadata") or {}),
                                     **(reported.get("metadata") or {})},
                        "reported_uri": reported.get("uri")}
    published[task_name] = result
    if parameters_out is not None:
        parameters_out[task_name] = dict(written.get("parameterValues") or {})
        missing = set(request["outputs"].get("parameters", {})) - set(parameters_out[task_name])
        if missing:  # the launcher would read /tmp/kfp/outputs/<name>, which no step writes here
            raise RuntimeError(f"{task_name}: output parameters {sorted(missing)} not in the "
                               "output metadata")
    return result


def environment_for(pod_root: Path) -> Dict[str, str]:
    return {**os.environ, "IMDB_KFP_LOCAL_ROOT": str(pod_root)}
