"""A Pusher executor whose pushes TF Serving sees whole or not at all.

TFX's filesystem Pusher copies straight into `<base>/<unix time>/`, so a
crash mid-copy leaves a half-written version directory that TF Serving will
try to load, and two pushes in one second collide. This executor copies into
a hidden staging directory (TF Serving only loads all-digit names), then
renames it into place; versions always increase. The rename is atomic on
POSIX filesystems; on object stores (no atomic rename) `saved_model.pb` is
still copied last, as TFX does, so a reader never sees a graph without its
variables.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from typing import Any, Dict, List, Optional, Sequence

from tensorflow.python.framework import errors as tf_errors
from tfx import types
from tfx.components.pusher import executor as pusher_executor
from tfx.dsl.io import fileio
from tfx.proto import pusher_pb2
from tfx.dsl.components.base import base_component, executor_spec
from tfx.types import artifact_utils, standard_artifacts, standard_component_specs
from tfx.types.component_spec import ChannelParameter
from tfx.utils import io_utils, proto_utils

from . import model_card, serving_layout
from .model_card import ASSETS_EXTRA
from .model_card_generator import ModelCard

STAGING_PREFIX = ".staging-"
#: The Pusher's one input beyond TFX's own: the card staged into the version.
MODEL_CARD_KEY = "model_card"


def next_version(base_directory: str) -> int:
    """Unix time, or one more than the newest version if that is not later."""
    versions = serving_layout.versions(base_directory)
    return max(int(time.time()), versions[-1] + 1 if versions else 0)


#: A lease not renewed for this long belongs to a push that died, wherever it ran.
STALE_AFTER_SECONDS = 600
#: How often a push renews its lease (well inside STALE_AFTER_SECONDS).
HEARTBEAT_SECONDS = 30
LEASE_SUFFIX = ".lease"


def lease_record(now: Optional[float] = None) -> Dict[str, Any]:
    """Who is pushing: the host (a pod's name on Kubernetes), the pid, and when
    it last said so. A pid means something only on its own host: pods and
    machines have separate process-id spaces."""
    return {"host": socket.gethostname(), "pid": os.getpid(),
            "heartbeat": time.time() if now is None else now}


def _write_lease(path: str) -> None:
    io_utils.write_string_file(path, json.dumps(lease_record()))


def _lease_is_stale(lease: Optional[Dict[str, Any]], now: float, stale_after: float) -> bool:
    if lease is None:
        return True  # the lease is written before the staging folder: none means no live push
    if now - float(lease.get("heartbeat", 0)) > stale_after:
        return True
    if lease.get("host") == socket.gethostname():  # the pid is ours to check
        try:
            os.kill(int(lease.get("pid", -1)), 0)
        except ProcessLookupError:
            return True
        except (PermissionError, ValueError, OverflowError):
            return False
    return False


def _read_lease(path: str) -> Optional[Dict[str, Any]]:
    try:
        return json.loads(io_utils.read_string_file(path))
    except Exception:  # noqa: BLE001 - missing, half-written or unreadable: no valid lease
        return None


def remove_abandoned_staging(base_directory: str, now: Optional[float] = None,
                             stale_after: float = STALE_AFTER_SECONDS) -> List[str]:
    """Removes staging folders whose push is over (no lease, a lease not renewed
    for `stale_after` seconds, or a dead process on this host); returns them."""
    now = time.time() if now is None else now
    names = [name.rstrip("/") for name in fileio.listdir(base_directory)]
    removed = []
    for name in names:
        if not name.startswith(STAGING_PREFIX) or name.endswith(LEASE_SUFFIX):
            continue
        lease_path = os.path.join(base_directory, name + LEASE_SUFFIX)
        if _lease_is_stale(_read_lease(lease_path), now, stale_after):
            fileio.rmtree(os.path.join(base_directory, name))
            if fileio.exists(lease_path):
                fileio.remove(lease_path)
            removed.append(name)
    for name in names:  # a lease whose folder is gone (a push that died before copying)
        folder = name[:-len(LEASE_SUFFIX)]
        if (name.startswith(STAGING_PREFIX) and name.endswith(LEASE_SUFFIX) and folder not in names
                and _lease_is_stale(_read_lease(os.path.join(base_directory, name)), now,
                                    stale_after)):
            fileio.remove(os.path.join(base_directory, name))
    return removed


class _Heartbeat:
    """Renews a lease every HEARTBEAT_SECONDS while a push runs."""

    def __init__(self, lease_path: str, every: float = HEARTBEAT_SECONDS):
        self._path, self._every = lease_path, every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self._every):
            try:
                _write_lease(self._path)
            except Exception:  # noqa: BLE001 - a missed beat is retried; age decides
                pass

    def __enter__(self) -> "_Heartbeat":
        _write_lease(self._path)
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()
        if fileio.exists(self._path):
            fileio.remove(self._path)


def publish_model(model_path: str, base_directory: str, attempts: int = 10,
                  extra_files: Sequence[str] = ()) -> str:
    """Copies a SavedModel to `<base>/<new version>/` atomically; returns it.

    The copy is staged under a hidden name (TF Serving loads only all-digit
    names) and renamed into place without overwriting: a concurrent pusher
    that took the same version number makes the rename fail, and the next
    number is tried. A failed copy removes its staging directory.
    `extra_files` (the model card) are staged into the version's
    `assets.extra/`, so they appear together with the model.
    """
    fileio.makedirs(base_directory)
    remove_abandoned_staging(base_directory)
    # Unique per push (several threads or pods may push at once); its lease says
    # whose it is, so another push can tell a live one from an abandoned one.
    staging = os.path.join(base_directory, f"{STAGING_PREFIX}{uuid.uuid4().hex[:12]}")
    with _Heartbeat(staging + LEASE_SUFFIX):
        return _stage_and_rename(model_path, base_directory, staging, attempts, extra_files)


def _stage_and_rename(model_path: str, base_directory: str, staging: str, attempts: int,
                      extra_files: Sequence[str]) -> str:
    try:
        io_utils.copy_dir(model_path, staging, deny_regex_patterns=[r"saved_model\.pb"])
        for path in extra_files:
            io_utils.copy_file(path, os.path.join(staging, ASSETS_EXTRA, os.path.basename(path)),
                               overwrite=True)
        io_utils.copy_file(os.path.join(model_path, "saved_model.pb"),
                           os.path.join(staging, "saved_model.pb"))
        for _ in range(attempts):
            destination = os.path.join(base_directory, str(next_version(base_directory)))
            try:
                fileio.rename(staging, destination, overwrite=False)
                return destination
            except (OSError, tf_errors.OpError):
                if not fileio.exists(destination):
                    raise  # not a collision
        raise RuntimeError(f"could not find a free version number in {base_directory} "
                           f"after {attempts} attempts")
    except BaseException:
        if fileio.exists(staging):
            fileio.rmtree(staging)
        raise


class AtomicPusherExecutor(pusher_executor.Executor):
    """Pushes blessed models with `publish_model`; otherwise as TFX does."""

    def Do(self, input_dict: Dict[str, List[types.Artifact]],
           output_dict: Dict[str, List[types.Artifact]], exec_properties: Dict[str, Any]) -> None:
        self._log_startup(input_dict, output_dict, exec_properties)
        model_push = artifact_utils.get_single_instance(
            output_dict[standard_component_specs.PUSHED_MODEL_KEY])
        if not self.CheckBlessing(input_dict):
            self._MarkNotPushed(model_push)
            return
        destination_proto = pusher_pb2.PushDestination()
        proto_utils.json_to_proto(exec_properties[standard_component_specs.PUSH_DESTINATION_KEY],
                                  destination_proto)
        if destination_proto.WhichOneof("destination") != "filesystem":
            raise ValueError("AtomicPusherExecutor only pushes to a filesystem destination")
        model_path = self.GetModelPath(input_dict)
        cards = input_dict.get(MODEL_CARD_KEY) or []
        card_files = [path for card in cards[:1] for name in model_card.CARD_FILES
                      if fileio.exists(path := os.path.join(card.uri, name))]
        destination = publish_model(model_path, destination_proto.filesystem.base_directory,
                                    extra_files=card_files)
        io_utils.copy_dir(model_path, model_push.uri)
        self._MarkPushed(model_push, pushed_destination=destination,
                         pushed_version=os.path.basename(destination))


class AtomicPusherSpec(standard_component_specs.PusherSpec):
    """TFX's Pusher spec plus the model card to put inside the version."""

    INPUTS = {**standard_component_specs.PusherSpec.INPUTS,
              MODEL_CARD_KEY: ChannelParameter(type=ModelCard, optional=True)}


class AtomicPusher(base_component.BaseComponent):
    """Pushes a blessed model, with its card, to a TF Serving base directory."""

    SPEC_CLASS = AtomicPusherSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(AtomicPusherExecutor)

    def __init__(self, model: types.BaseChannel, model_blessing: types.BaseChannel,
                 base_directory: str, model_card: Optional[types.BaseChannel] = None):
        super().__init__(spec=AtomicPusherSpec(
            model=model, model_blessing=model_blessing, model_card=model_card,
            push_destination=pusher_pb2.PushDestination(
                filesystem=pusher_pb2.PushDestination.Filesystem(base_directory=base_directory)),
            pushed_model=types.Channel(type=standard_artifacts.PushedModel)))
