"""Where the lab keeps what the kernel cannot tell: ``/run/tickwire/lab/<prefix>/``.

Only the impairment relays write here (their parameters and counters); everything
else about the lab is read back from the kernel. ``lab down`` removes the folder.
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
from typing import Any

from common.paths import RUN_DIR


def lab_dir(prefix: str) -> pathlib.Path:
    return RUN_DIR / "lab" / prefix


def remove_lab_dir(prefix: str) -> None:
    shutil.rmtree(lab_dir(prefix), ignore_errors=True)


def write_json(path: pathlib.Path, data: dict[str, Any]) -> None:
    """Write atomically: readers see the old file or the new one, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True))
    os.replace(tmp, path)


def read_json(path: pathlib.Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None
