"""Container entrypoint of every pipeline step on Kubeflow Pipelines v2.

Wraps TFX 1.16's own v2 entrypoint (`kubeflow_v2_run_executor`), written for
Vertex AI, and adapts what the open-source KFP v2 backend sends and expects.
Each repair answers one backend behaviour, read in kubeflow/pipelines at
release 2.17.0:

1. **Outputs the step does not declare.** With `PUBLISH_LOGS` on (the
   default) the driver adds an `executor-logs` output of type
   `system.Artifact` to every step (`backend/src/v2/driver/driver.go`,
   `provisionOutputs`); the launcher writes and uploads it itself
   (`backend/src/v2/component/launcher_v2.go`, `getLogWriter`). TFX cannot
   map that type to a class, so it is removed before TFX parses the input.
2. **Inputs with an empty `instanceSchema`.** Upstream artifacts are read
   back from ML Metadata with the schema recorded at publish time
   (`backend/src/v2/metadata/client.go`, `ToRuntimeArtifact`), which is empty
   for TFX's typed outputs. Such an input gets the type its step declares in
   the inputs spec TFX passes (`--json_serialized_inputs_spec_args`).
3. **Artifacts live at local paths** (`--local-artifact-paths`, set in the
   open-source spec only). The launcher downloads every input artifact to
   `/gcs/…`, `/s3/…` or `/minio/…` before the step and uploads every output
   from there after it, file by file, tolerating outputs never written
   (`launcher_v2.go`: `downloadArtifacts`, `LocalPathForURI`,
   `uploadOutputArtifacts`). TFX therefore reads and writes those local
   paths and never an object store itself: no zero-byte directory markers
   are created (TensorFlow's GCS file system writes them, and the next
   step's download turns a marker into a file that blocks the
   `Format-Serving/` directory below it: `backend/src/v2/objectstore/
   object_store.go`, `DownloadBlob`), and a `minio://` or `s3://` root works
   although this image has no TensorFlow file system for them. The URIs in
   the output metadata are mapped back, so ML Metadata keeps remote URIs.
   On Vertex AI (no flag) TFX's own behaviour is kept: it reads and writes
   `gs://` directly.
4. **Exit.** Once the output metadata is written the process ends with
   `os._exit`, skipping an interpreter shutdown whose protobuf/ML Metadata
   destructors can crash a finished step (the same remedy as
   sky-uk/kfp-operator's `tfx_kfp_v2_shim`).

Run by path:
  python kubeflow/entrypoint.py [--local-artifact-paths] --executor_class_path ... \\
      --json_serialized_invocation_args ...
"""

from __future__ import annotations

import json
import logging
import os
import sys
from typing import Any, Dict, List, Optional, Tuple

#: The output the open-source driver adds to every step (driver.go).
EXECUTOR_LOGS = "executor-logs"
#: Our flag (removed before TFX sees the arguments).
LOCAL_PATHS_FLAG = "--local-artifact-paths"
#: Where the launcher mounts object stores (launcher_v2.go, LocalPathForURI).
LOCAL_PREFIXES = {"gs://": "gcs/", "s3://": "s3/", "minio://": "minio/"}
#: Root of those local paths: "/" in a pod; tests point it at a directory.
LOCAL_ROOT_ENV = "IMDB_KFP_LOCAL_ROOT"


def local_path(uri: str, root: Optional[str] = None) -> str:
    """The path where the open-source launcher puts an artifact's files."""
    root = root if root is not None else os.environ.get(LOCAL_ROOT_ENV, "/")
    for scheme, prefix in LOCAL_PREFIXES.items():
        if uri.startswith(scheme):
            return os.path.join(root, prefix + uri[len(scheme):])
    return uri


def _title(artifact_type: Dict[str, Any]) -> str:
    if artifact_type.get("schemaTitle"):
        return artifact_type["schemaTitle"]
    for line in (artifact_type.get("instanceSchema") or "").splitlines():
        if line.startswith("title:"):
            return line.split(":", 1)[1].strip()
    return ""


def repair_executor_input(executor_input: Dict[str, Any], inputs_spec: Optional[Dict[str, Any]],
                          local_paths: bool) -> Tuple[List[str], Dict[str, str]]:
    """Applies repairs 1-3 in place; returns (what was done, local path → URI)."""
    declared = {name: spec.get("artifactType", {})
                for name, spec in ((inputs_spec or {}).get("artifacts") or {}).items()}
    fixes: List[str] = []
    outputs = executor_input.setdefault("outputs", {}).setdefault("artifacts", {})
    if outputs.pop(EXECUTOR_LOGS, None) is not None:
        fixes.append(f"outputs.{EXECUTOR_LOGS}: left to the launcher")
    for name, artifact_list in (executor_input.get("inputs", {}).get("artifacts") or {}).items():
        for artifact in artifact_list.get("artifacts", []):
            current = artifact.get("type") or {}
            if _title(current).startswith("tfx."):
                continue
            if not _title(declared.get(name, {})):
                raise ValueError(f"input {name}: type {current or 'missing'} is not a TFX type "
                                 "and the step declares none")
            artifact["type"] = dict(declared[name])
            fixes.append(f"inputs.{name}: type {_title(current) or 'empty'} -> "
                         f"{_title(declared[name])} (declared)")
    remote_of: Dict[str, str] = {}
    if local_paths:
        for direction in ("inputs", "outputs"):
            for artifact_list in (executor_input.get(direction, {}).get("artifacts") or {}).values():
                for artifact in artifact_list.get("artifacts", []):
                    path = local_path(artifact.get("uri", ""))
                    if path != artifact.get("uri"):
                        remote_of[path] = artifact["uri"]
                        artifact["uri"] = path
                        if direction == "outputs":  # as TFX's own launcher prepares them
                            _prepare_output(path, artifact.get("type") or {})
        if remote_of:
            fixes.append(f"{len(remote_of)} artifact URIs -> launcher's local paths")
    return fixes, remote_of


