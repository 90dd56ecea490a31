"""SpanResolver: which spans this run ingests, decided where the data is read.

Its one output is a `String` holding the `spans.SpanSelection` as JSON.
ImdbExampleGen receives that value as an execution parameter
(`selection.future()[0].value`), not as an input artifact, because of how
each orchestrator keys its cache:

- Kubeflow Pipelines keys a task on its input parameter *values* and its
  input artifacts' *ids* (`backend/src/v2/cacheutils/cache.go`, release
  2.17.0). This step runs uncached on every run; ImdbExampleGen then caches
  on the selection's value, so unchanged data reuses the cache and new data
  (a new span, or a new file at the same path) does not.
- TFX's local orchestrator passes the value through an implicit input; the
  local runner gives this step the fingerprint it computed (`observed`), so
  its cache follows the data there too.
"""

from __future__ import annotations

import logging
from typing import Any, Dict, List

from tfx import types
from tfx.dsl.components.base import base_component, base_executor, executor_spec
from tfx.types import artifact_utils, standard_artifacts
from tfx.types.component_spec import ChannelParameter, ExecutionParameter

from . import spans


class Executor(base_executor.BaseExecutor):
    def Do(self, input_dict: Dict[str, List[types.Artifact]],
           output_dict: Dict[str, List[types.Artifact]], exec_properties: Dict[str, Any]) -> None:
        selection = spans.select_spans(exec_properties["data"], int(exec_properties["window"]))
        logging.info("SpanResolver: %s", selection.to_json())
        artifact_utils.get_single_instance(output_dict["selection"]).value = selection.to_json()


class SpanResolverSpec(types.ComponentSpec):
    PARAMETERS = {
        "data": ExecutionParameter(type=str),
        "window": ExecutionParameter(type=int),
        # What the runner saw before the run ("" on Kubeflow, where this step is never cached).
        "observed": ExecutionParameter(type=str),
    }
    INPUTS: Dict[str, ChannelParameter] = {}
    OUTPUTS = {"selection": ChannelParameter(type=standard_artifacts.String)}


class SpanResolver(base_component.BaseComponent):
    """Resolves `data` (a `{SPAN}` pattern or one location) to the spans to ingest."""

    SPEC_CLASS = SpanResolverSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(Executor)
    #: Its result depends on what is in storage now, outside its parameters.
    NEVER_CACHED_ON_KUBEFLOW = True

    def __init__(self, data: str, window: int = 1, observed: str = ""):
        super().__init__(spec=SpanResolverSpec(
            data=data, window=window, observed=observed,
            selection=types.Channel(type=standard_artifacts.String)))
