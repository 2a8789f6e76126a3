"""Who is at the keyboard, for what a person asks the box to do (a kill, a tuning change): the
user the kernel says this process runs as. ``SUDO_USER`` is only a claim (anyone can set it): it
may be shown beside the user, never as the user."""

from __future__ import annotations

import os
import pwd


def user_name(uid: int) -> str:
    """The name of a uid, or ``uid N`` when the system has none."""
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"


def operator() -> str:
    """This process's user, as the kernel says (``os.getuid``), never the environment's."""
    return user_name(os.getuid())


def claim() -> str | None:
    """Whom the environment says we act for (``SUDO_USER``): unverified, shown as a claim only."""
    return os.environ.get("SUDO_USER") or None
