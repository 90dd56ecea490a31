"""Container entrypoint of every pipeline step on Kubeflow Pipelines v2.

Wraps TFX 1.16's own v2 entrypoint (`kubeflow_v2_run_executor`), which was
written for Vertex AI, and repairs what the open-source KFP v2 driver and
launcher send differently before TFX parses it:

1. Artifact types given as KFP system schema titles (`system.Artifact`,
   `system.Dataset`, `system.Model`, ...) that TFX cannot map to a class:
   replaced by the type the component declares for that input.
2. An empty or missing `instanceSchema` (the driver does not fill it in for
   artifacts resolved from upstream outputs): filled from the declaration.
3. An artifact whose class cannot be told from its type at all: inferred
   from the component's declaration, or from the TFX class recorded in the
   artifact's own metadata when there is no declaration.
4. Input artifact types in general are taken from the component's inputs
   spec, which `runner.py` adds to every step's arguments at compile time
   (`--json_serialized_inputs_spec_args`; TFX 1.16 does not pass it).
5. Output artifacts a step does not write (an unpushed model, an empty
   model-run directory) are created as empty directories, so the launcher's
   upload of every output URI finds a directory there; and every output's
   TFX type is recorded in its metadata (`tfx_artifact_type`) for repair 3.

Everything else is TFX's code path unchanged. Run by path:
  python kubeflow/entrypoint.py --executor_class_path ... --json_serialized_invocation_args ...
"""

from __future__ import annotations

import json
import logging
import sys
from typing import Any, Dict, List, Optional, Tuple

#: Artifact metadata key where this entrypoint records an output's TFX type.
TYPE_METADATA_KEY = "tfx_artifact_type"
#: KFP system types → the TFX type used when a step declares nothing better.
SYSTEM_TITLE_FALLBACK = {
    "system.Model": "tfx.Model",
    "system.Dataset": "tfx.Examples",
    "system.Metrics": "tfx.ModelEvaluation",
}


def _declared_types(inputs_spec: Optional[Dict[str, Any]]) -> Dict[str, Dict[str, Any]]:
    artifacts = (inputs_spec or {}).get("artifacts", {})
    return {name: spec.get("artifactType", {}) for name, spec in artifacts.items()}


def _title(artifact_type: Dict[str, Any]) -> Optional[str]:
    if artifact_type.get("schemaTitle"):
        return artifact_type["schemaTitle"]
    schema = artifact_type.get("instanceSchema")
    if schema:
        for line in schema.splitlines():
            if line.startswith("title:"):
                return line.split(":", 1)[1].strip()
    return None


def _usable(artifact_type: Dict[str, Any]) -> bool:
    title = _title(artifact_type)
    return bool(title) and not title.startswith("system.")


def repair_artifact_type(artifact: Dict[str, Any], declared: Optional[Dict[str, Any]]) -> Optional[str]:
    """Fixes one runtime artifact's type in place; returns what was done, if anything."""
    current = artifact.get("type") or {}
    if _usable(current):
        return None
    if declared and _usable(declared):
        artifact["type"] = dict(declared)
        return f"type {_title(current) or 'missing'} -> {_title(declared)} (declared)"
    recorded = (artifact.get("metadata") or {}).get(TYPE_METADATA_KEY)
    if recorded:
        artifact["type"] = {"schemaTitle": recorded}
        return f"type {_title(current) or 'missing'} -> {recorded} (artifact metadata)"
    fallback = SYSTEM_TITLE_FALLBACK.get(_title(current) or "")
    if fallback:
        artifact["type"] = {"schemaTitle": fallback}
        return f"type {_title(current)} -> {fallback} (system type)"
    raise ValueError(f"cannot tell the TFX class of artifact {artifact.get('name') or artifact.get('uri')}"
                     f" (type {current or 'missing'}) and the step declares no type for it")


def repair_executor_input(executor_input: Dict[str, Any],
                          inputs_spec: Optional[Dict[str, Any]]) -> List[str]:
    """Repairs the artifact types of an ExecutorInput (JSON dict) in place."""
    declared = _declared_types(inputs_spec)
    fixes = []
    for direction in ("inputs", "outputs"):
        for name, artifact_list in (executor_input.get(direction, {}).get("artifacts") or {}).items():
            for artifact in artifact_list.get("artifacts", []):
                fix = repair_artifact_type(artifact, declared.get(name) if direction == "inputs" else None)
                if fix:
                    fixes.append(f"{direction}.{name}: {fix}")
    return fixes


def _flag_value(argv: List[str], flag: str) -> Tuple[Optional[int], Optional[str]]:
    for index, arg in enumerate(argv):
        if arg == flag and index + 1 < len(argv):
            return index + 1, argv[index + 1]
        if arg.startswith(flag + "="):
            return index, arg.split("=", 1)[1]
    return None, None


def repair_argv(argv: List[str]) -> Tuple[List[str], Dict[str, Any], List[str]]:
    """The arguments with a repaired executor input, that input, and the fixes made."""
    argv = list(argv)
    index, invocation = _flag_value(argv, "--json_serialized_invocation_args")
    if invocation is None:
        raise ValueError("--json_serialized_invocation_args is required")
    _, spec_text = _flag_value(argv, "--json_serialized_inputs_spec_args")
    executor_input = json.loads(invocation)
    fixes = repair_executor_input(executor_input, json.loads(spec_text) if spec_text else None)
    repaired = json.dumps(executor_input)
    if argv[index].startswith("--json_serialized_invocation_args="):
        argv[index] = f"--json_serialized_invocation_args={repaired}"
    else:
        argv[index] = repaired
    return argv, executor_input, fixes


def finish_outputs(executor_input: Dict[str, Any]) -> None:
    """Creates missing output directories and records each output's TFX type.

    The type goes into the artifact metadata of executor_output.json, which
    KFP stores and hands back to downstream steps: repair 3 reads it there.
    """
    from tfx.dsl.io import fileio

    outputs = executor_input.get("outputs", {})
    titles = {}
    for name, artifact_list in (outputs.get("artifacts") or {}).items():
        for artifact in artifact_list.get("artifacts", []):
            titles[name] = _title(artifact.get("type") or {})
            uri = artifact.get("uri")
            if uri and not fileio.exists(uri):
                fileio.makedirs(uri)
    output_file = outputs.get("outputFile")
    if not output_file or not fileio.exists(output_file):
        return
    with fileio.open(output_file, "r") as handle:
        executor_output = json.load(handle)
    for name, artifact_list in (executor_output.get("artifacts") or {}).items():
        for artifact in artifact_list.get("artifacts", []):
            if titles.get(name):
                artifact.setdefault("metadata", {})[TYPE_METADATA_KEY] = titles[name]
    with fileio.open(output_file, "w") as handle:
        handle.write(json.dumps(executor_output))


def main(argv: Optional[List[str]] = None) -> int:
    logging.basicConfig(level=logging.INFO)
    argv = list(sys.argv[1:] if argv is None else argv)
    argv, executor_input, fixes = repair_argv(argv)
    for fix in fixes:
        logging.info("entrypoint: repaired %s", fix)
    from tfx.orchestration.kubeflow.v2.container import kubeflow_v2_run_executor

    kubeflow_v2_run_executor.main(kubeflow_v2_run_executor._parse_flags(argv))  # noqa: SLF001
    finish_outputs(executor_input)
    return 0


if __name__ == "__main__":
    sys.exit(main())
