"""TF Serving's model layout: numbered version directories under one base path.

TF Serving watches the base path and, under its default "latest" version
policy, serves the directory with the largest all-digit name. The Pusher
writes versions in this layout (staging under a name that is not all digits,
then renaming), the gate compares with the newest one, and the CLI's
`predict`/`explain` load it: all three read versions through this module.
"""

from __future__ import annotations

import os
from typing import List, Optional

from tfx.dsl.io import fileio


def versions(base_directory: str) -> List[int]:
    """The version numbers under `base_directory`, oldest first ([] if it does not exist)."""
    if not base_directory or not fileio.exists(base_directory):
        return []
    names = (name.rstrip("/") for name in fileio.listdir(base_directory))
    return sorted(int(name) for name in names if name.isdigit())


def newest_version(base_directory: str) -> Optional[str]:
    """`<base>/<largest version>`, the one TF Serving serves, or None."""
    numbers = versions(base_directory)
    return os.path.join(base_directory, str(numbers[-1])) if numbers else None
