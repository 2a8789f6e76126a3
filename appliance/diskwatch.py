"""Alert before a disk is full: the free space of the filesystems under the journal, the kept market
data and /run/tickwire (the status and events files), measured with statvfs about once a second by
the run's control loop, which journals each alert (kind ``alert``) and says it.

An alert is raised once when a filesystem's free space falls below ``journal.warn_free_pct`` and once
when it is back above (a point over it, so it does not flap), naming the folders on it, the free
bytes and percent, and the setting or command to look at. Folders on one filesystem share one alert.
A folder not made yet is measured where it will be (its nearest existing parent).
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
from collections.abc import Mapping
from typing import Any

from appliance.config import model

CLEAR_MARGIN_PCT = 1.0  # back above warn_free_pct by this much before the alert clears
RUNTIME_DIR = pathlib.Path("/run/tickwire")

LOOK_AT = {
    "journal": "the journal's folder (journal.dir): move old segments elsewhere (tickwire journal export first)",
    "market data": "the kept captures: lower journal.market_data_keep_mb, or journal.market_data: false",
    "runtime": "/run/tickwire's tmpfs: journal.events_rotate_mb x (journal.events_keep + 1) per run "
               "(ls -la /run/tickwire/feed)",
}


@dataclasses.dataclass
class Figure:
    """One filesystem as measured: the folders on it and its free space."""
    folders: dict[str, str]
    free_bytes: int = 0
    total_bytes: int = 0
    free_pct: float = 100.0
    low: bool = False
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def existing(path: pathlib.Path) -> pathlib.Path:
    """The folder itself, or the nearest parent that exists (where it will be made)."""
    p = path.absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def gib(n: int) -> str:
    return f"{n / (1 << 30):.2f} GiB" if n >= 1 << 30 else f"{n / (1 << 20):.1f} MiB"


class DiskWatch:
    def __init__(self, folders: Mapping[str, str | pathlib.Path | None], warn_free_pct: float,
                 look_at: Mapping[str, str] | None = None):
        if not 0 < warn_free_pct < 100:
            raise ValueError(f"journal.warn_free_pct: {warn_free_pct} must be between 0 and 100 (a percent)")
        self.folders = {k: pathlib.Path(v) for k, v in folders.items() if v is not None}
        self.warn_free_pct = warn_free_pct
        self.look_at = {**LOOK_AT, **(look_at or {})}
        self._low: dict[tuple[str, ...], bool] = {}
        self._figures: list[Figure] = []

    @classmethod
    def configured(cls, cfg: model.AppConfig | None, journal_dir: str | pathlib.Path | None,
                   record_dir: str | pathlib.Path | None, runtime_dir: str | pathlib.Path = RUNTIME_DIR) -> DiskWatch:
        """The run's folders: the journal, the kept market data (a folder, or a single capture's folder) and
        the runtime tmpfs; warn_free_pct from the YAML (its default without one)."""
        pct = (cfg.journal if cfg is not None else model.Journal()).warn_free_pct
        rec = pathlib.Path(record_dir) if record_dir else None
        if rec is not None and rec.suffix == ".pcap":
            rec = rec.parent
        return cls({"journal": journal_dir, "market data": rec, "runtime": runtime_dir}, pct)

    def measure(self) -> list[Figure]:
        """Each filesystem under the folders, measured now."""
        by_dev: dict[int, Figure] = {}
        out: list[Figure] = []
        for label, path in self.folders.items():
            where = existing(path)
            try:
                dev = os.stat(where).st_dev
                if dev in by_dev:
                    by_dev[dev].folders[label] = str(path)
                    continue
                st = os.statvfs(where)
            except OSError as exc:
                out.append(Figure({label: str(path)}, error=f"{where}: {exc.strerror}"))
                continue
            total, free = st.f_blocks * st.f_frsize, st.f_bavail * st.f_frsize  # what the service may still use
            fig = Figure({label: str(path)}, free, total, round(100.0 * free / total, 2) if total else 100.0)
            by_dev[dev] = fig
            out.append(fig)
        return out

    def check(self) -> list[dict[str, Any]]:
        """Measure, and return the alerts of what crossed since the last call: ``disk_low`` once when a
        filesystem's free space falls below warn_free_pct, ``disk_ok`` once when it is back. Never raises."""
        alerts = []
        figures = self.measure()
        for fig in figures:
            if fig.error is not None:
                continue
            key = tuple(sorted(fig.folders))
            was = self._low.get(key, False)
            low = fig.free_pct < self.warn_free_pct if not was else fig.free_pct < self.warn_free_pct + CLEAR_MARGIN_PCT
            fig.low = low
            if low != was:
                self._low[key] = low
                alerts.append(self._alert(fig))
        self._figures = figures
        return alerts

    def _alert(self, fig: Figure) -> dict[str, Any]:
        names = ", ".join(f"{k} {v}" for k, v in fig.folders.items())
        look = "; ".join(self.look_at[k] for k in fig.folders if k in self.look_at)
        if fig.low:
            message = (f"disk almost full: {names}: {gib(fig.free_bytes)} free ({fig.free_pct:.1f}%, warning below "
                       f"{self.warn_free_pct:g}%, journal.warn_free_pct); look at {look}")
        else:
            message = f"disk space back: {names}: {gib(fig.free_bytes)} free ({fig.free_pct:.1f}%)"
        return {"alert": "disk_low" if fig.low else "disk_ok", "folders": dict(fig.folders),
                "free_bytes": fig.free_bytes, "total_bytes": fig.total_bytes, "free_pct": fig.free_pct,
                "warn_free_pct": self.warn_free_pct, "look_at": look, "message": message}

    def status(self) -> dict[str, Any]:
        """The figures of the last check, for the status file (``tickwire status``'s disk line)."""
        return {"warn_free_pct": self.warn_free_pct, "filesystems": [f.as_dict() for f in self._figures]}