#: TFX's value artifacts: one file each, not a directory (tfx/types/standard_artifacts.py).
VALUE_TYPES = {"tfx.String", "tfx.Integer", "tfx.Float", "tfx.Boolean", "tfx.Bytes",
               "tfx.JsonValue"}


def _prepare_output(path: str, artifact_type: Dict[str, Any]) -> None:
    """A directory per output, but a file's parent for a value artifact, as
    TFX's own launcher does (tfx/orchestration/portable/outputs_utils.py,
    `make_output_dirs`): its value is written to the URI itself."""
    if _title(artifact_type) in VALUE_TYPES:
        os.makedirs(os.path.dirname(path), exist_ok=True)
    else:
        os.makedirs(path, exist_ok=True)


def _flag_value(argv: List[str], flag: str) -> Tuple[Optional[int], Optional[str]]:
    for index, arg in enumerate(argv):
        if arg == flag and index + 1 < len(argv):
            return index + 1, argv[index + 1]
        if arg.startswith(flag + "="):
            return index, arg.split("=", 1)[1]
    return None, None


def repair_argv(argv: List[str]) -> Tuple[List[str], Dict[str, Any], List[str], Dict[str, str]]:
    """TFX's arguments with a repaired executor input; the input; fixes; path → URI."""
    local_paths = LOCAL_PATHS_FLAG in argv
    argv = [arg for arg in argv if arg != LOCAL_PATHS_FLAG]
    index, invocation = _flag_value(argv, "--json_serialized_invocation_args")
    if invocation is None:
        raise ValueError("--json_serialized_invocation_args is required")
    _, spec_text = _flag_value(argv, "--json_serialized_inputs_spec_args")
    executor_input = json.loads(invocation)
    fixes, remote_of = repair_executor_input(
        executor_input, json.loads(spec_text) if spec_text else None, local_paths)
    repaired = json.dumps(executor_input)
    if argv[index].startswith("--json_serialized_invocation_args="):
        argv[index] = f"--json_serialized_invocation_args={repaired}"
    else:
        argv[index] = repaired
    return argv, executor_input, fixes, remote_of


def remote_paths_in(text: str, root: Optional[str] = None) -> str:
    """`text` with every launcher-local path (`<root>/gcs/...`) written as its URI."""
    root = root if root is not None else os.environ.get(LOCAL_ROOT_ENV, "/")
    for scheme, prefix in LOCAL_PREFIXES.items():
        text = text.replace(os.path.join(root, prefix), scheme)
    return text


def restore_remote_uris(output_file: str, remote_of: Dict[str, str]) -> int:
    """Puts the remote URIs back into the output metadata TFX wrote; returns how many."""
    if not remote_of or not output_file or not os.path.exists(output_file):
        return 0
    with open(output_file) as handle:
        executor_output = json.load(handle)
    restored = 0
    for artifact_list in (executor_output.get("artifacts") or {}).values():
        for artifact in artifact_list.get("artifacts", []):
            if artifact.get("uri") in remote_of:
                artifact["uri"] = remote_of[artifact["uri"]]
                restored += 1
            # Custom properties that name files (the Evaluator's `current_model`, the
            # gate's, JSON reports) get the remote URIs too, never the pod's paths.
            metadata = artifact.get("metadata") or {}
            for key, value in metadata.items():
                if isinstance(value, str):
                    metadata[key] = remote_paths_in(value)
    with open(output_file, "w") as handle:
        json.dump(executor_output, handle)
    return restored


def main(argv: Optional[List[str]] = None) -> int:
    logging.basicConfig(level=logging.INFO)
    argv, executor_input, fixes, remote_of = repair_argv(list(sys.argv[1:] if argv is None else argv))
    for fix in fixes:
        logging.info("entrypoint: %s", fix)
    from tfx.orchestration.kubeflow.v2.container import kubeflow_v2_run_executor

    kubeflow_v2_run_executor.main(kubeflow_v2_run_executor._parse_flags(argv))  # noqa: SLF001
    restore_remote_uris(executor_input["outputs"].get("outputFile", ""), remote_of)
    return 0


if __name__ == "__main__":
    code = main()
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
