"""The C feed (and trading) worker from Python: ``tickwire feed run|stats|kill``,
``run``, ``status``, ``top``, ``kill``, ``resume``, ``reload`` and ``book``.

- settings:  what a run is given (:class:`RunSettings`), from the appliance YAML or feed run's options
- lifecycle: the run itself, start to stop, and its report
- live:      a live feed's XDP map sharing, the recorder, the process's memory
- control:   the control loop's view of a trading worker, and the kill switch
- reload:    hot reload on SIGHUP
- status:    a worker's figures and the operator's view of it
- replay:    a file through the C books
"""

from appliance.feed.control import LEVELS, kill, operator
from appliance.feed.errors import FeedError
from appliance.feed.lifecycle import run
from appliance.feed.reload import reload
from appliance.feed.replay import book_capture, book_file
from appliance.feed.settings import LiveFeed, RunSettings, from_config, from_flags, lab_feed, restart_from_journal
from appliance.feed.status import stats, status, wait_started

__all__ = ["LEVELS", "FeedError", "LiveFeed", "RunSettings", "book_capture", "book_file", "from_config", "from_flags",
           "kill", "lab_feed", "operator", "reload", "restart_from_journal", "run", "stats", "status", "wait_started"]
