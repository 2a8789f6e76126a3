"""Where tickwire finds things outside its packages: the checkout (``ROOT``), the runtime
folder every command reads and writes (``RUN_DIR``) and the shared NASDAQ captures."""

from __future__ import annotations

import os
import pathlib

ROOT = pathlib.Path(__file__).resolve().parent.parent
# the runtime state every command reads: workers' statistics, status and events, the lab's, PTP history;
# $TICKWIRE_RUN_DIR moves it (systemd's RuntimeDirectory= does on a provisioned box)
RUN_DIR = pathlib.Path(os.environ.get("TICKWIRE_RUN_DIR", "/run/tickwire"))


def shared_data() -> pathlib.Path | None:
    """``../shared/data`` beside the checkout (or $TICKWIRE_SHARED_DATA): the genuine
    NASDAQ captures. Read from there, never copied into the project. None if absent."""
    path = pathlib.Path(os.environ.get("TICKWIRE_SHARED_DATA", ROOT.parent / "shared" / "data"))
    return path if path.is_dir() else None


def sample_itch() -> pathlib.Path | None:
    data = shared_data()
    path = data / "nasdaq" / "sample-first-1000.itch" if data else None
    return path if path and path.is_file() else None
