"""Kubeflow Pipelines runner: compile the shared pipeline, submit, schedule.

Installed as `imdb_sentiment.kubeflow.runner`; run it through
`imdb-pipeline compile|submit|schedule` or as a module:

  python -m imdb_sentiment.kubeflow.runner compile --output pipeline.yaml \\
      --image REGISTRY/imdb-sentiment:TAG \\
      --pipeline-root gs://BUCKET/tfx --data gs://BUCKET/aclImdb_v1.tar.gz \\
      --serving-dir gs://BUCKET/serving

The DAG is `create_pipeline` itself; this module only adds what Kubeflow
needs: the container image and entrypoint of every task, a GPU and
CPU/memory request on the Trainer (TFX's `with_platform_config`), the GPU
hidden from every other task, and, as a documented post-compile step, the
node selector and tolerations a GPU node pool usually requires.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import os
import re
import sys
import tempfile
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import yaml

#: Where the Dockerfile puts the project inside the image.
IMAGE_PROJECT_DIR = "/opt/imdb-sentiment"
ENTRYPOINT = ["python", "-m", "imdb_sentiment.kubeflow.entrypoint"]
TRAINER_EXECUTOR = "Trainer_executor"
#: kubeflow/entrypoint.py's flag: read and write the launcher's local copies.
LOCAL_PATHS_FLAG = "--local-artifact-paths"
#: The accelerator as open-source KFP names it: a Kubernetes extended resource
#: (`backend/src/v2/driver/k8s.go` puts it in the pod's resource limits).
DEFAULT_GPU_RESOURCE = "nvidia.com/gpu"
#: The accelerator as Vertex AI names it (MachineSpec.acceleratorType).
DEFAULT_VERTEX_ACCELERATOR = "NVIDIA_TESLA_T4"
#: Vertex AI's accelerator types, less the TPUs: the v1 API's AcceleratorType
#: enum as documented (cloud.google.com, "Vertex AI V1 API AcceleratorType").
VERTEX_ACCELERATORS = (
    "NVIDIA_TESLA_K80", "NVIDIA_TESLA_P100", "NVIDIA_TESLA_V100", "NVIDIA_TESLA_P4",
    "NVIDIA_TESLA_T4", "NVIDIA_TESLA_A100", "NVIDIA_A100_80GB", "NVIDIA_L4", "NVIDIA_H100_80GB",
    "NVIDIA_H100_MEGA_80GB", "NVIDIA_H200_141GB", "NVIDIA_B200", "NVIDIA_GB200",
    "NVIDIA_RTX_PRO_6000")


@dataclasses.dataclass(frozen=True)
class KubeflowTarget:
    """Where and how the pipeline runs on the cluster (no local paths)."""

    image: str
    pipeline_root: str
    data: str
    serving_dir: str
    beam_pipeline_args: Sequence[str] = ()
    gpu_type: str = DEFAULT_GPU_RESOURCE
    vertex_accelerator: str = DEFAULT_VERTEX_ACCELERATOR
    gpu_count: int = 1
    trainer_cpu: float = 4.0
    trainer_memory_gb: float = 16.0
    node_selector: Dict[str, str] = dataclasses.field(default_factory=dict)
    tolerations: List[Dict[str, str]] = dataclasses.field(default_factory=list)
    #: `--set SECTION.NAME=VALUE` overrides of the pipeline config, as for local runs.
    config_overrides: Sequence[str] = ()


def kubeflow_config(profile: str, target: KubeflowTarget):
    """The pipeline config with every location on the cluster."""
    from imdb_sentiment.pipeline.config import profile_config, with_overrides

    return with_overrides(profile_config(
        profile,
        data=target.data,
        pipeline_root=target.pipeline_root,
        serving_dir=target.serving_dir,
        download_cache_dir="/tmp/imdb-sentiment-cache",
        schema_dir=f"{IMAGE_PROJECT_DIR}/pipeline/schema",
        beam_pipeline_args=tuple(target.beam_pipeline_args),
    ), target.config_overrides)


#: Resolved by KFP's driver to the run's id (backend/src/v2/driver/resolve.go,
#: release 2.17.0); also a Vertex AI pipeline placeholder.
KFP_RUN_ID = "{{$.pipeline_job_uuid}}"


def build_pipeline(profile: str, target: KubeflowTarget, for_vertex: bool = False):
    """The shared DAG, with the Trainer's resource request attached.

    The accelerator is named per backend: a Kubernetes resource name for
    open-source KFP, a Vertex AI accelerator type for Vertex.
    """
    from kfp.pipeline_spec import pipeline_spec_pb2

    from imdb_sentiment.pipeline.pipeline import create_pipeline

    pipeline = create_pipeline(kubeflow_config(profile, target), run_id=KFP_RUN_ID)
    resources = pipeline_spec_pb2.PipelineDeploymentConfig.PipelineContainerSpec.ResourceSpec(
        cpu_limit=target.trainer_cpu, memory_limit=target.trainer_memory_gb)
    if target.gpu_count > 0:
        resources.accelerator.type = target.vertex_accelerator if for_vertex else target.gpu_type
        resources.accelerator.count = target.gpu_count
    trainer = next(c for c in pipeline.components if c.id == "Trainer")
    trainer.with_platform_config(resources)
    return pipeline


def hide_gpu_outside_the_trainer(pipeline_spec: Dict[str, Any]) -> None:
    """Hides the GPU from every step but the Trainer, so TensorFlow in
    Transform or Evaluator cannot take its memory on a GPU node."""
    for label, executor in pipeline_spec["deploymentSpec"]["executors"].items():
        container = executor.get("container")
        if container is not None and label != TRAINER_EXECUTOR:
            container.setdefault("env", []).append({"name": "CUDA_VISIBLE_DEVICES", "value": "-1"})


def never_cache(pipeline_spec: Dict[str, Any], task_names: Sequence[str]) -> None:
    """Steps whose result depends on something outside their inputs: what is
    in storage now (SpanResolver), what is served now (the gate, the Pusher).
    A cached result from an earlier run would be stale."""
    for name in task_names:
        pipeline_spec["root"]["dag"]["tasks"][name]["cachingOptions"] = {"enableCache": False}


def name_parameter_producers_by_task(pipeline_spec: Dict[str, Any]) -> None:
    """TFX 1.16 names the producer of a dynamic parameter `<id>_task`
    (tfx/orchestration/kubeflow/v2/step_builder.py, `TaskOutputParameterSpec`),
    but the task is `<id>`; `producer_task` is "the name of the upstream task"
    (kubeflow/pipelines api/v2alpha1/pipeline_spec.proto), and the driver looks
    it up among the DAG's tasks by that name (backend/src/v2/driver/resolve.go,
    `resolveUpstreamParameters`: "producer task, %v, not in tasks")."""
    tasks = pipeline_spec["root"]["dag"]["tasks"]
    for task in tasks.values():
        for parameter in (task.get("inputs", {}).get("parameters") or {}).values():
            producer = parameter.get("taskOutputParameter")
            if producer and producer["producerTask"] not in tasks:
                name = producer["producerTask"].removesuffix("_task")
                if name not in tasks:
                    raise ValueError(f"a parameter's producer task {producer['producerTask']!r} "
                                     "is not in the compiled DAG")
                producer["producerTask"] = name


def use_launcher_local_paths(pipeline_spec: Dict[str, Any]) -> None:
    """Open-source KFP only: steps read and write the launcher's local copies
    of their artifacts (kubeflow/entrypoint.py, repair 3)."""
    for executor in pipeline_spec["deploymentSpec"]["executors"].values():
        container = executor.get("container")
        if container is not None and container.get("command") == ENTRYPOINT:
            container["args"] = [LOCAL_PATHS_FLAG, *container["args"]]


def platform_spec(node_selector: Dict[str, str], tolerations: List[Dict[str, str]]) -> Dict[str, Any]:
    """The Kubernetes platform spec (kfp-kubernetes format) for the Trainer.

    TFX's ResourceSpec carries no node selector or tolerations; open-source
    KFP reads them from this second YAML document of the compiled file.
    """
    executor: Dict[str, Any] = {}
    if node_selector:
        executor["nodeSelector"] = {"labels": dict(node_selector)}
    if tolerations:
        executor["tolerations"] = [dict(t) for t in tolerations]
    return {"platforms": {"kubernetes": {"deploymentSpec": {"executors": {TRAINER_EXECUTOR: executor}}}}}


def compile_pipeline(profile: str, target: KubeflowTarget, output: Path) -> Path:
    """Writes `.yaml` (PipelineSpec, open-source KFP) or `.json` (PipelineJob, Vertex AI)."""
    from tfx import v1 as tfx

    if output.suffix not in (".yaml", ".yml", ".json"):
        raise ValueError(f"{output}: the output must end in .yaml (KFP) or .json (Vertex AI)")
    for_vertex = output.suffix == ".json"
    if for_vertex and target.vertex_accelerator not in VERTEX_ACCELERATORS:
        raise ValueError(f"--vertex-accelerator {target.vertex_accelerator!r} is not a Vertex AI "
                         f"accelerator type; choose one of {', '.join(VERTEX_ACCELERATORS)}")
    from imdb_sentiment.pipeline.pipeline import uncached_component_ids

    pipeline = build_pipeline(profile, target, for_vertex=for_vertex)
    # The 2.1 schema is the only one the open-source API server accepts
    # (backend/src/apiserver/template/v2_template.go) and types every
    # parameter; with it TFX also passes each step its inputs spec.
    runner = tfx.orchestration.experimental.KubeflowV2DagRunner(
        config=tfx.orchestration.experimental.KubeflowV2DagRunnerConfig(
            default_image=target.image, default_commands=ENTRYPOINT,
            use_pipeline_spec_2_1=True),
        output_dir=tempfile.mkdtemp(), output_filename="unused.json")
    job = runner.run(pipeline, write_out=False)
    hide_gpu_outside_the_trainer(job["pipelineSpec"])
    never_cache(job["pipelineSpec"], uncached_component_ids(pipeline))
    name_parameter_producers_by_task(job["pipelineSpec"])
    if not for_vertex:
        use_launcher_local_paths(job["pipelineSpec"])
    # Read by clients that submit the spec without a root of their own; the
    # runner's submit and schedule also pass it with every run.
    job["pipelineSpec"]["defaultPipelineRoot"] = target.pipeline_root
    job.get("labels", {}).pop("tfx_py_version", None)
    output.parent.mkdir(parents=True, exist_ok=True)
    if output.suffix == ".json":
        if target.node_selector or target.tolerations:
            raise ValueError("node selectors and tolerations are Kubernetes settings; Vertex AI "
                             "(.json) does not take them")
        output.write_text(json.dumps(job, indent=2, sort_keys=True))
    else:
        documents = [job["pipelineSpec"]]
        if target.node_selector or target.tolerations:
            documents.append(platform_spec(target.node_selector, target.tolerations))
        output.write_text(yaml.safe_dump_all(documents, sort_keys=True))
    return output


# ----------------------------------------------------------------------------
# Schedules
# ----------------------------------------------------------------------------
_CRON_FIELD = re.compile(r"^(\*|\?|\d+(-\d+)?)(/\d+)?$")
_FIELD_RANGES = [(0, 59), (0, 59), (0, 23), (1, 31), (1, 12), (0, 6)]  # s m h dom mon dow
_FIELD_NAMES = ["second", "minute", "hour", "day of month", "month", "day of week"]
#: Names robfig/cron (the parser KFP's API server and ScheduledWorkflow controller
#: use: backend/src/apiserver/server/api_converter.go, crd/controller/
#: scheduledworkflow/util/cron_schedule.go) accepts in the month and weekday fields.
_MONTHS = {name: number for number, name in enumerate(
    "JAN FEB MAR APR MAY JUN JUL AUG SEP OCT NOV DEC".split(), start=1)}
_WEEKDAYS = {name: number for number, name in enumerate("SUN MON TUE WED THU FRI SAT".split())}
#: robfig/cron's predefined schedules, as the six fields they stand for.
CRON_MACROS = {"@yearly": "0 0 0 1 1 *", "@annually": "0 0 0 1 1 *", "@monthly": "0 0 0 1 * *",
               "@weekly": "0 0 0 * * 0", "@daily": "0 0 0 * * *", "@midnight": "0 0 0 * * *",
               "@hourly": "0 0 * * * *"}


def _numbers_for_names(value: str, names: Dict[str, int]) -> str:
    return re.sub(r"[A-Za-z]{3}", lambda m: str(names[m.group(0).upper()])
                  if m.group(0).upper() in names else m.group(0), value)


def to_kfp_cron(expression: str) -> str:
    """KFP's six-field cron (seconds first) from a five- or six-field one or a macro.

    `0 2 * * *` (daily 02:00 in the common 5-field form) becomes `0 0 2 * * *`;
    `@daily` becomes `0 0 0 * * *`; month and weekday names (`MON-FRI`, `JAN`)
    become numbers. Malformed expressions raise ValueError before any server
    is contacted.
    """
    text = expression.strip()
    if text.startswith("@"):
        if text.lower() not in CRON_MACROS:
            raise ValueError(f"cron {expression!r}: unknown macro; use one of "
                             f"{', '.join(CRON_MACROS)} or a cron expression")
        return CRON_MACROS[text.lower()]
    fields = text.split()
    if len(fields) == 5:
        fields = ["0"] + fields
    if len(fields) != 6:
        raise ValueError(f"cron {expression!r}: expected 5 fields (minute hour day month weekday) "
                         "or KFP's 6 (second first)")
    fields[4] = _numbers_for_names(fields[4], _MONTHS)
    fields[5] = _numbers_for_names(fields[5], _WEEKDAYS)
    for value, (low, high), name in zip(fields, _FIELD_RANGES, _FIELD_NAMES):
        for part in value.split(","):
            match = _CRON_FIELD.match(part)
            if not match:
                raise ValueError(f"cron {expression!r}: bad {name} field {value!r}")
            numbers = [int(n) for n in re.findall(r"\d+", match.group(1))]
            step = int(match.group(3)[1:]) if match.group(3) else None
            if any(not low <= n <= high for n in numbers) or (numbers and numbers[0] > numbers[-1]):
                raise ValueError(f"cron {expression!r}: {name} must be within {low}-{high}")
            if step is not None and step <= 0:
                raise ValueError(f"cron {expression!r}: {name} step must be positive")
    return " ".join(fields)


def _field_values(value: str, low: int, high: int) -> set:
    result = set()
    for part in value.split(","):
        base, _, step = part.partition("/")
        if base in ("*", "?"):
            start, end = low, high
        elif "-" in base:
            start, end = (int(n) for n in base.split("-"))
        else:
            start = end = int(base)
            if step:
                end = high
        result.update(range(start, end + 1, int(step) if step else 1))
    return result


def next_runs(kfp_cron: str, after: dt.datetime, count: int = 3) -> List[dt.datetime]:
    """The next `count` times a six-field KFP cron expression fires (UTC)."""
    seconds, minutes, hours, days, months, weekdays = (
        _field_values(v, lo, hi) for v, (lo, hi) in zip(kfp_cron.split(), _FIELD_RANGES))
    day_restricted = kfp_cron.split()[3] not in ("*", "?")
    weekday_restricted = kfp_cron.split()[5] not in ("*", "?")
    moment = after.replace(microsecond=0) + dt.timedelta(seconds=1)
    runs: List[dt.datetime] = []
    limit = after + dt.timedelta(days=366 * 5)
    while len(runs) < count and moment < limit:
        weekday = (moment.weekday() + 1) % 7  # cron: Sunday = 0
        if day_restricted and weekday_restricted:
            day_ok = moment.day in days or weekday in weekdays
        else:
            day_ok = moment.day in days and weekday in weekdays
        if moment.month not in months or not day_ok:
            moment = (moment + dt.timedelta(days=1)).replace(hour=0, minute=0, second=0)
        elif moment.hour not in hours:
            moment = (moment + dt.timedelta(hours=1)).replace(minute=0, second=0)
        elif moment.minute not in minutes:
            moment = (moment + dt.timedelta(minutes=1)).replace(second=0)
        elif moment.second not in seconds:
            moment += dt.timedelta(seconds=1)
        else:
            runs.append(moment)
            moment += dt.timedelta(seconds=1)
    return runs


def kfp_client(host: str, token: Optional[str] = None, namespace: Optional[str] = None):
    """A KFP client authenticated by a bearer token or the current kubeconfig context."""
    import kfp

    token = token or os.environ.get("KFP_TOKEN") or None
    return kfp.Client(host=host, existing_token=token, namespace=namespace)


def upload_version(client, package: Path, pipeline_name: str, version_name: str):
    """Uploads the package as a new version of `pipeline_name` (created if missing)."""
    pipeline_id = client.get_pipeline_id(pipeline_name)
    if pipeline_id is None:
        pipeline = client.upload_pipeline(str(package), pipeline_name=pipeline_name)
        pipeline_id = pipeline.pipeline_id
    version = client.upload_pipeline_version(str(package), pipeline_version_name=version_name,
                                             pipeline_id=pipeline_id)
    return pipeline_id, version.pipeline_version_id


def submit(client, package: Path, run_name: str, experiment: str, pipeline_root: str):
    """One run. The pipeline root goes with it: without one the cluster uses its
    own default (`backend/src/v2/driver/root_dag.go`), usually a minio:// bucket
    that TensorFlow's file systems cannot read.

    `enable_caching=None` keeps each task's compiled caching option: kfp 2.5.0's
    `create_run_from_pipeline_package` passes any True/False to
    `_override_caching_options`, which sets it on every task, and True would
    cache SpanResolver, the gate and the Pusher again (`never_cache`)."""
    return client.create_run_from_pipeline_package(
        str(package), arguments={}, run_name=run_name, experiment_name=experiment,
        pipeline_root=pipeline_root, enable_caching=None)


def recurring_runs_named(client, experiment_id: str, name: str) -> List[Any]:
    """Every recurring run of the experiment with that display name, all pages read."""
    found, token = [], ""
    while True:
        page = client.list_recurring_runs(experiment_id=experiment_id, page_size=100,
                                          page_token=token)
        found += [r for r in page.recurring_runs or [] if r.display_name == name]
        token = page.next_page_token or ""
        if not token:
            return found


def schedule(client, package: Path, name: str, kfp_cron: str, experiment: str, pipeline_name: str,
             version_name: str, pipeline_root: str):
    """Creates, or replaces by name, a recurring run of a newly uploaded version.

    Version policy: pinned. Every firing runs the version uploaded by this
    call; running `schedule` again uploads a new version and re-points the
    schedule (the old recurring run of the same name is deleted, so names
    stay unique). No catch-up of missed runs; at most one run at a time.
    """
    pipeline_id, version_id = upload_version(client, package, pipeline_name, version_name)
    experiment_id = client.create_experiment(experiment).experiment_id
    for recurring in recurring_runs_named(client, experiment_id, name):
        client.delete_recurring_run(recurring.recurring_run_id)
    recurring = client.create_recurring_run(
        experiment_id=experiment_id, job_name=name, cron_expression=kfp_cron,
        pipeline_id=pipeline_id, version_id=version_id, max_concurrency=1, no_catchup=True,
        enabled=True, pipeline_root=pipeline_root)
    return recurring, version_id


# ----------------------------------------------------------------------------
# Command line (also reached through `imdb-pipeline compile|submit|schedule`)
# ----------------------------------------------------------------------------
def _key_values(pairs: Sequence[str]) -> Dict[str, str]:
    result = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep:
            raise ValueError(f"expected KEY=VALUE, got {pair!r}")
        result[key] = value
    return result


def _toleration(text: str) -> Dict[str, str]:
    """KEY[=VALUE]:EFFECT, e.g. nvidia.com/gpu:NoSchedule."""
    key_value, _, effect = text.rpartition(":")
    if not key_value:
        raise ValueError(f"toleration {text!r}: expected KEY[=VALUE]:EFFECT")
    key, sep, value = key_value.partition("=")
    toleration = {"key": key, "operator": "Equal" if sep else "Exists", "effect": effect}
    if sep:
        toleration["value"] = value
    return toleration


def add_target_arguments(parser: argparse.ArgumentParser) -> None:
    env = os.environ.get
    parser.add_argument("--profile", default="full", choices=("smoke", "quick", "full"))
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.NAME=VALUE",
                        help="override one config value, as for local runs, e.g. "
                             "evaluation.test_split=on (repeatable)")
    parser.add_argument("--image", default=env("IMDB_IMAGE"), help="container image of every step")
    parser.add_argument("--pipeline-root", default=env("IMDB_PIPELINE_ROOT"),
                        help="artifact root on object storage, e.g. gs://bucket/tfx")
    parser.add_argument("--data", default=env("IMDB_DATA", ""),
                        help="aclImdb archive on object storage or an https URL; "
                             "default: the official download")
    parser.add_argument("--serving-dir", default=env("IMDB_SERVING_DIR"),
                        help="where TF Serving watches, e.g. gs://bucket/serving")
    parser.add_argument("--beam-arg", action="append", default=[],
                        help="Beam pipeline argument, e.g. --runner=DataflowRunner (repeatable)")
    parser.add_argument("--gpu-type", default=DEFAULT_GPU_RESOURCE,
                        help="the Trainer's GPU as a Kubernetes resource (open-source KFP, .yaml)")
    parser.add_argument("--vertex-accelerator", default=DEFAULT_VERTEX_ACCELERATOR,
                        help="the Trainer's GPU as a Vertex AI accelerator type (.json), e.g. "
                             "NVIDIA_L4")
    parser.add_argument("--gpu-count", type=int, default=1)
    parser.add_argument("--trainer-cpu", type=float, default=4.0)
    parser.add_argument("--trainer-memory-gb", type=float, default=16.0)
    parser.add_argument("--node-selector", action="append", default=[], metavar="LABEL=VALUE",
                        help="Trainer node selector (repeatable), e.g. "
                             "cloud.google.com/gke-accelerator=nvidia-tesla-t4")
    parser.add_argument("--toleration", action="append", default=[], metavar="KEY[=VALUE]:EFFECT",
                        help="Trainer toleration (repeatable), e.g. nvidia.com/gpu:NoSchedule")


#: What TensorFlow in the image reads and writes itself (the data, the serving
#: directory): GCS, through tensorflow-io-gcs-filesystem (constraints.txt).
#: tensorflow-io, which would add s3:// and others, is not in the image.
TENSORFLOW_SCHEMES = ("gs://",)
#: What the launcher moves for the steps' artifacts (pipeline root):
#: backend/src/v2/component/launcher_v2.go `LocalPathForURI`, KFP 2.17.0.
ARTIFACT_SCHEMES = ("gs://", "s3://", "minio://")
SCHEME_REASON = {
    "--pipeline-root": "the launcher copies artifacts from and to these stores",
    "--serving-dir": "TensorFlow in the image writes the pushed model there itself, and it "
                     "reads only GCS",
    "--data": "the first steps read it with TensorFlow, which reads only GCS in the image, "
              "or download it",
}


def target_from_args(args: argparse.Namespace) -> KubeflowTarget:
    missing = [flag for flag, value in (("--image", args.image), ("--pipeline-root", args.pipeline_root),
                                        ("--serving-dir", args.serving_dir)) if not value]
    if missing:
        raise ValueError(f"missing {', '.join(missing)} (flags or IMDB_IMAGE, IMDB_PIPELINE_ROOT, "
                         "IMDB_SERVING_DIR)")
    for flag, value, schemes in (
            ("--pipeline-root", args.pipeline_root, ARTIFACT_SCHEMES),
            ("--serving-dir", args.serving_dir, TENSORFLOW_SCHEMES),
            ("--data", args.data, (*TENSORFLOW_SCHEMES, "https://", "http://"))):
        if value and not value.startswith(schemes):
            raise ValueError(f"{flag} must start with {' or '.join(schemes)}: {value} "
                             f"({SCHEME_REASON[flag]})")
    return KubeflowTarget(
        image=args.image, pipeline_root=args.pipeline_root, data=args.data,
        serving_dir=args.serving_dir, beam_pipeline_args=tuple(args.beam_arg),
        gpu_type=args.gpu_type, vertex_accelerator=args.vertex_accelerator,
        gpu_count=args.gpu_count, trainer_cpu=args.trainer_cpu,
        trainer_memory_gb=args.trainer_memory_gb, node_selector=_key_values(args.node_selector),
        tolerations=[_toleration(t) for t in args.toleration], config_overrides=tuple(args.set))


def add_cluster_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default=os.environ.get("KFP_HOST"), help="KFP API endpoint")
    parser.add_argument("--token", default=None,
                        help="bearer token (default $KFP_TOKEN; else the kubeconfig context)")
    parser.add_argument("--namespace", default=os.environ.get("KFP_NAMESPACE"))
    parser.add_argument("--experiment", default="imdb-sentiment")
    parser.add_argument("--package", type=Path, default=None,
                        help="a compiled .yaml to use instead of compiling now")


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    compile_cmd = commands.add_parser("compile", help="write the KFP v2 pipeline spec")
    compile_cmd.add_argument("--output", type=Path, required=True,
                             help=".yaml: PipelineSpec for KFP; .json: PipelineJob for Vertex AI")
    add_target_arguments(compile_cmd)
    submit_cmd = commands.add_parser("submit", help="compile, upload and start one run")
    add_target_arguments(submit_cmd)
    add_cluster_arguments(submit_cmd)
    submit_cmd.add_argument("--run-name", default=None)
    schedule_cmd = commands.add_parser("schedule", help="create or update a recurring run")
    add_target_arguments(schedule_cmd)
    add_cluster_arguments(schedule_cmd)
    schedule_cmd.add_argument("--cron", required=True,
                              help="'0 2 * * *' (5 fields) or KFP's '0 0 2 * * *' (seconds first)")
    schedule_cmd.add_argument("--name", default="imdb-sentiment-nightly")
    return parser


def package_pipeline_root(package: Path) -> str:
    """The `defaultPipelineRoot` a compiled package names ("" if none)."""
    documents = list(yaml.safe_load_all(package.read_text()))
    return (documents[0] or {}).get("defaultPipelineRoot", "") if documents else ""


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = make_parser().parse_args(argv)
    try:
        cron = to_kfp_cron(args.cron) if args.command == "schedule" else None
        if cron:
            now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
            print(f"cron {args.cron!r} -> KFP {cron!r} (UTC); next runs:")
            for moment in next_runs(cron, now):
                print(f"  {moment:%Y-%m-%d %H:%M:%S} UTC")
        package = getattr(args, "package", None)
        if package is None:
            target = target_from_args(args)
            package = Path(args.output) if args.command == "compile" else Path(
                tempfile.mkdtemp()) / "imdb-sentiment.yaml"
            compile_pipeline(args.profile, target, package)
        if args.command == "compile":
            print(f"wrote {package}")
            return 0
        if not args.host:
            raise ValueError("--host (or KFP_HOST) is required")
        pipeline_root = args.pipeline_root or package_pipeline_root(package)
        if not pipeline_root:
            raise ValueError("--pipeline-root (or IMDB_PIPELINE_ROOT) is required: the package "
                             "names none")
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    try:
        return _talk_to_cluster(args, package, cron, pipeline_root)
    except Exception as error:  # noqa: BLE001 - one line, not a client traceback
        from kfp_server_api.exceptions import ApiException

        if not isinstance(error, ApiException):
            raise
        print(f"error: the KFP API server refused the request ({error.status}): "
              f"{_server_message(error)}", file=sys.stderr)
        return 1


def _server_message(error) -> str:
    try:
        body = json.loads(error.body)
        return body.get("error_message") or body.get("message") or str(body)
    except (TypeError, ValueError):
        return str(error.reason)


def _talk_to_cluster(args: argparse.Namespace, package: Path, cron: Optional[str],
                     pipeline_root: str) -> int:
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%d-%H%M%S")
    client = kfp_client(args.host, args.token, args.namespace)
    if args.command == "submit":
        run = submit(client, package, args.run_name or f"imdb-sentiment-{stamp}", args.experiment,
                     pipeline_root)
        print(f"started run {run.run_id} in experiment {args.experiment}")
        return 0
    recurring, version_id = schedule(client, package, args.name, cron, args.experiment,
                                     pipeline_name="imdb-sentiment",
                                     version_name=f"imdb-sentiment-{stamp}",
                                     pipeline_root=pipeline_root)
    print(f"schedule {args.name!r} ({recurring.recurring_run_id}): cron {cron!r} (UTC), pinned to "
          f"pipeline version {version_id}, no catch-up, at most 1 concurrent run")
    return 0


if __name__ == "__main__":
    sys.exit(main())
