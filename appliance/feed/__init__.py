"""The C feed (and trading) worker from Python: ``tickwire feed run|stats|kill``,
``run``, ``status``, ``top``, ``kill``, ``resume``, ``reload`` and ``book``.

- settings:  what a run is given (:class:`RunSettings`), from the appliance YAML or feed run's options
- lifecycle: the run itself, start to stop, and its report
- live:      a live feed's XDP map sharing, the recorder, the process's memory
- control:   the control loop's view of a trading worker
- kill:      the operator's kill switch, from another process
- reload:    hot reload on SIGHUP
- status:    a worker's figures and the operator's view of it
- replay:    a file through the C books
"""

import importlib
from typing import Any

# The package's face, each name from the module that holds it, loaded on first use: an
# operator's `tickwire status` or `kill` loads status.py or kill.py, not the whole run.
_WHERE = {
    "FeedError": "errors",
    "LEVELS": "kill", "kill": "kill", "operator": "kill",
    "run": "lifecycle",
    "reload": "reload",
    "book_capture": "replay", "book_file": "replay",
    "LiveFeed": "settings", "RunSettings": "settings", "from_config": "settings", "from_flags": "settings",
    "lab_feed": "settings", "restart_from_journal": "settings",
    "stats": "status", "status": "status", "wait_started": "status",
}
__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
