"""The C feed (and trading) worker from Python: ``tickwire feed run|stats|kill``,
``run``, ``status``, ``top``, ``kill``, ``resume``, ``reload`` and ``book``.

- settings:   what a run is given (:class:`RunSettings`), from the appliance YAML or feed run's options
- lifecycle:  the run itself, start to stop, and its report
- live:       a live feed's XDP map sharing, the recorder, the process's memory
- control:    the control loop's view of a trading worker
- failsafe:   every way out cancels; the dead-man's heartbeat; a journal that cannot write throws the kill switch
- eventlog:   the run's events file, rotated and capped
- killswitch: the operator's kill switch, from another process
- reloader:   hot reload on SIGHUP
- figures:    a worker's figures and status, the operator's view of it
- replay:     a file through the C books
"""

import importlib
from typing import Any

# The package's face, each name from the module that holds it, loaded on first use: an
# operator's `tickwire status` or `kill` loads figures.py or killswitch.py, not the whole run.
# No module is named like a name of the face (an imported submodule would shadow it).
_WHERE = {
    "FeedError": "errors",
    "LEVELS": "killswitch", "kill": "killswitch", "operator": "killswitch",
    "run": "lifecycle",
    "reload": "reloader",
    "book_capture": "replay", "book_file": "replay",
    "LiveFeed": "settings", "RunSettings": "settings", "from_config": "settings", "from_flags": "settings",
    "lab_feed": "settings", "restart_from_journal": "settings",
    "stats": "figures", "status": "figures", "wait_started": "figures",
}
__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
