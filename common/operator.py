"""Who is at the keyboard, for what a person asks the box to do (a kill, a tuning change):
the user sudo ran for, else this process's user."""

from __future__ import annotations

import os
import pwd


def operator() -> str:
    """The user sudo ran for, else this process's user."""
    return os.environ.get("SUDO_USER") or pwd.getpwuid(os.getuid()).pw_name
