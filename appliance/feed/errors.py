"""The feed package's one error."""

from __future__ import annotations


class FeedError(RuntimeError):
    """A mistake in what was asked, or a part that is missing: said plainly."""
