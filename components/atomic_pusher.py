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

import os
import time
import uuid
from typing import Any, Dict, List, Sequence

from tensorflow.python.framework import errors as tf_errors
from tfx import types
from tfx.components.pusher import executor as pusher_executor
from tfx.dsl.io import fileio
from tfx.proto import pusher_pb2
from tfx.types import artifact_utils, standard_component_specs
from tfx.utils import io_utils, proto_utils

from . import model_card
from .model_card import ASSETS_EXTRA, CARD_DIR

STAGING_PREFIX = ".staging-"


def existing_versions(base_directory: str) -> List[int]:
    if not fileio.exists(base_directory):
        return []
    return sorted(int(name.rstrip("/")) for name in fileio.listdir(base_directory)
                  if name.rstrip("/").isdigit())


def next_version(base_directory: str) -> int:
    """Unix time, or one more than the newest version if that is not later."""
    versions = existing_versions(base_directory)
    return max(int(time.time()), versions[-1] + 1 if versions else 0)


def _staging_owner_alive(name: str) -> bool:
    """Whether the process that made `.staging-<version>-<pid>` still runs (this machine)."""
    pid = name.rsplit("-", 1)[-1]
    if not pid.isdigit():
        return False  # an older name without a pid: left by a finished process
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_abandoned_staging(base_directory: str) -> List[str]:
    """Removes staging directories whose pushing process is gone; returns them."""
    removed = []
    for name in fileio.listdir(base_directory):
        name = name.rstrip("/")
        if name.startswith(STAGING_PREFIX) and not _staging_owner_alive(name):
            fileio.rmtree(os.path.join(base_directory, name))
            removed.append(name)
    return removed


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
    # Unique per push (several threads of one process may push); the pid comes
    # last so that a later push can tell whether its owner is still alive.
    staging = os.path.join(base_directory, f"{STAGING_PREFIX}{uuid.uuid4().hex[:12]}-{os.getpid()}")
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
        blessing = artifact_utils.get_single_instance(
            input_dict[standard_component_specs.MODEL_BLESSING_KEY])
        card_files = [path for name in model_card.CARD_FILES
                      if fileio.exists(path := os.path.join(blessing.uri, CARD_DIR, name))]
        destination = publish_model(model_path, destination_proto.filesystem.base_directory,
                                    extra_files=card_files)
        io_utils.copy_dir(model_path, model_push.uri)
        self._MarkPushed(model_push, pushed_destination=destination,
                         pushed_version=os.path.basename(destination))
